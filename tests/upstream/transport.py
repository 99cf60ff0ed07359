"""The fake upstream's scripts in process: an httpx transport that answers exactly what
`tests.upstream.server.MockUpstream` would answer on loopback for the same script."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tests.upstream.server import Reply, Script


def to_response(reply: Reply) -> httpx.Response:
    """``reply`` as an httpx response (streamed chunk by chunk, with its pauses)."""
    headers = [("content-type", reply.content_type), ("x-request-id", "req_mock")]
    headers += reply.headers
    if not reply.streaming and not reply.wait:
        return httpx.Response(reply.status, headers=headers, content=b"".join(reply.chunks))

    async def body() -> AsyncIterator[bytes]:
        if reply.wait:  # in process the headers come at once; the body waits
            await asyncio.sleep(reply.wait)
        for i, chunk in enumerate(reply.chunks):
            if reply.delay and i:
                await asyncio.sleep(reply.delay)
            yield chunk

    return httpx.Response(reply.status, headers=headers, content=body())


def handle(script: Script, request: httpx.Request) -> httpx.Response:
    """One request through ``script`` (a request it does not answer is a 404)."""
    reply = script(
        request.method, request.url.raw_path.decode(), dict(request.headers), request.content
    )
    if reply is None:
        reply = Reply(404, "application/json", [b'{"error": {"message": "no script answer"}}'])
    return to_response(reply)


def script_transport(script: Script) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: handle(script, request))
