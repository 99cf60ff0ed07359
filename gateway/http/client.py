"""The gateway's own HTTP/1.1 client for upstream calls: asyncio protocols, httptools.

Why its own: the proxy sits on every call, and a general client spends most of its
time on what the proxy has no use for. Measured on the 2-core benchmark machine
(``bench/``): httpx's pool (httpcore) rescans its connections on every request start
and end, ~9 ms of CPU per call at 64 in flight; httpx over aiohttp's pool still
builds a request object, header objects, a response object and aiohttp's own per call
(~0.2 ms of the gateway's ~0.5 ms per call, and ~24 KB per open stream). This client
writes the request line and headers in one string, parses the response with llhttp
(httptools, as uvicorn does for the server side) straight into a list of raw headers
and a queue of body chunks, and keeps idle connections per origin in a stack.

What the proxy relies on, and the tests pin (`tests/test_http_client.py`):

* the request goes out with exactly the headers given (plus Host and Content-Length);
  a header with a line break is refused, never sent;
* the body streams as it arrives (what arrived since the caller last read, as one
  piece), decoded from gzip/deflate (`gateway.http.decoding`; the only encodings
  offered) in pieces of at most ``DECODED_PIECE`` bytes (a gzip bomb inflates a
  1,000-fold: one network read must not become one huge piece); reading is paused
  while the caller is behind (bounded memory per call);
* the response's head is the header block before the body: the trailer fields of a
  chunked body (after it) are dropped, never added to the head;
* a response read to its end leaves its connection for the next call (until
  ``keepalive_expiry``); one closed before its end closes the connection, so the
  upstream sees the call cancelled;
* failures are `gateway.http.upstream`'s error kinds: a dropped connection
  is never a timeout. A reused connection the server had closed just as the request
  went out (the keep-alive race) is sent again once, on a new connection, only when
  it is provably safe: nothing of a response came back, within ``KEEPALIVE_RACE_S``,
  and the kernel's TCP counters (``TCP_INFO``, read as the connection drops) show that
  some byte of the request was never acknowledged, so the upstream's TCP never held
  the whole request and no server can have begun (and billed) it. Where that cannot
  be told (not Linux, a CONNECT tunnel whose proxy acknowledges), or with the setting
  ``upstream_retry_stale_connection`` off, nothing is sent twice;
* at most ``max_connections`` calls at once; past that a call waits up to the pool
  timeout, then gets ``UpstreamPoolTimeout`` (the gateway's limit, not the provider's fault).

Per connection in flight it keeps little (slots, a list for the unread body, one
read-timeout timer re-checked when it fires rather than one per wait, body chunks
through an iterator object rather than an async generator): traced with 1,000
streams in flight, this module's share went from 5.6 KB to 4.4 KB a stream, and a
stream's CPU per chunk lost a timer's arming and cancelling.

Proxies (CONNECT tunnels for https, absolute-form for http) and TLS trust are decided
once per origin, on its first connection (`gateway.http.network`): with no proxy
configured a call pays one attribute check for them.

Not supported (the proxy does not need them): HTTP/2, https:// or SOCKS proxies,
request bodies that stream (bodies are read whole first), ``Expect: 100-continue``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import ssl
import struct
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools

from gateway.http.decoding import DECODED_PIECE, decode_pieces, decoders_for
from gateway.http.network import Network, ProxyURL
from gateway.http.upstream import (
    Timeouts,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamPoolTimeout,
    UpstreamProtocolError,
    UpstreamReadTimeout,
    UpstreamRequest,
    UpstreamRequestError,
    UpstreamResponse,
)

__all__ = ["DECODED_PIECE", "ConnectionPool"]

# Body bytes buffered for a caller that has not read them yet: past this the socket is
# no longer read (TCP pushes back on the upstream) until the caller has taken them.
HIGH_WATER = 256 * 1024

# A reused connection that ends this soon after the request, with nothing of a
# response, was closed by the server as the request went out (the keep-alive race):
# the request is sent once more, on a new connection. Later, the server may have been
# working on it (an LLM call costs money), so the failure is the caller's to see.
KEEPALIVE_RACE_S = 0.5

_OriginKey = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One upstream connection, and the state of the exchange in progress on it.

    The read timeout has one timer per connection, not one per wait: a wait notes
    when it began, and the timer, when it fires, times the wait out or moves on to
    the wait's own deadline (a stream's 64 chunks armed and cancelled 64 timers).
    """

    __slots__ = (
        "body",
        "buffered",
        "busy",
        "closed",
        "complete",
        "error",
        "framed",
        "got_bytes",
        "head_done",
        "head_request",
        "headers",
        "idle_until",
        "informational",
        "keep_alive",
        "key",
        "loop",
        "parser",
        "paused",
        "pool",
        "sock",
        "status",
        "timer",
        "timer_at",
        "transport",
        "unacknowledged",
        "wait_timeout",
        "waiter",
        "waiting_since",
    )

    def __init__(self, pool: ConnectionPool, key: _OriginKey) -> None:
        self.pool = pool
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.sock: object = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_until = 0.0
        self.waiter: asyncio.Future[None] | None = None
        # The read timeout's timer, when it fires (loop time), and the wait it watches.
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.waiting_since = 0.0
        self.wait_timeout = 0.0
        self.begin(head_request=False)
        self.busy = False  # not until a request is written

    def begin(self, *, head_request: bool) -> None:
        """Reset for a new exchange."""
        self.busy = True
        self.head_request = head_request
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.framed = False  # Content-Length or chunked: else the body ends at close
        self.informational = False
        self.keep_alive = False
        self.complete = False
        self.got_bytes = False
        self.unacknowledged = False  # some byte sent was never acknowledged (at a drop)
        self.error: BaseException | None = None
        # Body pieces not read yet. A list, not a deque (~760 bytes each, per
        # connection): the reader takes all of them at once (`next_chunk`).
        self.body: list[bytes] = []
        self.buffered = 0
        self.paused = False

    # --- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        # Kept for the kernel's TCP counters when the connection drops (see unacknowledged_bytes).
        self.sock = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            # Bytes nobody asked for: the connection's framing cannot be trusted again.
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"malformed response from upstream: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.stop_timer()
        if not self.busy:
            self.pool._forget(self)
            return
        if self.complete or self.error is not None:
            return
        if self.head_done and not self.framed:
            self.complete = True  # a body delimited by the end of the connection
            self.keep_alive = False
            self._wake()
            return
        if not self.head_done:
            # Read now, while the socket is still open: whether the upstream's TCP had
            # acknowledged all of the request before the connection dropped.
            self.unacknowledged = unacknowledged_bytes(self.sock)
        if isinstance(exc, OSError):
            self._fail(UpstreamProtocolError(f"upstream connection failed: {exc}"))
        else:
            self._fail(
                UpstreamProtocolError(
                    "upstream closed the connection before the response ended"
                    if self.head_done
                    else "upstream closed the connection without sending a response"
                )
            )

    # --- httptools callbacks --------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp reports a chunked body's trailer fields through this callback too,
        # after the body: they are not the head's (a trailer could otherwise add a
        # Set-Cookie, or a second Content-Type, to what the client receives).
        if not self.head_done:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.informational = True  # e.g. 103 Early Hints: the real response follows
            self.headers = []
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.framed = status in (204, 304) or any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )
        self.head_done = True
        if self.head_request:
            self.framed = True
            self.complete = True
            self.keep_alive = False  # llhttp would wait for the announced body
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
        self._wake()

    # --- the caller's side ----------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _check_timeout(self) -> None:
        """The read timeout's timer fired: time out the wait in progress if it is
        past its deadline, else wait for that deadline (none: the next wait arms)."""
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        deadline = self.waiting_since + self.wait_timeout
        if self.loop.time() < deadline:
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self._check_timeout)
            return
        waiter.set_exception(
            UpstreamReadTimeout(f"upstream sent nothing for {self.wait_timeout:g}s (read_timeout)")
        )

    def _waiter(self, read_timeout: float | None) -> asyncio.Future[None]:
        """A future woken by the next event on the connection (a plain method, not a
        coroutine: one frame less per wait in progress); the caller resets
        ``self.waiter`` once it is done."""
        waiter = self.waiter = self.loop.create_future()
        if read_timeout is not None:
            self.waiting_since = now = self.loop.time()
            self.wait_timeout = read_timeout
            deadline = now + read_timeout
            timer = self.timer
            # A timer due by the deadline stays: it checks again when it fires.
            if timer is None or self.timer_at > deadline:
                if timer is not None:
                    timer.cancel()
                self.timer_at = deadline
                self.timer = self.loop.call_at(deadline, self._check_timeout)
        return waiter

    async def wait_head(self, read_timeout: float | None) -> None:
        while not self.head_done:
            if self.error is not None:
                raise self.error
            try:
                await self._waiter(read_timeout)
            finally:
                self.waiter = None

    async def next_chunk(self, read_timeout: float | None) -> bytes:
        """The next piece of the body, or b"" at its end."""
        while True:
            body = self.body
            if body:
                # All that is buffered, at once (at most HIGH_WATER and one read): one
                # piece to relay instead of several.
                data = body[0] if len(body) == 1 else b"".join(body)
                body.clear()
                self.buffered = 0
                if self.paused and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                return data
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            try:
                await self._waiter(read_timeout)
            finally:
                self.waiter = None

    def reusable(self) -> bool:
        return self.complete and self.error is None and self.keep_alive and not self.closed

    def close(self) -> None:
        self.closed = True
        self.stop_timer()
        if self.transport is not None:
            self.transport.close()

    def stop_timer(self) -> None:
        timer = self.timer
        if timer is not None:
            self.timer = None
            timer.cancel()


