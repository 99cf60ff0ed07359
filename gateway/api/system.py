"""Health, metrics, the live event stream, and the model list for the UI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway import __version__
from gateway.access.guard import may_read
from gateway.api import json_response
from gateway.api.events import CLOSED, EVENT_NAME, LAGGED
from gateway.api.project_scope import project_scope, visible
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.proxy.operations import ProxyRequest
from gateway.proxy.sink import CollectingSink
from gateway.state import app_state
from gateway.store.spans import iso_from_us


async def healthz(request: Request) -> Response:
    """``status`` is ``ok``, or ``degraded`` while the span writer fails, has stored
    nothing for ``flush_timeout_s`` with spans waiting, or holds more than a tenth of
    its queue's bounds (``problems`` says which). Degraded still answers 200: calls are
    proxied as before (spans wait in memory), so a load balancer should keep sending
    them; alert on ``status`` instead."""
    state = app_state(request)
    await state.stores.database.ping()  # the database answers
    writer = state.writer.health()
    access = getattr(request.app.state, "access", None)
    if access is not None and access.enabled and not may_read(request.scope):
        # Keys are on and the caller may not read: the status, nothing private.
        return json_response({"status": "degraded" if writer.problems else "ok"})
    error_at = writer.last_error_at
    return json_response(
        {
            "status": "degraded" if writer.problems else "ok",
            "version": __version__,
            "span_queue_depth": writer.queue_depth,
            "span_queue_bytes": writer.queue_bytes,
            "spans_written": state.writer.written,
            "writer_failing": writer.failing,
            "last_write_error": writer.last_error,
            "last_write_error_at": (
                None if error_at is None else iso_from_us(int(error_at * 1_000_000))
            ),
            "problems": writer.problems,
        }
    )


# What a model list request passes on: credentials, and the choice of provider.
_MODELS_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "anthropic-version", "x-spanlab-provider"}
)


async def models(request: Request) -> Response:
    """The upstream's model list, as ``GET /v1/models`` answers it, but not recorded as
    a span: the experiment page asks for it each time it opens, and those calls would
    fill the trace list with the UI's own traffic."""
    state = app_state(request)
    received = ((k.decode("latin-1").lower(), v) for k, v in request.headers.raw)
    headers = [(k, v.decode("latin-1")) for k, v in received if k in _MODELS_HEADERS]
    sink = CollectingSink("models")
    call = ProxyRequest(
        operation="models", method="GET", path="/v1/models", headers=headers, capture=False
    )
    await state.pipeline.handle(call, sink)
    return Response(bytes(sink.body), status_code=sink.status or 502, media_type="application/json")


async def metrics(request: Request) -> Response:
    return Response(app_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def events(request: Request) -> Response:
    """Server-sent events: one ``span`` event per stored span, as soon as it is stored,
    and named events (``playground.completion``) as they happen."""
    state = app_state(request)
    heartbeat = state.settings.events_heartbeat_s
    project = project_scope(request)  # a project key hears its project's events only

    async def stream() -> AsyncIterator[bytes]:
        async with state.events.subscribe() as sub:
            yield b"retry: 2000\n: connected\n\n"
            while True:
                if sub.lagged:
                    sub.lagged = False
                    yield b"event: lagged\ndata: " + orjson.dumps(LAGGED) + b"\n\n"
                try:
                    item = await asyncio.wait_for(sub.queue.get(), timeout=heartbeat)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if item is CLOSED:
                    return  # the gateway is stopping
                if project is not None and not visible(item, project):
                    continue
                name = item.get(EVENT_NAME)
                if name is not None:
                    yield f"event: {name}\ndata: ".encode() + orjson.dumps(item["data"]) + b"\n\n"
                    continue
                yield b"event: span\ndata: " + orjson.dumps(item) + b"\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
