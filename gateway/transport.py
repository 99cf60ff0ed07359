"""An httpx transport on aiohttp's connection pool, for the upstream client.

Why: httpx's own pool (httpcore 1.x) rescans every connection, and every connection
again inside that scan, each time a request starts or ends, so its cost per call
grows with the square of the calls in flight (about 12 ms of CPU per call at 64 in
flight on the 2-core benchmark machine; see ``bench/``). aiohttp's pool keeps idle
connections per host in a list and costs the same at 1 or 1,000 in flight.

The proxy keeps talking to an ``httpx.AsyncClient`` (and tests keep injecting their
own httpx transport); only the wire under it changes. What the proxy relies on is
kept:

* the response body streams as it arrives (``iter_any``), undecoded (httpx decodes
  ``content-encoding`` as before);
* closing a response before its end closes the connection, so the upstream sees the
  call cancelled; a response read to its end returns its connection to the pool;
* aiohttp's errors become the httpx errors httpcore raises for the same failure:
  timeouts are ``httpx.TimeoutException`` subclasses, everything else a
  ``httpx.TransportError`` that is not a timeout (a dropped connection is no timeout);
* the request goes out with exactly the headers httpx built: aiohttp adds none of its
  own and keeps no cookies.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

__all__ = ["AiohttpTransport"]

# Every header aiohttp would add when absent; the request carries what httpx built.
_SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


def map_error(exc: BaseException, *, connecting: bool) -> httpx.TransportError | None:
    """The httpx error httpcore would raise for the same failure, or None."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, TimeoutError):
        return httpx.ConnectTimeout(message) if connecting else httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx.ConnectError(message) if connecting else httpx.ReadError(message)
    return None


def _wire_url(url: httpx.URL) -> URL:
    """The URL for aiohttp, without any user:password: as with httpx's own transport,
    credentials travel only in the headers the client built (aiohttp would otherwise
    add its own Authorization, or refuse the one given)."""
    if url.userinfo:
        url = url.copy_with(username=None, password=None)
    return URL(str(url), encoded=True)


class _ResponseStream(httpx.AsyncByteStream):
    __slots__ = ("_done", "_response")

    def __init__(self, response: aiohttp.ClientResponse, done: Callable[[], None]) -> None:
        self._response = response
        self._done: Callable[[], None] | None = done  # frees the call's pool slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            mapped = map_error(exc, connecting=False)
            if mapped is None:  # pragma: no cover  (map_error covers these types)
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        response = self._response
        if response.content.at_eof():
            response.release()  # the whole body read: the connection goes back to the pool
        else:
            response.close()  # cut short: close it, so the upstream stops too
        done, self._done = self._done, None
        if done is not None:
            done()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(limits=...))``."""

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        limits = limits or httpx.Limits()
        self._limit = limits.max_connections or 0
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 15.0
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}
        # One slot per call in progress, as httpx's pool counts them: past
        # max_connections a call waits up to the pool timeout, then gets PoolTimeout
        # (aiohttp's own wait would end in a connect timeout, blaming the upstream).
        self._slots: asyncio.Semaphore | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: aiohttp binds its pool to the running event loop.
        self._slots = asyncio.Semaphore(self._limit) if self._limit else None
        if self._ssl is None:
            # The CA bundle httpx's own transport uses (certifi).
            self._ssl = httpx.create_ssl_context(trust_env=False)
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=0,
            keepalive_timeout=self._keepalive,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None),
            raise_for_status=False,
        )
        return self._session

    def _timeout(self, spec: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (spec.get("connect"), spec.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read = key
            timeout = aiohttp.ClientTimeout(
                total=None,
                # The wait for a free connection is the slots' (pool timeout); what is
                # left of aiohttp's "connect" is the connect itself.
                connect=connect,
                sock_connect=connect,
                sock_read=read,
            )
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        spec = request.extensions.get("timeout", {})
        slots = self._slots
        if slots is not None:
            if slots.locked():
                try:
                    async with asyncio.timeout(spec.get("pool")):
                        await slots.acquire()
                except TimeoutError:
                    raise httpx.PoolTimeout(f"all {self._limit} connections stayed busy") from None
            else:
                await slots.acquire()  # free: no wait
        released = False

        def release() -> None:  # once per call, whichever way it ends
            nonlocal released
            if not released and slots is not None:
                released = True
                slots.release()

        try:
            return await self._send(session, request, spec, release)
        except BaseException:
            release()
            raise

    async def _send(
        self,
        session: aiohttp.ClientSession,
        request: httpx.Request,
        spec: dict[str, Any],
        release: Callable[[], None],
    ) -> httpx.Response:
        headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        )
        try:
            body: Any = request.content or None
        except httpx.RequestNotRead:
            body = request.stream  # a streamed body goes out chunked
            headers.popall("transfer-encoding", None)
        try:
            response = await session.request(
                request.method,
                _wire_url(request.url),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(spec),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            mapped = map_error(exc, connecting=True)
            if mapped is None:  # pragma: no cover
                raise
            raise mapped from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        stream: httpx.AsyncByteStream
        if response.content.is_eof():
            # The whole body came with the headers (most non-streamed answers): take it
            # now and free the connection, instead of reading it through the stream
            # layers later. It is handed over undecoded, as the stream would have been.
            try:
                body = await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                response.close()  # the slot is freed by handle_async_request
                mapped = map_error(exc, connecting=False)
                if mapped is None:  # pragma: no cover
                    raise
                raise mapped from exc
            response.release()
            release()
            stream = httpx.ByteStream(body)
        else:
            stream = _ResponseStream(response, release)
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=stream,
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            # Let the connector's transports finish closing (aiohttp's advice).
            await asyncio.sleep(0)
