"""What the proxy needs from an HTTP client to reach a provider, and the two that do it.

`UpstreamClient.send` takes an `UpstreamRequest` and returns an `UpstreamResponse`
whose body streams as it arrives, decoded from its ``content-encoding``. Failures are
raised as this module's `UpstreamTransportError` kinds (both clients raise the same ones;
the proxy translates them into `gateway.errors` types and knows no client library):
`UpstreamPoolTimeout` when no connection came free, `UpstreamConnectTimeout` /
`UpstreamReadTimeout` / `UpstreamWriteTimeout`, `UpstreamConnectError` when nothing
answered, `UpstreamProtocolError` for a connection dropped or garbled mid-way (never a
timeout), `UpstreamDecodingError` for a body that does not decode, and
`UpstreamRequestError` for a request that cannot be sent (a bad URL, a line break in a
header).

* `gateway.http.client.ConnectionPool` is the gateway's own: HTTP/1.1 on asyncio
  protocols, for the hot path (see that module for why).
* `HttpxUpstream` sends through any ``httpx.AsyncBaseTransport``: the
  ``upstream_client = "httpx"`` setting (HTTP/2, proxies from the environment), and tests
  that inject their fake upstreams (``create_app(transport=...)``). It translates httpx's
  exceptions into this module's at its edge, as httpx translates httpcore's.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import unquote, urlsplit

import httpx

__all__ = [
    "DEFAULT_HEADERS",
    "HttpxUpstream",
    "Timeouts",
    "UpstreamClient",
    "UpstreamConnectError",
    "UpstreamConnectTimeout",
    "UpstreamDecodingError",
    "UpstreamPoolTimeout",
    "UpstreamProtocolError",
    "UpstreamReadTimeout",
    "UpstreamRequest",
    "UpstreamRequestError",
    "UpstreamResponse",
    "UpstreamTimeoutError",
    "UpstreamTransportError",
    "UpstreamURL",
    "UpstreamWriteTimeout",
]


# --- what an upstream client raises -------------------------------------------------
# Internal to the gateway: the proxy turns each kind into a `gateway.errors` type (the
# JSON error a client sees). The kinds are the distinctions the proxy makes today.


class UpstreamTransportError(Exception):
    """An upstream call failed below HTTP: no response, or not a whole one."""


class UpstreamConnectError(UpstreamTransportError):
    """No connection: refused, unreachable, DNS, TLS verification, or the client closed."""


class UpstreamTimeoutError(UpstreamTransportError):
    """A deadline passed (which one: the subclass)."""


class UpstreamConnectTimeout(UpstreamTimeoutError):
    """Opening the connection (TCP + TLS) took longer than the connect timeout."""


class UpstreamReadTimeout(UpstreamTimeoutError):
    """The upstream was silent longer than the read timeout."""


class UpstreamWriteTimeout(UpstreamTimeoutError):
    """Sending the request took longer than its timeout."""


class UpstreamPoolTimeout(UpstreamTimeoutError):
    """No connection came free within the pool timeout: the gateway's own limit
    (max_connections), not the provider's fault."""


class UpstreamProtocolError(UpstreamTransportError):
    """The connection was dropped, or the response was garbled, mid-way (never a timeout)."""


class UpstreamRequestError(UpstreamTransportError):
    """The request cannot be sent as given: an unusable URL, a line break in a header."""


class UpstreamDecodingError(UpstreamTransportError):
    """The body arrived but does not decode as its Content-Encoding."""


def _user_agent() -> str:
    try:
        return f"spanlab/{version('spanlab')}"
    except PackageNotFoundError:  # pragma: no cover  (a source tree without metadata)
        return "spanlab"


# Sent when the caller's request does not carry them. Only encodings the clients decode
# are offered: the body is parsed for the span, and forwarded decoded.
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("accept", "*/*"),
    ("accept-encoding", "gzip, deflate"),
    ("user-agent", _user_agent()),
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float | None = 10.0  # opening a connection (TCP + TLS)
    read: float | None = 120.0  # silence between two reads of the response
    pool: float | None = 10.0  # waiting for a free connection past max_connections


