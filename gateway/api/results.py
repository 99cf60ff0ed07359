"""``GET /experiments/{id}/results``: a matrix run's results per variant, the
comparisons against a baseline with their verdicts, stability, cost against quality;
as JSON (default) or CSV (``format=csv``: one row per variant x metric).

Query: ``run`` (a matrix run id; default the latest), ``baseline`` (a variant id or
name; default the first), ``metric`` (the primary metric for cost against quality;
default the first scored), ``format`` (``json`` or ``csv``). Shapes: ``docs/api.md``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.api import json_response, query_str
from gateway.errors import InvalidRequest
from gateway.evaluation.results import csv_text, load_results
from gateway.state import app_state

FORMATS = ("json", "csv")


async def results(request: Request) -> Response:
    state = app_state(request)
    fmt = query_str(request, "format") or "json"
    if fmt not in FORMATS:
        raise InvalidRequest(f"format must be json or csv, got {fmt!r}.", param="format")
    experiment = await state.experiments.get(request.path_params["experiment_id"])
    found = await load_results(
        state.experiments.matrix.store,
        state.stores.evaluation,
        experiment,
        run_id=query_str(request, "run"),
        baseline=query_str(request, "baseline"),
        metric=query_str(request, "metric"),
    )
    if fmt == "csv":
        run = (found.run or {}).get("id") or "none"
        return Response(
            csv_text(found),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": (
                    f'attachment; filename="results-{experiment["id"]}-{run}.csv"'
                )
            },
        )
    return json_response(found.as_dict())


def routes() -> list[BaseRoute]:
    return [Route("/experiments/{experiment_id}/results", results, methods=["GET"])]
