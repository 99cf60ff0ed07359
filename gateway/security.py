"""Host and Origin checks against DNS rebinding and cross-site requests.

A gateway on loopback holds provider keys and every prompt an app sent. A web page in
the user's browser must not be able to use it: not by rebinding its own domain name
to 127.0.0.1 (the Host header then names the attacker's domain), and not by posting
to it cross-site (the browser then sends an Origin header naming the attacker's
site). SDKs, curl and servers send no Origin, so they are unaffected.

A pure ASGI middleware (not ``BaseHTTPMiddleware``), so streaming and disconnect
detection on the proxy path are untouched, and the check costs a header scan.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import Forbidden

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


class HostOriginGuard:
    """Refuse requests whose Host, or whose Origin on a state-changing method, is not
    one of the allowed host names. ``allowed`` of None means any host is allowed
    (a gateway deliberately bound to a public interface)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allowed is None:
            await self.app(scope, receive, send)
            return
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        error = None
        if host is not None and host_name(host) not in self.allowed:
            error = Forbidden(
                f"Host {host_name(host)!r} is not allowed (DNS rebinding protection). Add it"
                " to allowed_hosts in the config if this is intended.",
                code="host_not_allowed",
            )
        elif (
            origin is not None
            and scope["method"] not in SAFE_METHODS
            and origin != "null"
            and host_name(urlsplit(origin).netloc) not in self.allowed
        ):
            error = Forbidden(
                f"Cross-site request from origin {origin!r} refused. Add its host to"
                " allowed_hosts in the config if this is intended.",
                code="origin_not_allowed",
            )
        if error is None:
            await self.app(scope, receive, send)
            return
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


def allowed_hosts(bind_host: str, configured: str) -> frozenset[str] | None:
    """The host names to accept: loopback names, the bind address and the configured
    ones; None (any) for ``*``, or for a public bind address with nothing configured."""
    extra = {h.strip().lower() for h in configured.split(",") if h.strip()}
    if "*" in extra:
        return None
    if not extra and not is_loopback(bind_host):
        return None
    return frozenset(LOOPBACK_NAMES | extra | {bind_host.lower()})
