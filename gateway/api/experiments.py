"""The experiments API: CRUD, runs (plain or streamed as server-sent events),
comparison, duplicate, export/import and version history.

Handlers parse and answer; `gateway.experiments.service.ExperimentService` does the work.
The JSON shapes are documented in ``docs/api.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.api import (
    json_response,
    query_int,
    query_str,
    query_text,
    read_body,
    read_json,
)
from gateway.api import variants as variants_api
from gateway.errors import InvalidRequest, SpanlabError
from gateway.experiments.service import ExperimentService
from gateway.experiments.transfer import OnConflict
from gateway.http.sse import encode_event
from gateway.proxy.providers.base import CREDENTIAL_HEADERS
from gateway.quotas.service import charge_of
from gateway.state import app_state
from gateway.store.experiments import EXPERIMENT_STATUSES, ExperimentFilter

EXPORT_LIMIT = 10_000
MATRIX_RUN_FIELDS = frozenset(
    {
        "inputIds",
        "input_ids",
        "variantIds",
        "variant_ids",
        "repetitions",
        "concurrency",
        "resume",
        "runId",
        "run_id",
    }
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def service(request: Request) -> ExperimentService:
    return app_state(request).experiments


def query_bool(request: Request, *names: str) -> bool | None:
    for name in names:
        raw = query_str(request, name)
        if raw is None:
            continue
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise InvalidRequest(f"{name} must be true or false, got {raw!r}", param=name)
    return None


def experiment_filter(request: Request) -> ExperimentFilter:
    status = query_str(request, "status")
    if status is not None and status not in EXPERIMENT_STATUSES:
        raise InvalidRequest(
            f"status must be one of {', '.join(EXPERIMENT_STATUSES)}, got {status!r}",
            param="status",
        )
    return ExperimentFilter(
        project=query_str(request, "project"),
        status=status,
        tag=query_str(request, "tag"),
        favorite=query_bool(request, "favorite", "favourite"),
        text=query_text(request),
        span=query_str(request, "span"),
    )


INCLUDES = ("latest_run",)


def includes_latest_run(request: Request) -> bool:
    """``?include=latest_run``: each listed experiment with its latest run's summary."""
    raw = query_str(request, "include")
    if raw is None:
        return False
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = wanted - set(INCLUDES)
    if unknown:
        raise InvalidRequest(
            f"include takes {', '.join(INCLUDES)}; got {', '.join(sorted(unknown))}.",
            param="include",
        )
    return "latest_run" in wanted


def _id(request: Request) -> str:
    value: str = request.path_params["experiment_id"]
    return value


async def create_experiment(request: Request) -> Response:
    experiment = await service(request).create(await read_json(request))
    return json_response(experiment, status_code=201)


async def list_experiments(request: Request) -> Response:
    page = await service(request).list_experiments(
        experiment_filter(request),
        limit=query_int(request, "limit", 50, low=1, high=1000),
        cursor=query_str(request, "cursor"),
        latest_run=includes_latest_run(request),
    )
    return json_response({"data": page.items, "next_cursor": page.next_cursor})


async def get_experiment(request: Request) -> Response:
    """The experiment (seed-1 fields first, unchanged), with its variants, inputs
    (a replay experiment's own call first), matrix runs and runs (cells included)."""
    svc = service(request)
    experiment = await svc.get(_id(request))
    detail = await svc.matrix.detail(experiment)
    # A seed-1 experiment nobody grew reads exactly as it always has (its contract).
    if (
        experiment.get("kind") == "matrix"
        or detail["variants"]
        or detail["matrix_runs"]
        or (len(detail["inputs"]) > 1)
    ):
        experiment.update(detail)
        experiment["runs"] = await svc.experiments.list_experiment_runs(experiment["id"])
    return json_response(experiment)


async def experiments_by_span(request: Request) -> Response:
    items = await service(request).by_span(
        request.path_params["span_id"], latest_run=includes_latest_run(request)
    )
    return json_response({"data": items})


async def update_experiment(request: Request) -> Response:
    body = await read_json(request)
    return json_response(await service(request).update(_id(request), body))


async def delete_experiment(request: Request) -> Response:
    await service(request).delete(_id(request))
    return Response(status_code=204)


async def duplicate_experiment(request: Request) -> Response:
    body = await read_json(request) if await read_body(request) else None
    svc = service(request)
    duplicate = await svc.duplicate(_id(request), body)
    await svc.matrix.copy_setup(_id(request), duplicate["id"])  # its variants and inputs
    return json_response(duplicate, status_code=201)


async def list_runs(request: Request) -> Response:
    return json_response({"data": await service(request).runs(_id(request))})


async def get_run(request: Request) -> Response:
    run = await service(request).get_run(_id(request), request.path_params["run_id"])
    return json_response(run)


async def history(request: Request) -> Response:
    return json_response({"data": await service(request).history(_id(request))})


async def restore_version(request: Request) -> Response:
    raw = request.path_params["version"]
    try:
        version = int(raw)
    except ValueError:
        raise InvalidRequest(f"version must be an integer, got {raw!r}", param="version") from None
    return json_response(await service(request).restore(_id(request), version))


async def compare(request: Request) -> Response:
    result = await service(request).compare(
        _id(request), query_str(request, "run"), query_str(request, "base")
    )
    return json_response(result)


async def export_one(request: Request) -> Response:
    experiment_id = _id(request)
    document = await service(request).export([experiment_id])
    response = json_response(document)
    response.headers["content-disposition"] = f'attachment; filename="{experiment_id}.json"'
    return response