# struct tcp_info (linux/tcp.h): tcpi_bytes_acked (u64, Linux 4.1+; counts the SYN
# too), tcpi_bytes_sent and tcpi_bytes_retrans (u64s, Linux 4.19+).
_TCPI_BYTES_ACKED = 120
_TCPI_BYTES_SENT = 200
_TCPI_SIZE = 216


def unacknowledged_bytes(sock: object) -> bool:
    """Whether the kernel sent bytes on this TCP connection that the peer never
    acknowledged. The request is the last thing written, so True means the upstream's
    TCP never had all of it, and no server can have begun the call: what makes a
    resend safe. False when it cannot be told (not Linux, no socket, a TLS tunnel's
    proxy acknowledges for the origin): then the call is never sent again."""
    getsockopt = getattr(sock, "getsockopt", None)
    if getsockopt is None or not hasattr(socket, "TCP_INFO"):
        return False
    try:
        info = getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_SIZE)
    except (OSError, ValueError):
        return False
    if not isinstance(info, bytes) or len(info) < _TCPI_SIZE:
        return False  # a kernel without tcpi_bytes_sent
    (acked,) = struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)
    sent, retransmitted = struct.unpack_from("QQ", info, _TCPI_BYTES_SENT)
    return bool(sent - retransmitted > acked - 1)


