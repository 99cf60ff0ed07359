"""An in-process fake (an httpx transport, e.g. `tests.fakes.FakeUpstream`) served on
loopback, so the gateway's builtin client (`gateway.http.client.ConnectionPool`) can
be tested against exactly what the in-process suite scripts for `HttpxUpstream`.

It runs on the test's own event loop (the fakes' handlers may wait on the test's
events); one listener per upstream host the settings name, so a request reaches the
fake with the URL (host included) it would have had in process. A body that fails
mid-stream (the fake raises) ends the connection with a TCP reset, as a dying peer
would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.upstream.server import read_request, reset

logger = logging.getLogger(__name__)
# Framing is the bridge's to write: these come from the fake's response, not the wire.
HOP = frozenset({"content-length", "transfer-encoding"})


class TransportBridge:
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self._servers: dict[str, asyncio.Server] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def rewrite(self, base_url: str) -> str:
        """``base_url`` pointed at a loopback listener that stands for its host."""
        parts = urlsplit(base_url)
        netloc = parts.netloc
        if netloc not in self._servers:

            async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                await self._connection(r, w, parts.scheme, netloc)

            self._servers[netloc] = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = self._servers[netloc].sockets[0].getsockname()[1]
        return urlunsplit(("http", f"127.0.0.1:{port}", parts.path, parts.query, ""))

    async def aclose(self) -> None:
        for server in self._servers.values():
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str, host: str
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                received = await read_request(reader)
                if received is None:
                    return
                # Header values are octets (read as latin-1): hand them on unchanged.
                headers = [
                    (k.encode("latin-1"), (host if k == "host" else v).encode("latin-1"))
                    for k, v in received.headers
                    if k != "transfer-encoding"
                ]
                request = httpx.Request(
                    received.method,
                    f"{scheme}://{host}{received.target}",
                    headers=headers,
                    content=received.body,
                )
                response = await self.transport.handle_async_request(request)
                if not await _send(writer, response):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            with contextlib.suppress(Exception):
                writer.close()


async def _send(writer: asyncio.StreamWriter, response: httpx.Response) -> bool:
    """Write ``response``; False when the connection is done for."""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = "Status"
    head = [f"HTTP/1.1 {response.status_code} {phrase}".encode("latin-1")]
    head += [k + b": " + v for k, v in response.headers.raw if k.lower().decode() not in HOP]
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    if response.status_code in (204, 304) or "content-length" in response.headers:
        body = b"".join([chunk async for chunk in stream])
        head.append(b"content-length: %d" % len(body))
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        return True
    head.append(b"transfer-encoding: chunked")
    writer.write(b"\r\n".join(head) + b"\r\n\r\n")
    await writer.drain()
    try:
        async for chunk in stream:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
    except ConnectionError:
        return False
    except Exception as exc:  # the fake's scripted failure: the peer dies mid-body
        logger.debug("fake upstream body failed mid-stream: %r", exc)
        reset(writer)
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True
