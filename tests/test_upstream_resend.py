"""The keep-alive race (`upstream_retry_stale_connection`): a call that went out on a
kept-alive connection the upstream had already closed is sent again on a new one,
only when the upstream's TCP never acknowledged all of it (so no server can have
begun it); never once it did, and never with the setting off."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from gateway.config import Settings
from gateway.http.client import ConnectionPool
from gateway.http.network import Network
from gateway.http.upstream import Timeouts, UpstreamProtocolError, UpstreamRequest, UpstreamURL

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="TCP_INFO's byte counters are Linux's"
)


class Upstream:
    """Answers the first request on a connection and closes it at once, before the
    next request can arrive: that request meets a closed socket (RST, never read)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        self.requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        # No Connection: close; the socket closes right after the reply.
        await writer.drain()
        writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    fake = Upstream()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    yield fake
    server.close()


def request(url: str) -> UpstreamRequest:
    body = b'{"model":"m","messages":[]}' * 40
    return UpstreamRequest("POST", UpstreamURL.parse(url), [], body, Timeouts(5, 5, 5))


async def two_calls(pool: ConnectionPool, url: str) -> list[bytes]:
    """Two calls back to back: the second takes the first one's connection before
    the loop has seen the upstream close it."""
    bodies = []
    try:
        for _ in range(2):
            response = await pool.send(request(url))
            bodies.append(await response.read())
            await response.aclose()
    finally:
        await pool.aclose()
    return bodies


@linux_only
async def test_a_call_sent_into_a_closed_connection_goes_again_on_a_new_one(
    upstream: Upstream,
) -> None:
    pool = ConnectionPool(network=Network(env={}), retry_stale_connection=True)
    assert await two_calls(pool, upstream.url) == [b"ok", b"ok"]
    assert upstream.connections == 2
    assert upstream.requests == 2  # each call reached the upstream once


async def test_with_the_setting_off_the_race_fails_the_call(upstream: Upstream) -> None:
    pool = ConnectionPool(network=Network(env={}), retry_stale_connection=False)
    with pytest.raises(UpstreamProtocolError):
        await two_calls(pool, upstream.url)
    assert upstream.connections == 1
    assert upstream.requests == 1


def test_the_setting_is_on_by_default_and_reaches_the_client() -> None:
    from gateway.app import build_upstream

    assert Settings().upstream_retry_stale_connection is True
    assert Settings.from_mapping({}).upstream_retry_stale_connection is True
    off = Settings.from_mapping({"upstream_retry_stale_connection": False})
    client = build_upstream(off)
    assert isinstance(client, ConnectionPool)
    assert client.retry_stale_connection is False
