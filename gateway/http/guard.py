"""Host, Origin and Content-Type checks against DNS rebinding and cross-site requests.

A gateway holds provider keys and every prompt an app sent. A web page in the user's
browser must not be able to use it:

- **DNS rebinding**: the page's own domain name is rebound to the gateway's address,
  so its requests are same-origin for the browser; the Host header then names the
  attacker's domain. On loopback (and whenever ``allowed_hosts`` is set) only the
  allowed names pass the Host check.
- **Cross-site requests**: a page posts to the gateway's URL. Browsers send an
  ``Origin`` header on every cross-site request whose method is not GET or HEAD (and
  on every same-origin one but GET and HEAD), and page scripts cannot remove or set
  it. A state-changing request (any method but GET, HEAD and OPTIONS) with an Origin
  must come from the gateway's own origin (Origin host = Host header host, the web UI)
  or from a host in the allowed names. ``Origin: null`` (a sandboxed iframe, a
  ``data:`` page, a redirect across sites) says nothing about where the request comes
  from: it is refused, always. This check stays on when the gateway is bound to a
  public address, where the Host check accepts any host.
- **Simple requests**: the only POSTs a page can send cross-site without the
  browser first asking permission (a CORS preflight, which the gateway never grants)
  are "simple" ones: a form, or ``fetch`` in ``no-cors`` mode, with a body of type
  ``text/plain``, ``application/x-www-form-urlencoded`` or ``multipart/form-data``,
  or a body with no type at all (a ``Blob``/``ArrayBuffer`` body). So a POST, PUT or
  PATCH with a body must say ``Content-Type: application/json`` (parameters such as
  ``charset`` allowed; ``application/*+json`` too), else 415. Every route takes JSON,
  and the official OpenAI and Anthropic SDKs send ``application/json`` on each
  proxied POST (multipart is only for routes the gateway does not proxy: files,
  images, audio). This holds even if a browser ever sent no Origin: a page cannot
  send a JSON body cross-site without a preflight.
- **A file as is**: ``POST /datasets/{id}/import`` also takes the file itself, typed
  ``text/csv`` or JSON Lines (``application/x-ndjson``, ``application/jsonl``...). None
  of these is CORS-safelisted: a page on another site cannot send one without a
  preflight (never granted), just as with JSON. They pass on that route only; a
  ``text/plain`` or form body is refused there as everywhere.
- **POSTs without a body** (``POST /experiments/{id}/run``, ``/duplicate`` from the
  CLI or curl) carry no Content-Type and pass. A browser sends such a request
  cross-site only with an ``Origin`` header, which the Origin check has already
  judged; a body-less POST with no Origin comes from a program, not from a page.
  A body-less request that does name a type must name JSON all the same.

SDKs, curl and servers send no Origin, so they are unaffected. Refusals use the one
error shape (`gateway.errors`), on the proxy paths and the management API alike.

A pure ASGI middleware (not ``BaseHTTPMiddleware``), so streaming and disconnect
detection on the proxy path are untouched; the checks cost one scan of the headers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import Forbidden, SpanlabError, UnsupportedMediaType

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The one route that takes a file as is, and the file types it takes (none of them
# CORS-safelisted; `gateway.datasets.service.CONTENT_TYPES` maps each to its format).
RAW_IMPORT_PATH = re.compile(r"/datasets/[^/]+/import")
RAW_IMPORT_TYPES = frozenset(
    {
        b"text/csv",
        b"application/csv",
        b"application/x-ndjson",
        b"application/jsonl",
        b"application/x-jsonlines",
        b"application/jsonlines",
    }
)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """``Host`` header value without its port, lower case (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def origin_host(origin: str) -> str:
    """The host name of an ``Origin`` value; "" for ``null`` or anything unparsable."""
    try:
        return host_name(urlsplit(origin).netloc)
    except ValueError:
        return ""


def is_json_type(value: bytes) -> bool:
    """``application/json`` or ``application/*+json``, whatever the parameters."""
    essence = media_type(value)
    return essence == b"application/json" or (
        essence.startswith(b"application/") and essence.endswith(b"+json")
    )


@dataclass(frozen=True)
class AllowedHosts:
    """What the guard accepts. ``hosts``: the Host header names (None: any). ``origins``:
    the Origin host names a state-changing request may come from besides the request's
    own host (the same-origin web UI always may)."""

    hosts: frozenset[str] | None
    origins: frozenset[str]


def allowed_hosts(bind_host: str, configured: str) -> AllowedHosts:
    """The names to accept, from the bind address and ``allowed_hosts``.

    On loopback, or with names configured: the loopback names, the bind address and the
    configured names, for Host and Origin alike. Any Host for ``*``, or for a public
    bind address with nothing configured (the names it is reached by are not known);
    the Origin must then be the request's own host or a configured name.
    """
    extra = {h.strip().lower() for h in configured.split(",") if h.strip()}
    star = "*" in extra
    extra.discard("*")
    own = LOOPBACK_NAMES | {bind_host.lower()} if is_loopback(bind_host) else frozenset()
    if star or (not extra and not own):
        return AllowedHosts(hosts=None, origins=frozenset(own | extra))
    names = frozenset(LOOPBACK_NAMES | extra | {bind_host.lower()})
    return AllowedHosts(hosts=names, origins=names)


async def refuse(error: SpanlabError, send: Send) -> None:
    """Answer a request the guard refuses with ``error``."""
    body = error.to_json()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HostOriginGuard:
    """Refuse a request whose Host is not allowed, or that is state-changing and comes
    cross-site (its Origin), or that is a POST/PUT/PATCH whose body is not JSON."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.hosts = allowed.hosts
        self.origins = allowed.origins

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: a request that passes goes on as the next app's coroutine,
        # so no frame of the guard's stays on every call's stack (~0.4 KB per stream
        # in flight); a refused one gets `refuse`'s.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        method = scope["method"]
        safe = method in SAFE_METHODS
        if safe and self.hosts is None:
            return self.app(scope, receive, send)
        host = origin = None
        content_types: list[bytes] = []
        has_body = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"content-type":
                content_types.append(value)
            elif name == b"content-length":
                if value.strip() != b"0":
                    has_body = True
            elif name == b"transfer-encoding":
                has_body = True
        error = self.check_host(host)
        if error is None and not safe:
            error = self.check_origin(origin, host)
            if error is None and method in BODY_METHODS:
                error = check_content_type(method, content_types, has_body)
                if error is not None and is_raw_import(method, scope["path"], content_types):
                    error = None
        if error is None:
            return self.app(scope, receive, send)
        return refuse(error, send)

    def check_host(self, host: str | None) -> SpanlabError | None:
        if self.hosts is None or host is None or host_name(host) in self.hosts:
            return None
        return Forbidden(
            f"Host {host_name(host)!r} is not allowed (DNS rebinding protection). Add it"
            " to allowed_hosts in the config if this is intended.",
            code="host_not_allowed",
        )

    def check_origin(self, origin: str | None, host: str | None) -> SpanlabError | None:
        if origin is None:
            return None  # not from a browser page (browsers send it on every such request)
        name = origin_host(origin)
        if name and (name in self.origins or (host is not None and name == host_name(host))):
            return None
        return Forbidden(
            f"Cross-site request from origin {origin!r} refused. Add its host to"
            " allowed_hosts in the config if this is intended."
            if name
            else f"Cross-site request from origin {origin!r} refused: a request from a"
            " page that does not say its origin is treated as cross-site.",
            code="origin_not_allowed",
        )


def media_type(value: bytes) -> bytes:
    """A Content-Type's essence: ``text/csv; charset=utf-8`` -> ``text/csv``."""
    return value.split(b";", 1)[0].strip().lower()


def is_raw_import(method: str, path: str, content_types: list[bytes]) -> bool:
    """A dataset import sending its file as is (one declared type, a file type)."""
    return (
        method == "POST"
        and len(content_types) == 1
        and media_type(content_types[0]) in RAW_IMPORT_TYPES
        and RAW_IMPORT_PATH.fullmatch(path) is not None
    )


def check_content_type(
    method: str, content_types: list[bytes], has_body: bool
) -> SpanlabError | None:
    """A body must be declared JSON; a body-less request may declare nothing."""
    if content_types:
        if all(is_json_type(value) for value in content_types):
            return None
        got = ", ".join(repr(v.decode("latin-1")) for v in content_types)
    elif not has_body:
        return None
    else:
        got = "none"
    return UnsupportedMediaType(
        f"{method} needs Content-Type: application/json (got {got}). Other types are"
        " refused because web pages can send them cross-site.",
        code="unsupported_media_type",
    )
