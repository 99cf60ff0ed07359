"""HTTP/1.1 message framing in the upstream client, against real loopback servers:
responses that have no body whatever their headers say (204, 304, any reply to
HEAD), and `Connection: close` replies (with a length, or delimited by the close).
Each must end where it should: no hang waiting for a body that never comes, no
bytes of one response taken for the next, and a connection reused only when it can be."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from gateway.http.client import ConnectionPool
from gateway.http.network import Network
from gateway.http.upstream import Timeouts, UpstreamRequest, UpstreamURL
from tests.network_helpers import read_request

# A reply to a request head, and whether the server closes the connection after it.
Replier = Callable[[bytes], tuple[bytes, bool]]


@dataclass
class Seen:
    url: str = ""
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)


@contextlib.asynccontextmanager
async def server(replier: Replier) -> AsyncIterator[Seen]:
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        try:
            while (head := await read_request(reader)) is not None:
                seen.heads.append(head)
                reply, close = replier(head)
                writer.write(reply)
                await writer.drain()
                if close:
                    break
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    seen.url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/x"
    try:
        yield seen
    finally:
        srv.close()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    the_pool = ConnectionPool(network=Network(env={}))
    yield the_pool
    await the_pool.aclose()


def request(url: str, method: str = "GET") -> UpstreamRequest:
    body = b"{}" if method == "POST" else None
    return UpstreamRequest(method, UpstreamURL.parse(url), [], body, Timeouts(5, 2, 5))


async def fetch(pool: ConnectionPool, url: str, method: str = "GET") -> tuple[int, bytes]:
    response = await pool.send(request(url, method))
    try:
        # A client waiting for a body that never comes would fail on the 2 s read timeout.
        return response.status, await asyncio.wait_for(response.read(), 1.0)
    finally:
        await response.aclose()


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def then_ok(first: bytes) -> Replier:
    """``first`` for the first request, a 200 "ok" for the others."""
    replies = [first]

    def reply(head: bytes) -> tuple[bytes, bool]:
        return (replies.pop() if replies else OK), False

    return reply


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        # A 204 has no body even if a length is announced (RFC 9110 6.4.1).
        b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
        # A 304's length is the resource's, not this reply's.
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 1234\r\netag: x\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n",
    ],
    ids=["204", "204-with-length", "304-with-length", "304-chunked"],
)
async def test_204_and_304_have_no_body_and_keep_the_connection(
    pool: ConnectionPool, reply: bytes
) -> None:
    async with server(then_ok(reply)) as seen:
        status, body = await fetch(pool, seen.url)
        assert (status, body) == (int(reply.split(b" ")[1]), b"")
        # The next response on the same connection is read as its own.
        assert await fetch(pool, seen.url) == (200, b"ok")
    assert seen.connections == 1
    assert len(seen.heads) == 2


async def test_a_reply_to_head_has_no_body_whatever_its_length(pool: ConnectionPool) -> None:
    head_reply = b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\ncontent-type: text/plain\r\n\r\n"
    async with server(then_ok(head_reply)) as seen:
        response = await pool.send(request(seen.url, "HEAD"))
        assert response.status == 200
        assert (b"content-length", b"4096") in response.headers
        assert await asyncio.wait_for(response.read(), 1.0) == b""
        await response.aclose()
        assert seen.heads[0].startswith(b"HEAD /v1/x HTTP/1.1\r\n")
        assert await fetch(pool, seen.url) == (200, b"ok")  # nothing of it left over


async def test_connection_close_with_a_length_is_not_reused(pool: ConnectionPool) -> None:
    def reply(head: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nfirst", True

    async with server(reply) as seen:
        assert await fetch(pool, seen.url, "POST") == (200, b"first")
        assert await fetch(pool, seen.url, "POST") == (200, b"first")
    assert seen.connections == 2  # the second call opened its own connection
    assert len(seen.heads) == 2  # and nothing was sent into the closed one


async def test_connection_close_without_a_length_ends_the_body_at_the_close(
    pool: ConnectionPool,
) -> None:
    body = b"x" * 300_000  # several reads' worth

    def reply(head: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + body, True

    async with server(reply) as seen:
        assert await fetch(pool, seen.url) == (200, body)
        assert await fetch(pool, seen.url) == (200, body)
    assert seen.connections == 2


async def test_connection_close_on_a_204_is_not_reused(pool: ConnectionPool) -> None:
    def reply(head: bytes) -> tuple[bytes, bool]:
        return b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n", True

    async with server(reply) as seen:
        assert await fetch(pool, seen.url, "POST") == (204, b"")
        assert await fetch(pool, seen.url, "POST") == (204, b"")
    assert seen.connections == 2
    assert len(seen.heads) == 2