async def export_many(request: Request) -> Response:
    svc = service(request)
    ids_param = query_str(request, "ids")
    if ids_param is not None:
        ids = [i for i in (part.strip() for part in ids_param.split(",")) if i]
    else:
        ids = []
        filters = experiment_filter(request)
        cursor = None
        while len(ids) < EXPORT_LIMIT:
            page = await svc.list_experiments(filters, limit=1000, cursor=cursor)
            ids += [item["id"] for item in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    document = await svc.export(ids[:EXPORT_LIMIT])
    response = json_response(document)
    response.headers["content-disposition"] = 'attachment; filename="experiments.json"'
    return response


async def import_experiments(request: Request) -> Response:
    mode = query_str(request, "on_conflict") or "error"
    if mode not in ("error", "skip", "copy"):
        raise InvalidRequest(
            f"on_conflict must be error, skip or copy, got {mode!r}", param="on_conflict"
        )
    on_conflict: OnConflict = mode  # type: ignore[assignment]
    svc = service(request)
    ids = await svc.import_(await read_json(request), on_conflict=on_conflict)
    return json_response({"data": [await svc.get(i) for i in ids]}, status_code=201)


def check_run_body(body: Any) -> None:
    """A run takes no options in its body: what it sends is the experiment as saved,
    ``?stream=true`` streams it and a credential header carries a key. A body with
    anything in it is refused rather than ignored (a client sending ``{"stream":
    true}`` or ``{"model": ...}`` would otherwise believe it took effect); an empty
    object is accepted, as HTTP clients often send one with a POST."""
    if body == {}:
        return
    if isinstance(body, dict):
        got = f"fields {', '.join(repr(k) for k in list(body)[:10])}"
    else:
        kinds = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
        got = f"a JSON {kinds.get(type(body), 'null')}"
    raise InvalidRequest(
        f"POST /experiments/{{id}}/run takes no body (got {got}). A run sends the"
        " experiment as saved (PUT /experiments/{id} to change it); add ?stream=true to"
        " stream it, and send a credential as an Authorization or x-api-key header.",
        code="unexpected_body",
        param="body",
    )


def is_matrix_run(experiment: dict[str, Any], body: Any) -> bool:
    """A matrix experiment always runs its matrix; a seed-1 one does when the body
    names matrix fields (without them it runs exactly as it always has)."""
    if experiment.get("kind") == "matrix":
        return True
    return isinstance(body, dict) and bool(body) and set(body) <= MATRIX_RUN_FIELDS


async def run_experiment(request: Request) -> Response:
    svc = service(request)
    experiment_id = _id(request)
    credentials = [(k, v) for k, v in request.headers.items() if k.lower() in CREDENTIAL_HEADERS]
    has_body = bool((await read_body(request)).strip())
    body = await read_json(request) if has_body else None
    experiment = await svc.get(experiment_id)
    if is_matrix_run(experiment, body):
        # Its calls are counted against the caller's key (quotas), as its own are.
        started = await svc.matrix.start(experiment, body, credentials, charge_of(request.scope))
        return json_response(started, status_code=202)
    if has_body:
        check_run_body(body)
    if not query_bool(request, "stream"):
        return json_response(
            await svc.run(experiment_id, credentials=credentials, charge=charge_of(request.scope))
        )

    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_delta(text: str) -> None:
        queue.put_nowait(text)

    # Refusals (404, 409, 422...) are still plain JSON errors: nothing has started.
    handle = await svc.start_run(
        experiment_id,
        stream=True,
        credentials=credentials,
        on_delta=on_delta,
        charge=charge_of(request.scope),
    )
    handle.task.add_done_callback(lambda _: queue.put_nowait(None))

    async def events() -> AsyncIterator[bytes]:
        yield _event("start", handle.run)
        while (text := await queue.get()) is not None:
            yield _event("delta", {"content": text})
        try:
            run = handle.task.result()
        except BaseException as exc:
            error = exc if isinstance(exc, SpanlabError) else SpanlabError(str(exc) or "failed")
            stored = await svc.experiments.get_experiment_run(handle.run["id"])
            yield _event("error", {"error": error.to_dict()["error"], "run": stored})
            return
        if run["status"] == "completed":
            yield _event("done", run)
        else:
            yield _event("error", {"error": run["error"], "run": run})

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _event(name: str, data: Any) -> bytes:
    return encode_event(orjson.dumps(data).decode(), name)


def routes() -> list[BaseRoute]:
    # Fixed paths before /experiments/{experiment_id}, which would otherwise take them.
    return [
        Route("/experiments", list_experiments, methods=["GET"]),
        Route("/experiments", create_experiment, methods=["POST"]),
        Route("/experiments/export", export_many, methods=["GET"]),
        Route("/experiments/import", import_experiments, methods=["POST"]),
        Route("/experiments/by-span/{span_id}", experiments_by_span, methods=["GET"]),
        Route("/experiments/{experiment_id}", get_experiment, methods=["GET"]),
        Route("/experiments/{experiment_id}", update_experiment, methods=["PUT", "PATCH"]),
        Route("/experiments/{experiment_id}", delete_experiment, methods=["DELETE"]),
        Route("/experiments/{experiment_id}/run", run_experiment, methods=["POST"]),
        *variants_api.routes(),
        Route("/experiments/{experiment_id}/runs", list_runs, methods=["GET"]),
        Route("/experiments/{experiment_id}/runs/{run_id}", get_run, methods=["GET"]),
        Route("/experiments/{experiment_id}/compare", compare, methods=["GET"]),
        Route("/experiments/{experiment_id}/duplicate", duplicate_experiment, methods=["POST"]),
        Route("/experiments/{experiment_id}/export", export_one, methods=["GET"]),
        Route("/experiments/{experiment_id}/history", history, methods=["GET"]),
        Route(
            "/experiments/{experiment_id}/history/{version}/restore",
            restore_version,
            methods=["POST"],
        ),
    ]
