"""The matrix API of an experiment: variants, inputs, progress and cancel (the run
itself is ``POST /experiments/{id}/run``, in `gateway.api.experiments`).

Handlers parse and answer; `gateway.experiments.matrix.MatrixService` does the work.
The seed's camelCase fields are accepted beside snake_case. Shapes: ``docs/api.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.api import json_response, query_str, read_body, read_json
from gateway.api.datasets import service as datasets
from gateway.errors import ValidationFailed
from gateway.experiments.estimate import estimate as estimate_cost
from gateway.experiments.matrix import MatrixService
from gateway.experiments.variants import snake_case
from gateway.state import app_state

DATASET_INPUT_FIELDS = frozenset({"dataset_id", "version"})
# While a run is live its progress stream reads the database at least this often (the
# cells may end in another process, whose signal may be lost).
PROGRESS_POLL_S = 0.5


def matrix(request: Request) -> MatrixService:
    return app_state(request).experiments.matrix


async def _experiment(request: Request) -> dict[str, Any]:
    return await app_state(request).experiments.get(request.path_params["experiment_id"])


async def add_variant(request: Request) -> Response:
    experiment = await _experiment(request)
    variant = await matrix(request).add_variant(experiment, await read_json(request))
    return json_response({"variant": variant}, status_code=201)


async def update_variant(request: Request) -> Response:
    experiment = await _experiment(request)
    variant = await matrix(request).update_variant(
        experiment, request.path_params["variant_id"], await read_json(request)
    )
    return json_response({"variant": variant})


async def delete_variant(request: Request) -> Response:
    experiment = await _experiment(request)
    await matrix(request).delete_variant(experiment, request.path_params["variant_id"])
    return Response(status_code=204)


async def list_variants(request: Request) -> Response:
    experiment = await _experiment(request)
    return json_response({"data": await matrix(request).store.list_variants(experiment["id"])})


async def add_inputs(request: Request) -> Response:
    """``inputs: [...]`` of the experiment's own, or ``datasetId`` (+ ``version``): the
    dataset version's items, each naming the dataset, version and item it came from."""
    experiment = await _experiment(request)
    body = await read_json(request)
    svc = matrix(request)
    if isinstance(body, dict) and ("datasetId" in body or "dataset_id" in body):
        options = snake_case(body)
        unknown = set(options) - DATASET_INPUT_FIELDS
        if unknown:
            raise ValidationFailed(
                f"With datasetId, the body takes only version (got {', '.join(sorted(unknown))}).",
                param=sorted(unknown)[0],
            )
        dataset_id, version = options.get("dataset_id"), options.get("version")
        if not isinstance(dataset_id, str):
            raise ValidationFailed("datasetId must be a string.", param="datasetId")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ValidationFailed("version must be an integer.", param="version")
        dataset_svc = datasets(request)
        _, number = await dataset_svc.version_of(dataset_id, version)
        items = await dataset_svc.all_items(dataset_id, number)
        if not items:
            raise ValidationFailed(
                f"Dataset {dataset_id!r} has no items in version {number}.",
                param="datasetId",
                code="empty_dataset",
            )
        inputs = [_from_item(item, dataset_id, number) for item in items]
        stored = await svc.add_inputs(experiment, inputs)
    else:
        stored = await svc.add_inputs_from_body(experiment, body)
    return json_response({"inputs": stored}, status_code=201)


def _from_item(item: dict[str, Any], dataset_id: str, version: int) -> dict[str, Any]:
    variables = item.get("variables")
    content = (variables or {}).get("content")
    return {
        "key": item["key"],
        "content": content if isinstance(content, str) else None,
        "variables": variables,
        "request": item.get("request"),
        "operation": item.get("operation"),
        "expected_output": item.get("expected_output"),
        "metadata": item.get("metadata"),
        "source_span_id": item.get("source_span_id"),
        "dataset_id": dataset_id,
        "dataset_version": version,
        "dataset_item_id": item["id"],
    }


