"""The evaluators API: the built-in types (``GET /evaluators/types``), an experiment's
evaluators (list, add, change, delete), re-running them (``POST
/experiments/{id}/evaluate``, a background job; ``GET`` the same path for its
progress), and what the CLI's Python evaluators need: the cells as evaluators see them
(``GET /experiments/{id}/evaluation/cells``) and posting their scores (``POST
/experiments/{id}/evaluation/scores``; data only, never code).

Handlers parse and answer; `gateway.evaluation.service.EvaluationService` does the
work. Shapes: ``docs/api.md`` ("Evaluators and the LLM judge").
"""

from __future__ import annotations

import math
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.api import json_response, query_str, read_body, read_json
from gateway.api.scores import user_of
from gateway.errors import InvalidRequest, NotFound
from gateway.evaluation.evaluator_base import BOOLEAN, MetricShape
from gateway.evaluation.evaluators import METRIC_KEY, types_listing
from gateway.evaluation.recording import EVALUATOR_SOURCE, ScoreInput, record_scores
from gateway.evaluation.service import EvaluationService
from gateway.state import app_state

# A Python evaluator's source: evaluator:<module:function> (or any evaluator: name).
SOURCE = re.compile(r"^evaluator:[A-Za-z0-9_.:<>-]{1,200}$")
MAX_POSTED_SCORES = 10_000
NUMERIC = MetricShape("numeric")


def service(request: Request) -> EvaluationService:
    return app_state(request).evaluation


async def _experiment(request: Request) -> dict[str, Any]:
    return await app_state(request).experiments.get(request.path_params["experiment_id"])


def who(request: Request) -> str:
    """Who did it (`gateway.api.scores.user_of`: the key's id when keys are on)."""
    return user_of(request)


async def list_types(request: Request) -> Response:
    return json_response(types_listing())


async def list_evaluators(request: Request) -> Response:
    experiment = await _experiment(request)
    found = await service(request).evaluators(experiment["id"])
    return json_response({"data": [e.as_dict() for e in found]})


async def add_evaluator(request: Request) -> Response:
    experiment = await _experiment(request)
    record = await service(request).add(experiment, await read_json(request))
    return json_response({"evaluator": record.as_dict()}, status_code=201)


async def get_evaluator(request: Request) -> Response:
    experiment = await _experiment(request)
    record = await service(request).get(experiment["id"], request.path_params["evaluator_id"])
    return json_response({"evaluator": record.as_dict()})


async def update_evaluator(request: Request) -> Response:
    experiment = await _experiment(request)
    record = await service(request).update(
        experiment, request.path_params["evaluator_id"], await read_json(request)
    )
    return json_response({"evaluator": record.as_dict()})


async def delete_evaluator(request: Request) -> Response:
    experiment = await _experiment(request)
    await service(request).delete(experiment, request.path_params["evaluator_id"])
    return Response(status_code=204)


async def evaluate(request: Request) -> Response:
    experiment = await _experiment(request)
    has_body = bool((await read_body(request)).strip())
    body = await read_json(request) if has_body else {}
    job = await service(request).start(experiment, body)
    return json_response({"job": job.as_dict()}, status_code=202)


async def evaluation_progress(request: Request) -> Response:
    experiment = await _experiment(request)
    return json_response(service(request).progress(experiment["id"]))


async def evaluation_cells(request: Request) -> Response:
    """The completed cells of a matrix run (``run``; default: the latest) as evaluators
    see them (`gateway.evaluation.cell.EvalCell`)."""
    experiment = await _experiment(request)
    svc = service(request)
    runs = await svc.matrix.list_runs(experiment["id"])
    run_id = query_str(request, "run")
    run = next((r for r in runs if run_id in (None, r["id"])), None)
    if run is None:
        raise NotFound(
            f"Experiment {experiment['id']!r} has no matrix run"
            f"{' ' + repr(run_id) if run_id else ''}.",
            param="run",
        )
    cells = [c for c in await svc.matrix.cells(run["id"]) if c["status"] == "completed"]
    records = await svc.eval_cells(experiment, cells)
    return json_response({"run_id": run["id"], "data": [r.as_dict() for r in records]})