class _Chunks(AsyncIterator[bytes]):
    """A body that is not encoded, as it arrives. An iterator object rather than an
    async generator: a generator keeps its frame for the whole of a stream (~0.4 KB
    per stream in flight), and each step through it costs a generator resumption on
    top of the read's own coroutine."""

    __slots__ = ("_response",)

    def __init__(self, response: _Response) -> None:
        self._response = response

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        response = self._response
        conn = response._conn
        if conn is not None:
            data = await conn.next_chunk(response._read_timeout)
            if data:
                return data
        raise StopAsyncIteration


class _Response(UpstreamResponse):
    __slots__ = (
        "_conn",
        "_decoders",
        "_pool",
        "_read_timeout",
        "_stream",
        "content_type",
        "headers",
        "status",
    )

    def __init__(self, pool: ConnectionPool, conn: _Connection, timeouts: Timeouts) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._read_timeout = timeouts.read
        self._stream: AsyncIterator[bytes] | None = None
        self.status = conn.status
        self.headers = conn.headers
        content_type = ""
        encoded = False
        for name, value in conn.headers:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value.decode("latin-1")
            elif lowered == b"content-encoding":
                encoded = True
        self.content_type = content_type
        self._decoders = decoders_for(conn.headers) if encoded else []

    def chunks(self) -> AsyncIterator[bytes]:
        stream = self._stream
        if stream is None:
            stream = self._stream = _Chunks(self) if not self._decoders else self._decoded()
        return stream

    async def _decoded(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        timeout = self._read_timeout
        decoders = self._decoders
        while data := await conn.next_chunk(timeout):
            for piece in decode_pieces(decoders, 0, data):
                yield piece
        # What each decoder held back, through the ones after it.
        last = len(decoders) - 1
        for index, decoder in enumerate(decoders):
            tail = decoder.flush()
            if not tail:
                continue
            if index == last:
                yield tail
            else:
                for piece in decode_pieces(decoders, index + 1, tail):
                    yield piece

    async def read(self, limit: int | None = None) -> bytes:
        conn = self._conn
        if conn is None:
            return b""
        if self._decoders or self._stream is not None:
            return await super().read(limit)
        # The common case: not encoded, and the whole body is usually there already.
        parts = []
        size = 0
        while data := await conn.next_chunk(self._read_timeout):
            parts.append(data)
            if limit is not None:
                size += len(data)
                if size > limit:
                    break  # the rest is for chunks()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._pool._finished(conn)


class ConnectionPool(UpstreamClient):
    def __init__(
        self,
        *,
        max_connections: int | None = 1000,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        network: Network | None = None,
        retry_stale_connection: bool = True,
    ) -> None:
        self.max_connections = max_connections or 0
        self.keepalive_expiry = keepalive_expiry
        self._ssl = ssl_context  # given: used for every https origin (tests)
        # Proxies and trust per origin, decided on first connect (gateway.http.network).
        self._network = Network() if network is None else network
        self._any_proxy = self._network.any_proxy
        self.retry_stale_connection = retry_stale_connection
        self._idle: dict[_OriginKey, deque[_Connection]] = {}
        # One slot per call in progress: past max_connections a call waits (pool timeout).
        self._slots: asyncio.Semaphore | None = None
        self._slots_made = False
        self._closed = False

    # --- sending --------------------------------------------------------------------

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._closed:
            raise UpstreamConnectError("the upstream client is closed")
        if not self._slots_made:
            self._slots_made = True
            self._slots = asyncio.Semaphore(self.max_connections) if self.max_connections else None
        slots = self._slots
        if slots is not None:
            if slots.locked():
                try:
                    async with asyncio.timeout(request.timeouts.pool):
                        await slots.acquire()
                except TimeoutError:
                    raise UpstreamPoolTimeout(
                        f"all {self.max_connections} connections stayed busy"
                    ) from None
            else:
                await slots.acquire()  # free: no wait
        try:
            return await self._exchange(request)
        except BaseException:
            if slots is not None:
                slots.release()
            raise

    async def _exchange(self, request: UpstreamRequest) -> _Response:
        url = request.url
        key = (url.scheme, url.host, url.port)
        if self._any_proxy and url.scheme == "http":
            proxy = self._network.route(key).proxy
            message = _encode(_absolute_form(request, proxy) if proxy else request)
        else:
            message = _encode(request)
        timeouts = request.timeouts
        head_request = request.method == "HEAD"
        for attempt in (1, 2):
            conn = self._take_idle(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, url.origin, timeouts.connect)
            conn.begin(head_request=head_request)
            assert conn.transport is not None
            conn.transport.write(message)
            sent_at = conn.loop.time()
            try:
                await conn.wait_head(timeouts.read)
            except UpstreamProtocolError:
                conn.close()
                if (
                    reused
                    and self.retry_stale_connection
                    and attempt == 1
                    and not conn.got_bytes
                    and conn.unacknowledged
                    and conn.loop.time() - sent_at < KEEPALIVE_RACE_S
                ):
                    continue  # the keep-alive race: the server had closed it already
                raise
            except BaseException:
                conn.close()
                raise
            return _Response(self, conn, timeouts)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(
        self, key: _OriginKey, origin: str, connect_timeout: float | None
    ) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        route = self._network.route(key)
        context = (self._ssl or route.ssl) if scheme == "https" else None
        proxy = route.proxy
        try:
            async with asyncio.timeout(connect_timeout):
                if proxy is None:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self, key),
                        host,
                        port,
                        ssl=context,
                        server_hostname=host if context is not None else None,
                    )
                elif context is None:  # http through the proxy: absolute-form requests
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self, key), proxy.host, proxy.port
                    )
                else:
                    conn = await self._tunnel(key, proxy, context)
        except TimeoutError:
            raise UpstreamConnectTimeout(
                f"connecting to {origin} took longer than {connect_timeout:g}s"
                + (f" (through proxy {proxy.address})" if proxy is not None else "")
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamConnectError(
                f"TLS certificate of {origin} not trusted ({exc.reason}: {exc.verify_message});"
                " trust its CA with the ca_bundle setting or SSL_CERT_FILE"
            ) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS verification
            where = f" (proxy {proxy.address})" if proxy is not None else ""
            raise UpstreamConnectError((str(exc) or type(exc).__name__) + where) from None
        return conn

    async def _tunnel(
        self, key: _OriginKey, proxy: ProxyURL, context: ssl.SSLContext
    ) -> _Connection:
        """A CONNECT tunnel through ``proxy`` to the origin, with TLS inside it."""
        _, host, port = key
        loop = asyncio.get_running_loop()
        transport, reply = await loop.create_connection(_TunnelReply, proxy.host, proxy.port)
        try:
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            head = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"
            if proxy.authorization is not None:
                head += f"proxy-authorization: {proxy.authorization}\r\n"
            transport.write((head + "\r\n").encode("latin-1"))
            status_line = await reply.head
            status = status_line.split(" ", 2)
            if len(status) < 2 or len(status[1]) != 3 or not status[1].startswith("2"):
                hint = " (proxy authentication required)" if status[1:2] == ["407"] else ""
                raise UpstreamConnectError(
                    f"proxy {proxy.address} refused the tunnel to {authority}:"
                    f" {status_line.strip()!r}{hint}"
                )
            conn = _Connection(self, key)
            tls = await loop.start_tls(transport, conn, context, server_hostname=host)
            if tls is None:  # pragma: no cover  (the transport closed meanwhile)
                raise UpstreamConnectError(f"proxy {proxy.address} closed the tunnel")
            conn.connection_made(tls)
            return conn
        except BaseException:
            transport.close()
            raise

    # --- the idle stacks ------------------------------------------------------------

    def _take_idle(self, key: _OriginKey) -> _Connection | None:
        stack = self._idle.get(key)
        if not stack:
            return None
        now = asyncio.get_running_loop().time()
        while stack:
            conn = stack.pop()  # the most recently used: the least likely to be stale
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if conn.idle_until < now:
                conn.close()
                continue
            return conn
        return None

    def _finished(self, conn: _Connection) -> None:
        """A response is done with its connection: keep it, or close it."""
        if self._slots is not None:
            self._slots.release()
        conn.busy = False
        if not conn.reusable() or self._closed:
            conn.close()
            return
        conn.body.clear()
        conn.headers = []  # the response's (its own list): not held while idle
        # Its read timer too (a timer handle and libuv's ~0.5 KB, for up to
        # read_timeout): the next call arms one, at most one per call as before.
        conn.stop_timer()
        if conn.paused and conn.transport is not None:
            conn.paused = False
            conn.transport.resume_reading()
        now = asyncio.get_running_loop().time()
        conn.idle_until = now + self.keepalive_expiry
        stack = self._idle.get(conn.key)
        if stack is None:
            stack = self._idle[conn.key] = deque()
        while stack and stack[0].idle_until < now:
            stack.popleft().close()  # expired at the bottom of the stack
        stack.append(conn)

    def _forget(self, conn: _Connection) -> None:
        """An idle connection closed (by the server, or expired)."""
        stack = self._idle.get(conn.key)
        if stack is not None:
            with contextlib.suppress(ValueError):  # already taken off
                stack.remove(conn)

    async def aclose(self) -> None:
        self._closed = True
        for stack in self._idle.values():
            while stack:
                stack.pop().close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing


class _TunnelReply(asyncio.Protocol):
    """Reads a proxy's answer to CONNECT: its status line, once the head is in."""

    def __init__(self) -> None:
        self.head: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and not self.head.done():
            self.head.set_result(self.buffer.split(b"\r\n", 1)[0].decode("latin-1"))
        elif len(self.buffer) > 65536 and not self.head.done():
            self.head.set_exception(UpstreamConnectError("the proxy's CONNECT reply is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(
                UpstreamConnectError("the proxy closed the connection during CONNECT")
            )


def _absolute_form(request: UpstreamRequest, proxy: ProxyURL) -> UpstreamRequest:
    """The request as a proxy takes it: the full URL in the request line, and the
    proxy's credentials (the proxy removes them before forwarding)."""
    url = request.url
    headers = request.headers
    if proxy.authorization is not None:
        headers = [*headers, ("proxy-authorization", proxy.authorization)]
    return dataclasses.replace(
        request,
        url=dataclasses.replace(url, target=f"http://{url.host_header}{url.target}"),
        headers=headers,
    )


def _encode(request: UpstreamRequest) -> bytes:
    url = request.url
    body = request.body
    lines = [f"{request.method} {url.target} HTTP/1.1\r\nhost: {url.host_header}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in request.headers]
    expected = len(request.headers) + 3
    if body is not None:
        lines.append(f"content-length: {len(body)}\r\n")
        expected += 1
    lines.append("\r\n")
    head = "".join(lines)
    # One count for all: a CR or LF inside a name, value or the target would let the
    # caller's text inject headers or a second request.
    if head.count("\n") != expected or head.count("\r") != expected:
        raise UpstreamRequestError("a request header or the URL contains a line break")
    try:
        encoded = head.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise UpstreamRequestError(f"a request header is not latin-1: {exc}") from None
    return encoded + body if body else encoded