async def list_inputs(request: Request) -> Response:
    experiment = await _experiment(request)
    return json_response({"data": await matrix(request).inputs_of(experiment)})


async def delete_input(request: Request) -> Response:
    experiment = await _experiment(request)
    await matrix(request).delete_input(experiment, request.path_params["input_id"])
    return Response(status_code=204)


async def progress(request: Request) -> Response:
    if query_str(request, "stream") in ("true", "1"):
        return await progress_events(request)
    experiment = await _experiment(request)
    run = query_str(request, "run")
    return json_response(await matrix(request).progress(experiment["id"], run))


def _counts(progress: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a progress event new (not the clock's elapsed and ETA)."""
    return tuple(v for k, v in progress.items() if k not in ("elapsed_s", "eta_s"))


def _progress_event(progress: dict[str, Any], final: bool) -> bytes:
    return b"event: progress\ndata: " + orjson.dumps({**progress, "final": final}) + b"\n\n"


async def progress_events(request: Request) -> Response:
    """Server-sent ``progress`` events: one now, one each time a cell of the run ends,
    and a last one (``final: true``) when the run ends; then the stream closes. A run
    not in progress gets its one final event. An unknown experiment or run is a 404
    before the stream starts. Whether the run is live is the database's word (other
    gateway processes may run its cells): a cell ending here, or a peer's signal,
    wakes the stream, and it reads again every `PROGRESS_POLL_S` while the run is live."""
    experiment = await _experiment(request)
    svc = matrix(request)
    first = await svc.progress(experiment["id"], query_str(request, "run"))
    run_id = first["run_id"]
    heartbeat = app_state(request).settings.events_heartbeat_s

    async def stream() -> AsyncIterator[bytes]:
        async with svc.hub.listen(experiment["id"]) as wake:
            # Read again once listening: a cell ending in between is not missed.
            progress = await svc.progress(experiment["id"], run_id)
            live = progress["status"] == "running"
            yield b"retry: 2000\n" + _progress_event(progress, not live)
            sent, quiet = _counts(progress), 0.0
            while live:
                try:
                    await asyncio.wait_for(wake.get(), timeout=PROGRESS_POLL_S)
                except TimeoutError:
                    quiet += PROGRESS_POLL_S
                progress = await svc.progress(experiment["id"], run_id)
                live = progress["status"] == "running"
                if live and _counts(progress) == sent:  # nothing new (a poll, a late wake)
                    if quiet >= heartbeat:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
                    continue
                sent, quiet = _counts(progress), 0.0
                yield _progress_event(progress, not live)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def cancel(request: Request) -> Response:
    experiment = await _experiment(request)
    return json_response(await matrix(request).cancel(experiment["id"]))


async def estimate(request: Request) -> Response:
    experiment = await _experiment(request)
    has_body = bool((await read_body(request)).strip())
    body = await read_json(request) if has_body else {}
    return json_response(await estimate_cost(matrix(request), experiment, body))


def routes() -> list[BaseRoute]:
    base = "/experiments/{experiment_id}"
    return [
        Route(f"{base}/variants", list_variants, methods=["GET"]),
        Route(f"{base}/variants", add_variant, methods=["POST"]),
        Route(f"{base}/variants/{{variant_id}}", update_variant, methods=["PUT", "PATCH"]),
        Route(f"{base}/variants/{{variant_id}}", delete_variant, methods=["DELETE"]),
        Route(f"{base}/inputs", list_inputs, methods=["GET"]),
        Route(f"{base}/inputs", add_inputs, methods=["POST"]),
        Route(f"{base}/inputs/{{input_id}}", delete_input, methods=["DELETE"]),
        Route(f"{base}/progress", progress, methods=["GET"]),
        Route(f"{base}/progress/events", progress_events, methods=["GET"]),
        Route(f"{base}/cancel", cancel, methods=["POST"]),
        Route(f"{base}/estimate", estimate, methods=["POST"]),
    ]