@dataclass(frozen=True, slots=True)
class UpstreamURL:
    """A parsed absolute http(s) URL, split the way a request needs it."""

    scheme: str
    host: str  # without brackets for IPv6
    port: int
    target: str  # path and query, as sent in the request line
    host_header: str  # the Host header's value
    basic_auth: str | None  # the Authorization a user:password in the URL stands for

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    @classmethod
    def parse(cls, url: str) -> UpstreamURL:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UpstreamRequestError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
        host = parts.hostname
        if not host:
            raise UpstreamRequestError(f"no host in URL {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise UpstreamRequestError(f"invalid port in URL {url!r}: {exc}") from None
        default_port = 443 if scheme == "https" else 80
        shown_host = f"[{host}]" if ":" in host else host
        host_header = shown_host if port in (None, default_port) else f"{shown_host}:{port}"
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        basic_auth = None
        if parts.username is not None or parts.password is not None:
            # Percent-decoded, as httpx's client does (p%40ss is the password p@ss).
            userpass = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            userpass_bytes = userpass.encode()
            basic_auth = "Basic " + base64.b64encode(userpass_bytes).decode()
        return cls(scheme, host, port or default_port, target, host_header, basic_auth)


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: UpstreamURL
    headers: list[tuple[str, str]]  # exactly what goes out, besides Host and framing
    body: bytes | None
    timeouts: Timeouts


def fitted(data: bytes) -> bytes:
    """``data`` in an object of its own size, for a body held while its call runs.

    orjson's output keeps the buffer it was written into: 4 KB for a short body, up
    to ~10 times the length of a long text (room for escaping), and a rewritten
    request body lives as long as its call (a stream: minutes). A copy costs a
    memcpy; ~4 KB of the gateway's memory per stream in flight was this."""
    return bytes(memoryview(data))


class UpstreamResponse(ABC):
    status: int
    headers: list[tuple[bytes, bytes]]  # as received, framing and encoding included
    content_type: str

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """The body, decoded, as it arrives (each chunk non-empty). Every call returns
        the same iterator: after a `read` that stopped at its limit, it goes on from
        where that read stopped."""

    async def read(self, limit: int | None = None) -> bytes:
        """The body, decoded. Whole; or, with ``limit``, reading stops once more than
        ``limit`` bytes have come: those are returned (longer than ``limit``, which is
        how the caller knows) and `chunks` gives the rest."""
        parts = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            if limit is not None:
                size += len(chunk)
                if size > limit:
                    break
        return b"".join(parts)

    @abstractmethod
    async def aclose(self) -> None:
        """Done with the response. Read to its end, its connection is kept for the
        next call; cut short, the connection is closed, so the upstream stops too."""


class UpstreamClient(ABC):
    default_headers: tuple[tuple[str, str], ...] = DEFAULT_HEADERS

    @abstractmethod
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    @abstractmethod
    async def aclose(self) -> None: ...


# httpx's exception kinds -> this module's; the most specific class in an exception's MRO
# wins. WriteError is a dropped connection like ReadError; a ProxyError is a tunnel that
# could not be opened, so nothing answered.
_FROM_HTTPX: dict[type[Exception], type[UpstreamTransportError]] = {
    httpx.PoolTimeout: UpstreamPoolTimeout,
    httpx.ConnectTimeout: UpstreamConnectTimeout,
    httpx.ReadTimeout: UpstreamReadTimeout,
    httpx.WriteTimeout: UpstreamWriteTimeout,
    httpx.TimeoutException: UpstreamTimeoutError,
    httpx.ConnectError: UpstreamConnectError,
    httpx.ProxyError: UpstreamConnectError,
    httpx.UnsupportedProtocol: UpstreamRequestError,
    httpx.LocalProtocolError: UpstreamRequestError,
    httpx.RemoteProtocolError: UpstreamProtocolError,
    httpx.NetworkError: UpstreamProtocolError,
    httpx.DecodingError: UpstreamDecodingError,
    httpx.TransportError: UpstreamTransportError,
    httpx.HTTPError: UpstreamTransportError,
}


def from_httpx(exc: httpx.HTTPError) -> UpstreamTransportError:
    """The upstream error an httpx exception stands for (its message kept)."""
    for cls in type(exc).__mro__:
        kind = _FROM_HTTPX.get(cls)
        if kind is not None:
            return kind(str(exc) or type(exc).__name__)
    return UpstreamTransportError(str(exc) or type(exc).__name__)  # pragma: no cover


async def _translated(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.HTTPError as exc:
        raise from_httpx(exc) from exc


class _HttpxResponse(UpstreamResponse):
    __slots__ = ("_response", "_stream", "content_type", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._stream: AsyncIterator[bytes] | None = None
        self.status = response.status_code
        self.headers = response.headers.raw
        self.content_type = response.headers.get("content-type", "")

    def chunks(self) -> AsyncIterator[bytes]:
        if self._stream is None:
            self._stream = _translated(self._response.aiter_bytes())
        return self._stream

    async def read(self, limit: int | None = None) -> bytes:
        if limit is None and self._stream is None:
            try:
                return await self._response.aread()
            except httpx.HTTPError as exc:
                raise from_httpx(exc) from exc
        return await super().read(limit)

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        except httpx.HTTPError as exc:
            raise from_httpx(exc) from exc


class HttpxUpstream(UpstreamClient):
    """Sends through an httpx transport, as ``httpx.AsyncClient.send`` would send the
    same request (no auth, redirect or cookie layers: the proxy wants none)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        timeouts = request.timeouts
        url = request.url
        upstream = httpx.Request(
            request.method,
            # Without any user:password: the headers carry them (`basic_auth`).
            f"{url.scheme}://{url.host_header}{url.target}",
            # latin-1: the bytes go on exactly as the client sent them (not ASCII-only).
            headers=httpx.Headers(request.headers, encoding="latin-1"),
            content=request.body,
            extensions={
                "timeout": {
                    "connect": timeouts.connect,
                    "read": timeouts.read,
                    "write": timeouts.read,
                    "pool": timeouts.pool,
                }
            },
        )
        try:
            response = await self.transport.handle_async_request(upstream)
        except httpx.HTTPError as exc:
            raise from_httpx(exc) from exc
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self.transport.aclose()
