"""The gateway's own upstream HTTP client (`gateway.http.client`) against real
loopback servers.

What the proxy relies on: headers exactly as given, a body that streams as it
arrives (decoded), a connection reused after a complete response and closed after a
cut one, bounded buffering for a slow reader, and failures raised as the upstream
layer's error types (a dropped connection is never a timeout).
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.http import upstream as up
from gateway.http.client import DECODED_PIECE, HIGH_WATER, ConnectionPool
from gateway.http.upstream import (
    Timeouts,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamURL,
)

STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Seen"], Awaitable[None]]


@dataclass
class Seen:
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    closed_by_peer: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    got_request: asyncio.Event = field(default_factory=asyncio.Event)


async def read_head(reader: asyncio.StreamReader, seen: Seen) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    seen.heads.append(head)
    seen.got_request.set()
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))
    return head


async def serve_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    while await read_head(reader, seen) is not None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b'x-upstream: yes\r\ncontent-length: 11\r\n\r\n{"ok":true}'
        )
        await writer.drain()


async def serve_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
) -> None:
    await read_head(reader, seen)
    writer.write(STREAM_HEAD)
    writer.write(b"d\r\ndata: first\n\n\r\n")
    await writer.drain()
    # The rest only once the client has seen the first event (or gone away).
    release = asyncio.ensure_future(seen.release.wait())
    gone = asyncio.ensure_future(reader.read(1))
    await asyncio.wait({release, gone}, return_when=asyncio.FIRST_COMPLETED)
    if gone.done():
        release.cancel()
        seen.closed_by_peer.set()
        return
    writer.write(b"e\r\ndata: second\n\n\r\n0\r\n\r\n")
    await writer.drain()
    if await reader.read(1) == b"":
        seen.closed_by_peer.set()


async def serve_silent(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
) -> None:
    await read_head(reader, seen)
    writer.write(STREAM_HEAD)
    await writer.drain()
    await reader.read(1)  # until the client gives up


async def serve_cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
    await read_head(reader, seen)
    writer.write(STREAM_HEAD + b"d\r\ndata: first\n\n\r\n20\r\ndata: hal")
    await writer.drain()
    writer.close()


async def serve_hang_up(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
) -> None:
    await read_head(reader, seen)
    writer.close()


async def serve_gzip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
) -> None:
    await read_head(reader, seen)
    body = gzip.compress(b'{"hello":"world"}')
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()


ServerFactory = Callable[..., Awaitable[tuple[str, Seen]]]


@pytest.fixture
async def server() -> AsyncIterator[ServerFactory]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[str, Seen]:
        seen = Seen()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.connections += 1
            try:
                await handler(reader, writer, seen)
            except ConnectionError:
                seen.closed_by_peer.set()
            finally:
                writer.close()

        srv = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}", seen

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    the_pool = ConnectionPool(max_connections=10)
    yield the_pool
    await the_pool.aclose()


def request(
    url: str,
    method: str = "POST",
    body: bytes | None = b"{}",
    headers: list[tuple[str, str]] | None = None,
    read: float = 5.0,
    pool: float = 5.0,
) -> UpstreamRequest:
    return UpstreamRequest(
        method,
        UpstreamURL.parse(url),
        headers or [],
        body,
        Timeouts(connect=5.0, read=read, pool=pool),
    )


async def test_headers_go_out_as_given_and_the_connection_is_reused(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, seen = await server(serve_ok)
    headers = [("authorization", "Bearer k"), ("x-custom", "a"), ("x-custom", "b")]
    for _ in range(3):
        response = await pool.send(
            request(url + "/v1/chat/completions?x=1", headers=headers, body=b'{"a":1}')
        )
        body = await response.read()
        await response.aclose()
        assert response.status == 200
        assert body == b'{"ok":true}'
        assert (b"x-upstream", b"yes") in response.headers
        assert response.content_type == "application/json"
    assert seen.connections == 1  # keep-alive: one connection for all three
    lines = seen.heads[0].decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions?x=1 HTTP/1.1"
    sent = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
    # Exactly the headers given (repeated ones kept, in order), plus Host and framing.
    port = url.rsplit(":", 1)[1]
    assert sent == [("host", f"127.0.0.1:{port}"), *headers, ("content-length", "7")]


async def test_a_header_with_a_line_break_is_refused_not_sent(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, seen = await server(serve_ok)
    for value in ("a\r\nx-injected: 1", "a\nb", "a\rb"):
        with pytest.raises(up.UpstreamRequestError):
            await pool.send(request(url, headers=[("x-custom", value)]))
    with pytest.raises(up.UpstreamRequestError):
        await pool.send(request(url, headers=[("x-custom", "snowman \u2603")]))
    assert seen.heads == []


async def test_a_stream_arrives_as_sent_and_ends(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, seen = await server(serve_stream)
    response = await pool.send(request(url))
    chunks = response.chunks()
    first = await anext(chunks)
    assert first == b"data: first\n\n"  # before the server sent the rest
    seen.release.set()
    rest = [chunk async for chunk in chunks]
    await response.aclose()
    assert b"".join(rest) == b"data: second\n\n"


async def test_closing_a_stream_early_closes_the_upstream_connection(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, seen = await server(serve_stream)
    response = await pool.send(request(url))
    assert await anext(response.chunks()) == b"data: first\n\n"
    await response.aclose()
    await asyncio.wait_for(seen.closed_by_peer.wait(), 5)


async def test_cancelling_the_caller_closes_the_upstream_connection(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, seen = await server(serve_stream)

    async def call() -> None:
        response = await pool.send(request(url))
        try:
            async for _ in response.chunks():
                pass
        finally:
            await response.aclose()

    task = asyncio.ensure_future(call())
    await asyncio.wait_for(seen.got_request.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(seen.closed_by_peer.wait(), 5)


async def test_silence_past_the_read_timeout_is_a_read_timeout(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, _ = await server(serve_silent)
    response = await pool.send(request(url, read=0.2))
    with pytest.raises(up.UpstreamReadTimeout):
        await response.read()
    await response.aclose()


async def test_the_read_timeout_counts_silence_not_the_whole_stream(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    """A stream that takes several read timeouts in all, each gap well within one, is
    not timed out; the silence after it is (one timer per connection, re-checked)."""

    async def serve_steady(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(8):
            await asyncio.sleep(0.06)
            event = b"data: %d\n\n" % i
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        await asyncio.sleep(5)  # then silence

    url, _ = await server(serve_steady)
    response = await pool.send(request(url, read=0.2))
    received = b""
    with pytest.raises(up.UpstreamReadTimeout):
        async for chunk in response.chunks():
            received += chunk
    await response.aclose()
    assert received == b"".join(b"data: %d\n\n" % i for i in range(8))


async def test_no_response_head_within_the_read_timeout_is_a_read_timeout(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    async def serve_nothing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        if await reader.read(1) == b"":
            seen.closed_by_peer.set()

    url, seen = await server(serve_nothing)
    with pytest.raises(up.UpstreamReadTimeout):
        await pool.send(request(url, read=0.2))
    await asyncio.wait_for(seen.closed_by_peer.wait(), 5)  # and the connection is closed


async def test_a_cut_body_is_a_protocol_error_not_a_timeout(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, _ = await server(serve_cut)
    response = await pool.send(request(url))
    got = b""
    with pytest.raises(up.UpstreamProtocolError) as caught:
        async for chunk in response.chunks():
            got += chunk
    await response.aclose()
    assert not isinstance(caught.value, up.UpstreamTimeoutError)
    assert got.startswith(b"data: first\n\n")


async def test_a_hang_up_before_the_response_is_a_protocol_error(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    url, _ = await server(serve_hang_up)
    with pytest.raises(up.UpstreamProtocolError):
        await pool.send(request(url))


async def test_a_malformed_response_is_a_protocol_error(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    async def serve_garbage(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await reader.read(1)

    url, _ = await server(serve_garbage)
    with pytest.raises(up.UpstreamProtocolError):
        await pool.send(request(url))


async def test_nothing_listening_is_a_connect_error(pool: ConnectionPool) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(up.UpstreamConnectError):
        await pool.send(request(f"http://127.0.0.1:{port}/", method="GET", body=None))


async def test_compressed_bodies_are_decoded(server: ServerFactory, pool: ConnectionPool) -> None:
    url, _ = await server(serve_gzip)
    response = await pool.send(request(url, method="GET", body=None))
    assert await response.read() == b'{"hello":"world"}'
    await response.aclose()

    payload = b'{"hello":"deflate"}' * 50
    for encoded in (zlib.compress(payload), zlib.compress(payload)[2:-4]):  # zlib, raw

        async def serve_deflate(
            reader: asyncio.StreamReader,
            writer: asyncio.StreamWriter,
            seen: Seen,
            body: bytes = encoded,
        ) -> None:
            await read_head(reader, seen)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-encoding: deflate\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            for i in range(0, len(body), 7):  # in small chunks
                piece = body[i : i + 7]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        url, _ = await server(serve_deflate)
        response = await pool.send(request(url, method="GET", body=None))
        assert b"".join([c async for c in response.chunks()]) == payload
        await response.aclose()


async def test_a_body_that_does_not_decode_is_a_decoding_error(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    async def serve_bad_gzip(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 9\r\n\r\nnot gzip!"
        )
        await writer.drain()

    url, _ = await server(serve_bad_gzip)
    response = await pool.send(request(url))
    with pytest.raises(up.UpstreamDecodingError):
        await response.read()
    await response.aclose()


async def test_a_body_delimited_by_the_connection_close(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    async def serve_until_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")
        await writer.drain()
        writer.write(b", and more")
        await writer.drain()
        writer.close()

    url, seen = await server(serve_until_close)
    for _ in range(2):  # the connection is not reused: the second call opens another
        response = await pool.send(request(url))
        assert await response.read() == b"all of it, and more"
        await response.aclose()
    assert seen.connections == 2


async def test_trailer_fields_never_join_the_response_head(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    """A chunked body's trailer fields come after the body: they are not the head's."""

    async def serve_trailers(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        while await read_head(reader, seen) is not None:
            head = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"trailer: set-cookie, content-type\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            trailers = b"0\r\nset-cookie: session=evil\r\ncontent-type: text/html\r\n\r\n"
            if len(seen.heads) == 1:  # all in one write: parsed in one go
                writer.write(head + b'b\r\n{"ok":true}\r\n' + trailers)
            else:  # the trailers arrive after the caller has the head
                writer.write(head + b'b\r\n{"ok":true}\r\n')
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(trailers)
            await writer.drain()

    url, seen = await server(serve_trailers)
    for _ in range(2):
        response = await pool.send(request(url))
        assert await response.read() == b'{"ok":true}'
        await response.aclose()
        names = [name.lower() for name, _ in response.headers]
        assert b"set-cookie" not in names
        assert names.count(b"content-type") == 1
        assert response.content_type == "application/json"
    assert seen.connections == 1  # the body ended cleanly: the connection was reused


def serve_gzip_bomb(size: int) -> Handler:
    """``size`` zero bytes, gzip-compressed (~1000:1), in one chunked write."""
    compressed = gzip.compress(b"\0" * size, compresslevel=9)

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(compressed), compressed)
        )
        await writer.drain()

    return handler


async def test_a_gzip_bomb_is_decoded_in_bounded_pieces(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    size = 16 * 1024 * 1024
    url, _ = await server(serve_gzip_bomb(size))
    response = await pool.send(request(url))
    total = 0
    async for chunk in response.chunks():
        # One network read of ~16 KB inflates to 16 MB: it must not become one piece.
        assert len(chunk) <= DECODED_PIECE
        total += len(chunk)
    await response.aclose()
    assert total == size


@pytest.mark.parametrize("encoded", [False, True])
async def test_a_read_with_a_limit_stops_there_and_chunks_go_on(
    server: ServerFactory, pool: ConnectionPool, encoded: bool
) -> None:
    size = 4 * 1024 * 1024
    limit = 1024 * 1024
    if encoded:
        url, _ = await server(serve_gzip_bomb(size))
    else:

        async def serve_zeros(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
        ) -> None:
            await read_head(reader, seen)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
            for _ in range(size // 65536):
                writer.write(b"\0" * 65536)
                await writer.drain()

        url, _ = await server(serve_zeros)
    response = await pool.send(request(url))
    head = await response.read(limit)
    assert limit < len(head) <= limit + max(DECODED_PIECE, HIGH_WATER)
    rest = sum([len(chunk) async for chunk in response.chunks()])
    await response.aclose()
    assert len(head) + rest == size
    # Under the limit, the whole body.
    response = await pool.send(request(url))
    assert len(await response.read(size)) == size
    await response.aclose()


async def test_an_informational_response_is_skipped(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    async def serve_early_hints(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()

    url, _ = await server(serve_early_hints)
    response = await pool.send(request(url))
    assert response.status == 201
    assert response.headers == [(b"content-length", b"2")]
    assert await response.read() == b"ok"
    await response.aclose()


async def test_a_head_response_ends_without_a_body(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    async def serve_head(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        await writer.drain()
        await reader.read(1)

    url, _ = await server(serve_head)
    response = await pool.send(request(url, method="HEAD", body=None))
    assert response.status == 200
    assert await response.read() == b""
    await response.aclose()


async def test_a_slow_reader_pauses_the_upstream(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    size = 16 * HIGH_WATER
    drained = asyncio.Event()

    async def serve_big(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        await read_head(reader, seen)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        drained.set()

    url, _ = await server(serve_big)
    response = await pool.send(request(url))
    chunks = response.chunks()
    got = len(await anext(chunks))
    await asyncio.sleep(0.3)
    # Nothing read for a while: the client stopped reading, so the server could not
    # hand all of it to the socket (the kernel buffers hold far less than 4 MB).
    assert not drained.is_set()
    async for chunk in chunks:
        got += len(chunk)
    await response.aclose()
    assert got == size
    await asyncio.wait_for(drained.wait(), 5)


async def test_an_expired_idle_connection_is_not_reused(server: ServerFactory) -> None:
    url, seen = await server(serve_ok)
    the_pool = ConnectionPool(max_connections=10, keepalive_expiry=0.05)
    try:
        for _ in range(2):
            response = await the_pool.send(request(url))
            await response.read()
            await response.aclose()
            await asyncio.sleep(0.1)
    finally:
        await the_pool.aclose()
    assert seen.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    async def serve_once(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        # Keep-alive announced, then closed anyway (as servers with a short idle
        # timeout do).
        await read_head(reader, seen)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    url, seen = await server(serve_once)
    for _ in range(3):
        response = await pool.send(request(url))
        assert await response.read() == b"ok"
        await response.aclose()
        await asyncio.sleep(0.02)
    assert seen.connections == 3


def serve_then_drop(delay: float) -> Handler:
    """The first connection answers one request, then takes the next one and closes
    after ``delay`` without a word; later connections answer everything."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
    ) -> None:
        first_connection = seen.connections == 1
        answered = 0
        while await read_head(reader, seen) is not None:
            if first_connection and answered == 1:
                await asyncio.sleep(delay)
                return  # closed (by the fixture) with the request unanswered
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            answered += 1

    return handler


