"""The transport behind ``upstream_client = "httpx"``: httpx's own HTTP stack, for what
the builtin client (`gateway.http.client`) does not do.

* HTTP/2, offered by ALPN when the ``h2`` package is installed (``spanlab[h2]``);
  HTTP/1.1 otherwise.
* Proxies from the environment, as ``httpx.AsyncClient(trust_env=True)`` routes them:
  ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` by the request's scheme, ``NO_PROXY``
  hosts sent direct. ``httpx.AsyncHTTPTransport`` takes one proxy and reads none from the
  environment (that is the client's job, and the proxy wants no client layer: a client
  would keep the upstreams' cookies), so `EnvProxyTransport` does the routing.
* TLS trust from ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (httpx's ``trust_env``).

Errors stay httpx's here; `gateway.http.upstream.HttpxUpstream` translates them.
"""

from __future__ import annotations

import importlib.util
import logging
import urllib.request
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["EnvProxyTransport", "build_httpx_transport", "bypassed", "http2_available"]

logger = logging.getLogger(__name__)


def http2_available() -> bool:
    return importlib.util.find_spec("h2") is not None


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` sends ``host`` direct: ``*``, the host itself, or a domain it
    is under (``example.com`` and ``.example.com`` both cover ``api.example.com``)."""
    host = host.lower().strip("[]")
    for entry in no_proxy.replace(" ", "").lower().split(","):
        entry = entry.strip("[]").lstrip(".")
        if entry and (entry == "*" or host == entry or host.endswith("." + entry)):
            return True
    return False


class EnvProxyTransport(httpx.AsyncBaseTransport):
    """Sends each request direct or through the proxy its scheme's variable names."""

    def __init__(
        self,
        proxies: Mapping[str, str],
        *,
        http2: bool,
        limits: httpx.Limits,
    ) -> None:
        # The keys urllib.request.getproxies() gives: "http", "https", "all", "no".
        self._proxies = dict(proxies)
        options: dict[str, Any] = {"http2": http2, "limits": limits, "trust_env": True}
        self._direct = httpx.AsyncHTTPTransport(**options)
        self._via: dict[str, httpx.AsyncHTTPTransport] = {}
        for scheme in ("http", "https"):
            proxy = self._proxies.get(scheme) or self._proxies.get("all")
            if proxy:
                if "://" not in proxy:  # HTTPS_PROXY=host:port, as httpx reads it
                    proxy = "http://" + proxy
                self._via[scheme] = httpx.AsyncHTTPTransport(proxy=proxy, **options)
        # (scheme, host) -> transport: NO_PROXY is matched once per upstream host.
        self._routes: dict[tuple[str, str], httpx.AsyncHTTPTransport] = {}

    def _transport_for(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        key = (url.scheme, url.host)
        transport = self._routes.get(key)
        if transport is None:
            transport = self._via.get(url.scheme)
            if transport is None or bypassed(url.host, self._proxies.get("no", "")):
                transport = self._direct
            if len(self._routes) >= 1024:
                self._routes.clear()
            self._routes[key] = transport
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport_for(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._via.values():
            await transport.aclose()


def build_httpx_transport(
    max_connections: int, keepalive_expiry: float, proxies: Mapping[str, str] | None = None
) -> EnvProxyTransport:
    """The transport for ``upstream_client = "httpx"``; ``proxies`` defaults to the
    environment's (``urllib.request.getproxies()``)."""
    http2 = http2_available()
    if proxies is None:
        proxies = urllib.request.getproxies()
    limits = httpx.Limits(
        max_connections=max_connections or None,
        max_keepalive_connections=max_connections or None,
        keepalive_expiry=keepalive_expiry,
    )
    shown = {k: v for k, v in proxies.items() if k in ("http", "https", "all")}
    logger.info(
        "upstream client: httpx (%s%s)",
        "HTTP/2 and HTTP/1.1" if http2 else "HTTP/1.1; install spanlab[h2] for HTTP/2",
        f"; proxies from the environment for {', '.join(sorted(shown))}" if shown else "",
    )
    return EnvProxyTransport(proxies, http2=http2, limits=limits)
