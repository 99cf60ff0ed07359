"""The playground API: ``POST /playground/complete`` (JSON, or server-sent events with
``stream: true``), sessions, and "save as experiment".

Handlers parse and answer; `gateway.playground.service.PlaygroundService` does the
work. The shapes are documented in ``docs/api.md`` (Playground).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.api import json_response, query_int, query_str
from gateway.api.datasets import read_json_limited
from gateway.api.events import named_event
from gateway.errors import SpanlabError
from gateway.http.sse import encode_event
from gateway.playground.service import PlaygroundService
from gateway.proxy.providers.base import CREDENTIAL_HEADERS
from gateway.quotas.service import charge_of
from gateway.state import app_state

# Streamed: one queue item per event (name, data); None ends the stream.
Item = tuple[str, Any] | None


def service(request: Request) -> PlaygroundService:
    state = app_state(request)

    def publish(kind: str, data: dict[str, Any]) -> None:
        state.events.publish(named_event(kind, data))

    return PlaygroundService(
        settings=state.settings,
        pipeline=state.pipeline,
        router=state.router,
        prices=state.prices,
        metrics=state.metrics,
        store=state.stores.playground,
        events=state.stores.events,
        experiments=state.experiments,
        publish=publish,
    )


async def complete(request: Request) -> Response:
    svc = service(request)
    body = await read_json_limited(request)
    credentials = [(k, v) for k, v in request.headers.items() if k.lower() in CREDENTIAL_HEADERS]
    # Every refusal (4xx) is a plain JSON error: nothing has been called or written.
    prepared = await svc.prepare(body, credentials)
    # Counted against the caller's key and the session's project, as its own calls are.
    prepared.charge = charge_of(request.scope)
    if not prepared.request.stream:
        return json_response(await asyncio.shield(svc.start(prepared)))

    queue: asyncio.Queue[Item] = asyncio.Queue()

    async def listener(kind: str, index: int, data: Any) -> None:
        if kind == "delta":
            model = prepared.request.targets[index].label
            queue.put_nowait(("delta", {"index": index, "model": model, "content": data}))
        else:
            queue.put_nowait(("done", data))

    task = svc.start(prepared, listener)
    task.add_done_callback(lambda _: queue.put_nowait(None))
    models = [{"index": i, "model": t.label} for i, t in enumerate(prepared.request.targets)]

    async def events() -> AsyncIterator[bytes]:
        yield _event("start", {"session_id": prepared.session.id, "models": models})
        while (item := await queue.get()) is not None:
            yield _event(*item)
        try:
            result = task.result()
        except BaseException as exc:
            error = exc if isinstance(exc, SpanlabError) else SpanlabError(str(exc) or "failed")
            yield _event("error", error.to_dict())
            return
        yield _event("end", result)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def list_sessions(request: Request) -> Response:
    page = await service(request).list_sessions(
        project=query_str(request, "project"),
        limit=query_int(request, "limit", 50, low=1, high=1000),
        cursor=query_str(request, "cursor"),
    )
    return json_response({"data": page.items, "next_cursor": page.next_cursor})


async def get_session(request: Request) -> Response:
    return json_response(await service(request).get_session(_id(request)))


async def delete_session(request: Request) -> Response:
    await service(request).delete_session(_id(request))
    return Response(status_code=204)


async def save_as_experiment(request: Request) -> Response:
    body = await read_json_limited(request)
    experiment = await service(request).save_as_experiment(_id(request), body)
    return json_response(experiment, status_code=201)


def _id(request: Request) -> str:
    value: str = request.path_params["session_id"]
    return value


def _event(name: str, data: Any) -> bytes:
    return encode_event(orjson.dumps(data).decode(), name)


def routes() -> list[BaseRoute]:
    return [
        Route("/playground/complete", complete, methods=["POST"]),
        Route("/playground/sessions", list_sessions, methods=["GET"]),
        Route("/playground/sessions/{session_id}", get_session, methods=["GET"]),
        Route("/playground/sessions/{session_id}", delete_session, methods=["DELETE"]),
        Route("/playground/sessions/{session_id}/experiment", save_as_experiment, methods=["POST"]),
    ]