async def test_a_call_the_upstream_had_read_is_not_sent_again_even_at_once(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    """The upstream read the whole request (its TCP acknowledged it) before dropping
    the connection: it may have begun the call, so it is not sent again, however soon
    the drop (the keep-alive race itself is in tests/test_upstream_resend.py)."""
    url, seen = await server(serve_then_drop(0.0))
    response = await pool.send(request(url))
    assert await response.read() == b"ok"
    await response.aclose()
    with pytest.raises(UpstreamProtocolError):
        await pool.send(request(url))
    assert seen.connections == 1
    assert len(seen.heads) == 2  # the second call went out once


async def test_a_connection_dropped_after_the_race_window_is_not_retried(
    server: ServerFactory, pool: ConnectionPool
) -> None:
    """The provider may have been generating (and billing) for a while: sending the
    call again would do it twice."""
    url, seen = await server(serve_then_drop(0.8))
    response = await pool.send(request(url))
    await response.read()
    await response.aclose()
    with pytest.raises(up.UpstreamProtocolError):
        await pool.send(request(url))
    assert seen.connections == 1
    assert len(seen.heads) == 2


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = str(folder / "key.pem"), str(folder / "cert.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_https_with_a_trusted_certificate(
    server: ServerFactory, tls_files: tuple[str, str]
) -> None:
    key, cert = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    url, seen = await server(serve_ok, tls=server_context)

    trusting = ConnectionPool(ssl_context=ssl.create_default_context(cafile=cert))
    try:
        for _ in range(2):
            response = await trusting.send(request(url))
            assert await response.read() == b'{"ok":true}'
            await response.aclose()
    finally:
        await trusting.aclose()
    assert seen.connections == 1

    default = ConnectionPool()  # the public CA bundle does not know this certificate
    try:
        with pytest.raises(up.UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await default.send(request(url))
    finally:
        await default.aclose()


async def test_past_max_connections_a_call_waits_then_gets_pool_timeout(
    server: ServerFactory,
) -> None:
    url, seen = await server(serve_stream)
    the_pool = ConnectionPool(max_connections=1)
    try:
        first = await the_pool.send(request(url, pool=0.2))
        # The one connection is busy: the next call waits for it, then gives up.
        with pytest.raises(up.UpstreamPoolTimeout):
            await the_pool.send(request(url, pool=0.2))
        await first.aclose()
        # Closed, the connection is free again.
        seen.release.set()
        second = await the_pool.send(request(url, pool=0.2))
        assert await anext(second.chunks()) == b"data: first\n\n"
        await second.aclose()
    finally:
        await the_pool.aclose()


def test_urls_are_split_for_the_request_line() -> None:
    parsed = UpstreamURL.parse("https://user:p%40ss@[::1]:8443/v1/chat?x=1")
    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "::1", 8443)
    assert parsed.host_header == "[::1]:8443"
    assert parsed.target == "/v1/chat?x=1"
    assert parsed.basic_auth == "Basic dXNlcjpwQHNz"  # user:p@ss, decoded as httpx does
    plain = UpstreamURL.parse("http://api.example.com")
    assert (plain.port, plain.host_header, plain.target) == (80, "api.example.com", "/")
    for bad in ("ftp://example.com/", "http:///path", "http://example.com:99999/"):
        with pytest.raises(up.UpstreamRequestError):
            UpstreamURL.parse(bad)
