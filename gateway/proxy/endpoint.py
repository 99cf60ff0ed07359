"""The proxy's HTTP side: the ASGI endpoint of each proxied path, and the dispatch that
sends those paths to it ahead of Starlette.

`ProxyEndpoint` reads the request (up to ``max_body_bytes``, within
``client_body_timeout``), watches for the client
hanging up (which cancels the call, and so the upstream request), and hands the call
to `ProxyPipeline` (gateway/proxy/pipeline.py) with an `ASGISink` to answer through.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import BodyTooLarge, InvalidRequest, RequestTimeout, SpanlabError
from gateway.http.server import CONNECTION_KEY, DisconnectHook
from gateway.proxy.operations import ProxyRequest
from gateway.proxy.pipeline import ProxyPipeline

__all__ = ["ASGISink", "ProxyEndpoint", "ProxyRoutes", "body_timeout", "read_body"]


class ASGISink:
    __slots__ = ("_send", "client_gone", "ended", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.ended = False
        self.client_gone = False

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def send(self, data: bytes) -> None:
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError:
            self.client_gone = True
            raise

    async def end(self) -> None:
        self.ended = True
        try:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            self.client_gone = True
            raise


class _ClientGone(Exception):
    pass


async def read_body(
    receive: Receive, headers: list[tuple[str, str]], limit: int, deadline_s: float
) -> bytes:
    """The whole request body; `BodyTooLarge` as soon as it passes ``limit``, and
    `RequestTimeout` when it is not all in within ``deadline_s`` seconds.

    The deadline costs nothing when the body comes with the headers (the usual case:
    the first message is the whole of it); only a body still arriving gets a timer.
    """
    for name, value in headers:
        if name == "content-length":
            try:
                declared = int(value)
            except ValueError:
                raise InvalidRequest("Invalid Content-Length header.") from None
            if declared > limit:
                raise BodyTooLarge(_too_large(limit))
    message: Message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone()
    chunk: bytes = message.get("body", b"")
    if len(chunk) > limit:
        raise BodyTooLarge(_too_large(limit))
    if not message.get("more_body", False):
        return chunk
    try:
        async with asyncio.timeout(deadline_s):
            return await _read_rest(receive, chunk, limit)
    except TimeoutError:
        raise body_timeout() from None


async def _read_rest(receive: Receive, first: bytes, limit: int) -> bytes:
    chunks = [first]
    size = len(first)
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(_too_large(limit))
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def body_timeout() -> RequestTimeout:
    """The error for a body that did not arrive in time; the connection is closed after
    it (the rest of the body may still be on its way)."""
    return RequestTimeout(
        "The request body did not arrive within client_body_timeout.",
        headers={"connection": "close"},
    )


def _too_large(limit: int) -> str:
    mib = limit / (1024 * 1024)
    size = f"{mib:g} MiB" if mib >= 1 and math.isclose(mib, round(mib)) else f"{limit} bytes"
    return f"Request body is larger than max_body_bytes ({size})."


class ProxyEndpoint:
    """The ASGI app of one proxied path; the pipeline comes from the app's state."""

    def __init__(self, operation: str, pipeline: Callable[[Scope], ProxyPipeline]) -> None:
        self.operation = operation
        self.pipeline = pipeline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pipeline = self.pipeline(scope)
        raw_headers = scope["headers"]
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw_headers]
        sink = ASGISink(send)
        request = ProxyRequest(
            operation=self.operation,
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            query=scope.get("query_string", b"").decode("latin-1"),
        )
        if pipeline.quotas is not None:
            request.charge = pipeline.quotas.charge_of(scope)
        if isinstance(raw_headers, list):
            # Nothing reads the received headers past here (the guards in front and the
            # quota key just did), and the server keeps its list, in the scope, as
            # long as the connection: its bytes held beside the decoded copy for a
            # stream's life, and after it while the connection is kept alive (~1 KB).
            raw_headers.clear()
        try:
            settings = pipeline.settings
            request.body = await read_body(
                receive, headers, settings.max_body_bytes, settings.client_body_timeout
            )
        except _ClientGone:
            pipeline.abandoned(request)
            return
        except SpanlabError as exc:
            await pipeline.reject(request, exc, sink)
            return

        # The client may hang up at any point: that cancels this task, which cancels
        # the upstream call. Under `spanlab serve` the connection calls back when it
        # is lost (`DisconnectHook`); under another server a watcher task waits for
        # the disconnect. Plain asyncio, not an anyio task group: the group's scope,
        # handles and bookkeeping cost about as much CPU per call as the rest of this
        # method; and the callback saves the watcher's task, its frames and its
        # future (~2 KB per stream in flight, traced), and a task's start and
        # cancellation per call.
        task = asyncio.current_task()
        assert task is not None
        finished = False

        def gone() -> None:
            # Servers also report "disconnect" once the response is complete; only a
            # disconnect before that is an abort.
            if not sink.ended and not finished:
                sink.client_gone = True
                task.cancel()

        connection: DisconnectHook | None = scope.get(CONNECTION_KEY)
        watcher: asyncio.Task[None] | None = None
        if connection is not None:
            connection.on_disconnect = gone
        else:

            async def watch_disconnect() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        gone()
                        return

            watcher = asyncio.get_running_loop().create_task(watch_disconnect())
        try:
            await pipeline.handle(request, sink)
        except asyncio.CancelledError:
            if sink.client_gone:
                # Our own cancellation (the span says client_aborted) ends the call
                # here; another one on top of it goes on up.
                if task.uncancel() > 0:
                    raise
            elif not sink.started:
                raise
            # Else the server cut the call (shutdown past shutdown_grace_s): the
            # pipeline has told the client and recorded the span, so the call ends
            # here, where raising on would make the server log a traceback per call.
        finally:
            finished = True
            if watcher is not None:
                watcher.cancel()
            elif connection is not None and connection.on_disconnect is gone:
                # (A pipelined request's call may have set its own since.)
                connection.on_disconnect = None


class ProxyRoutes:
    """A proxied path goes straight to its endpoint (`gateway.app.Gateway` puts this in
    front of Starlette, behind the Host/Origin guard).

    The proxy's own error handling answers every call on these paths, so Starlette's
    router and its error and exception middleware (a route scan and wrappers around
    every message sent) have nothing to add there; any other path, or a method the
    route does not take (405), goes on to Starlette.
    """

    def __init__(self, app: ASGIApp, endpoints: dict[str, tuple[frozenset[str], ASGIApp]]) -> None:
        self.app = app
        self.endpoints = endpoints

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: it hands on the next app's, so no frame of its own stays on
        # every call's stack (~0.3 KB per stream in flight).
        if scope["type"] == "http":
            hit = self.endpoints.get(scope["path"])
            if hit is not None and scope["method"] in hit[0]:
                return hit[1](scope, receive, send)
        return self.app(scope, receive, send)