def _posted(item: Any, i: int) -> tuple[str, str, str, Any, str | None, dict[str, Any] | None]:
    where = f"scores[{i}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object.", param=where)
    run_id = item.get("runId", item.get("run_id"))
    key = item.get("metricKey", item.get("metric_key"))
    source = item.get("source")
    value, note, error = item.get("value"), item.get("note"), item.get("error")
    if not isinstance(run_id, str):
        raise InvalidRequest(f"{where}.runId must be a cell's id.", param=f"{where}.runId")
    if not isinstance(key, str) or not METRIC_KEY.match(key):
        raise InvalidRequest(f"{where}.metricKey is not a metric key.", param=f"{where}.metricKey")
    if not isinstance(source, str) or not SOURCE.match(source):
        raise InvalidRequest(
            f"{where}.source must be {EVALUATOR_SOURCE}<name> (a Python evaluator:"
            " evaluator:<module:function>).",
            param=f"{where}.source",
        )
    if note is not None and not isinstance(note, str):
        raise InvalidRequest(f"{where}.note must be a string.", param=f"{where}.note")
    if error is not None:
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            raise InvalidRequest(
                f"{where}.error must be {{type, message}}.", param=f"{where}.error"
            )
        error = {"type": str(error.get("type") or "evaluator_error"), "message": error["message"]}
        value = None
    elif isinstance(value, bool):
        pass
    elif not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(
            f"{where}.value must be true/false or a finite number (or give error).",
            param=f"{where}.value",
        )
    return run_id, key, source, value, note, error


async def post_scores(request: Request) -> Response:
    """Scores computed outside the gateway (the CLI's Python evaluators) on the
    experiment's cells, written like any evaluator's (`record_scores`)."""
    experiment = await _experiment(request)
    body = await read_json(request)
    items = body.get("scores") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_POSTED_SCORES:
        raise InvalidRequest(
            f"The body must be {{scores: [...]}} with 1 to {MAX_POSTED_SCORES} scores.",
            param="scores",
        )
    parsed = [_posted(item, i) for i, item in enumerate(items)]
    svc = service(request)
    cells: dict[str, dict[str, Any]] = {}
    for run in await svc.matrix.list_runs(experiment["id"]):
        cells.update({c["id"]: c for c in await svc.matrix.cells(run["id"])})
    seen: set[tuple[str, str, str]] = set()
    inputs: list[ScoreInput] = []
    for i, (run_id, key, source, value, note, error) in enumerate(parsed):
        cell = cells.get(run_id)
        if cell is None:
            raise NotFound(
                f"No cell {run_id!r} in experiment {experiment['id']!r}.",
                param=f"scores[{i}].runId",
            )
        if (run_id, source, key) in seen:
            raise InvalidRequest(
                f"scores[{i}] repeats a score of {source} under {key!r} on {run_id!r}.",
                param=f"scores[{i}]",
            )
        seen.add((run_id, source, key))
        inputs.append(
            ScoreInput(
                metric_key=key,
                shape=BOOLEAN if isinstance(value, bool) else NUMERIC,
                source=source,
                run_id=run_id,
                experiment_id=experiment["id"],
                value=value,
                note=note,
                error=error,
                project_id=experiment.get("project_id"),
                span_id=cell.get("result_span_id"),
                variant_id=cell.get("variant_id"),
                input_id=cell.get("input_id"),
                created_by=who(request),
            )
        )
    records = await record_scores(svc.store, inputs, svc.write_scores)
    return json_response({"data": [r.as_dict() for r in records]}, status_code=201)


def routes() -> list[BaseRoute]:
    base = "/experiments/{experiment_id}"
    one = f"{base}/evaluators/{{evaluator_id}}"
    return [
        Route("/evaluators/types", list_types, methods=["GET"]),
        Route(f"{base}/evaluators", list_evaluators, methods=["GET"]),
        Route(f"{base}/evaluators", add_evaluator, methods=["POST"]),
        Route(one, get_evaluator, methods=["GET"]),
        Route(one, update_evaluator, methods=["PATCH", "PUT"]),
        Route(one, delete_evaluator, methods=["DELETE"]),
        Route(f"{base}/evaluate", evaluate, methods=["POST"]),
        Route(f"{base}/evaluate", evaluation_progress, methods=["GET"]),
        Route(f"{base}/evaluation/cells", evaluation_cells, methods=["GET"]),
        Route(f"{base}/evaluation/scores", post_scores, methods=["POST"]),
    ]
