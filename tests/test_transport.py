"""The aiohttp-backed httpx transport against a real loopback server.

What the proxy relies on: headers exactly as httpx built them, a body that streams as
it arrives, a connection reused after a complete response and closed after a cut
one, and failures raised as the httpx errors httpcore raises (a dropped connection is
never a timeout).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from gateway.transport import AiohttpTransport

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


ServerFactory = Callable[[Handler], Awaitable[tuple[str, Seen]]]


@pytest.fixture
async def server() -> AsyncIterator[ServerFactory]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> tuple[str, Seen]:
        seen = Seen()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.connections += 1
            try:
                await handler(reader, writer, seen)
            except ConnectionError:
                seen.closed_by_peer.set()
            finally:
                writer.close()

        srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}", seen

    yield start
    for srv in servers:
        srv.close()


def client(read: float = 5.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        timeout=httpx.Timeout(5.0, read=read),
        trust_env=False,
    )


async def test_headers_go_out_as_built_and_the_connection_is_reused(server: ServerFactory) -> None:
    url, seen = await server(serve_ok)
    async with client() as c:
        for _ in range(3):
            request = c.build_request(
                "POST",
                url + "/v1/chat/completions?x=1",
                headers=[("authorization", "Bearer k"), ("x-custom", "a"), ("x-custom", "b")],
                content=b'{"a":1}',
            )
            response = await c.send(request, stream=True)
            body = await response.aread()
            await response.aclose()
            assert response.status_code == 200
            assert body == b'{"ok":true}'
            assert response.headers["x-upstream"] == "yes"
    assert seen.connections == 1  # keep-alive: one connection for all three
    lines = seen.heads[0].decode().split("\r\n")
    assert lines[0] == "POST /v1/chat/completions?x=1 HTTP/1.1"
    sent = [tuple(line.split(": ", 1)) for line in lines[1:] if line]
    expected = [(k.decode(), v.decode()) for k, v in request.headers.raw]
    # Exactly httpx's headers (repeated ones kept), nothing of aiohttp's own.
    assert sorted((k.lower(), v) for k, v in sent) == sorted((k.lower(), v) for k, v in expected)


async def test_a_stream_arrives_as_sent_and_ends(server: ServerFactory) -> None:
    url, seen = await server(serve_stream)
    async with client() as c:
        response = await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
        chunks = response.aiter_bytes()
        first = await anext(chunks)
        assert first == b"data: first\n\n"  # before the server sent the rest
        seen.release.set()
        rest = [chunk async for chunk in chunks]
        await response.aclose()
    assert b"".join(rest) == b"data: second\n\n"


async def test_closing_a_stream_early_closes_the_upstream_connection(server: ServerFactory) -> None:
    url, seen = await server(serve_stream)
    async with client() as c:
        response = await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
        assert await anext(response.aiter_bytes()) == b"data: first\n\n"
        await response.aclose()
        await asyncio.wait_for(seen.closed_by_peer.wait(), 5)


async def test_cancelling_the_caller_closes_the_upstream_connection(server: ServerFactory) -> None:
    url, seen = await server(serve_stream)
    async with client() as c:

        async def call() -> None:
            response = await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
            try:
                async for _ in response.aiter_bytes():
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


async def test_silence_past_the_read_timeout_is_a_read_timeout(server: ServerFactory) -> None:
    url, _ = await server(serve_silent)
    async with client(read=0.2) as c:
        response = await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()
        await response.aclose()


async def test_a_cut_body_is_a_protocol_error_not_a_timeout(server: ServerFactory) -> None:
    url, _ = await server(serve_cut)
    async with client() as c:
        response = await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
        got = b""
        with pytest.raises(httpx.TransportError) as caught:
            async for chunk in response.aiter_bytes():
                got += chunk
        await response.aclose()
    assert not isinstance(caught.value, httpx.TimeoutException)
    assert got.startswith(b"data: first\n\n")


async def test_a_hang_up_before_the_response_is_a_protocol_error(server: ServerFactory) -> None:
    url, _ = await server(serve_hang_up)
    async with client() as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.send(c.build_request("POST", url, content=b"{}"), stream=True)


async def test_nothing_listening_is_a_connect_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client() as c:
        with pytest.raises(httpx.ConnectError):
            await c.send(c.build_request("GET", f"http://127.0.0.1:{port}/"), stream=True)


async def test_a_compressed_body_is_decoded_by_httpx(server: ServerFactory) -> None:
    url, _ = await server(serve_gzip)
    async with client() as c:
        response = await c.send(c.build_request("GET", url), stream=True)
        assert await response.aread() == b'{"hello":"world"}'
        await response.aclose()


async def test_past_max_connections_a_call_waits_then_gets_pool_timeout(
    server: ServerFactory,
) -> None:
    url, seen = await server(serve_stream)
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=1))
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(5.0, pool=0.2), trust_env=False
    ) as c:
        first = await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
        # The one connection is busy: the next call waits for it, then gives up.
        with pytest.raises(httpx.PoolTimeout):
            await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
        await first.aclose()
        # Closed, the connection is free again.
        seen.release.set()
        second = await c.send(c.build_request("POST", url, content=b"{}"), stream=True)
        assert await anext(second.aiter_bytes()) == b"data: first\n\n"
        await second.aclose()
