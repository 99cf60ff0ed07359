"""Feedback, scores and metric definitions: the seed's ``POST
/experiments/runs/{run_id}/feedback`` and ``.../scores``, the same on any captured span
(``/spans/{span_id}/feedback``, ``/scores``, and ``/evaluation`` for both at once),
listings, ``DELETE /scores/{id}``, and ``/metric-definitions`` (not under ``/metrics``:
that is Prometheus).

Handlers parse and answer; `gateway.evaluation.scoring.ScoringService` does the work.
The seed's camelCase fields are accepted beside snake_case. Shapes: ``docs/api.md``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from gateway.access.audit import actor_of, address_of
from gateway.access.guard import principal_of
from gateway.access.keys import DEFAULT_PROJECT
from gateway.api import json_response, query_int, query_str, read_json
from gateway.api.events import named_event
from gateway.errors import InvalidRequest
from gateway.evaluation.metrics import check_key, metric_changes, metric_from_body
from gateway.evaluation.scoring import FeedbackChange, ScoreInput, ScoringService, Target
from gateway.state import app_state

USER_HEADER = "x-spanlab-user"
MAX_USER = 200
MAX_NOTE = 100_000
MAX_SOURCE = 300
HTTP_SOURCES = ("human", "api")
FEEDBACK_ALIASES = {"thumbsUp": "thumbs_up"}
SCORE_ALIASES = {"metricKey": "metric_key", "metric": "metric_key"}
_TRUE = ("1", "true", "yes")


def service(request: Request) -> ScoringService:
    state = app_state(request)

    def publish(kind: str, data: dict[str, Any]) -> None:
        state.events.publish(named_event(kind, data))

    async def flush() -> None:
        await state.writer.flush(state.settings.flush_timeout_s)

    return ScoringService(
        store=state.stores.evaluation,
        experiments=state.stores.experiments,
        spans=state.stores.spans,
        metrics=state.metrics,
        events=state.stores.events,
        publish=publish,
        flush=flush,
        context=audit_context(request.scope),
    )


def audit_context(scope: Scope) -> dict[str, Any]:
    """Who acts and from where, as an audit entry says it (`gateway.access.audit`)."""
    actor = actor_of(scope, principal_of(scope))
    return {
        "actor": actor.id,
        "actor_name": actor.name,
        "address": address_of(scope),
        "method": scope.get("method"),
        "path": scope.get("path"),
    }


def user_of(request: Request) -> str:
    """Who did it, as the audit log names an actor: the key's id when keys are on,
    else the ``x-spanlab-user`` header, else "local"."""
    principal = principal_of(request.scope)
    if principal is not None:
        return principal.key_id
    user = (request.headers.get(USER_HEADER) or "").strip()
    if len(user) > MAX_USER:
        raise InvalidRequest(
            f"{USER_HEADER} is longer than {MAX_USER} characters.", param=USER_HEADER
        )
    return user or "local"


def metric_project(request: Request) -> str | None:
    """The ``project`` of a metric definition; ``default`` is the default project's
    (stored as NULL, as everywhere: a key bound to the default project asks so)."""
    project = query_str(request, "project")
    return None if project == DEFAULT_PROJECT else project


def _object(body: Any, aliases: dict[str, str], allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", param="body")
    out: dict[str, Any] = {aliases.get(str(k), str(k)): v for k, v in body.items()}
    unknown = sorted(set(out) - allowed)
    if unknown:
        raise InvalidRequest(f"Unknown field(s): {', '.join(unknown)}.", param=unknown[0])
    return out


def _note(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_NOTE):
        raise InvalidRequest(
            f"note must be a string of at most {MAX_NOTE} characters, or null.", param="note"
        )
    return value


def feedback_change(body: Any) -> FeedbackChange:
    """``thumbsUp`` (true, false, or null to clear it) and ``note`` (null clears it);
    a field left out keeps its value, as in the seed."""
    fields = _object(body, FEEDBACK_ALIASES, frozenset({"thumbs_up", "note"}))
    thumbs = fields.get("thumbs_up")
    if thumbs is not None and not isinstance(thumbs, bool):
        raise InvalidRequest("thumbsUp must be true, false or null.", param="thumbsUp")
    return FeedbackChange(
        thumbs_up=thumbs,
        note=_note(fields.get("note")),
        has_thumbs="thumbs_up" in fields,
        has_note="note" in fields,
    )


def score_input(body: Any, user: str) -> ScoreInput:
    fields = _object(
        body, SCORE_ALIASES, frozenset({"metric_key", "value", "note", "source", "error"})
    )
    key = check_key(fields.get("metric_key"), "metricKey")
    source = fields.get("source", "api")
    if not isinstance(source, str) or not (
        source in HTTP_SOURCES
        or (source.startswith("evaluator:") and 10 < len(source) <= MAX_SOURCE)
    ):
        raise InvalidRequest(
            "source must be human, api or evaluator:<name>.", param="source", code="bad_source"
        )
    error = fields.get("error")
    if error is not None and not (
        isinstance(error, dict)
        and set(error) <= {"type", "message"}
        and all(isinstance(v, str) and len(v) <= MAX_NOTE for v in error.values())
    ):
        raise InvalidRequest("error must be an object {type, message} of strings.", param="error")
    if error is None and fields.get("value") is None:
        raise InvalidRequest("value is required.", param="value")
    return ScoreInput(
        metric_key=key,
        value=fields.get("value"),
        note=_note(fields.get("note")),
        source=source,
        error=error,
        created_by=user,
    )


def _feedback_answer(feedback: Any) -> Response:
    return json_response({"ok": True, "feedback": feedback.as_dict() if feedback else None})


async def _target(request: Request) -> tuple[ScoringService, Target]:
    svc = service(request)
    if "run_id" in request.path_params:
        return svc, await svc.run_target(request.path_params["run_id"])
    return svc, await svc.span_target(request.path_params["span_id"])


async def set_feedback(request: Request) -> Response:
    svc, target = await _target(request)
    change = feedback_change(await read_json(request))
    return _feedback_answer(await svc.set_feedback(target, change, user_of(request)))


async def get_feedback(request: Request) -> Response:
    svc, target = await _target(request)
    feedback = await svc.get_feedback(target)
    return json_response({"feedback": feedback.as_dict() if feedback else None})


async def add_score(request: Request) -> Response:
    svc, target = await _target(request)
    score = await svc.add_score(target, score_input(await read_json(request), user_of(request)))
    return json_response({"score": score.as_dict()}, status_code=201)


async def list_target_scores(request: Request) -> Response:
    svc, target = await _target(request)
    if target.run_id is not None:
        scores = await svc.store.list_scores(run_id=target.run_id)
    else:
        scores = await svc.store.list_scores(span_id=target.span_id)
    return json_response({"data": [s.as_dict() for s in scores]})


async def span_evaluation(request: Request) -> Response:
    """A span's feedback and scores (its run's, if it is a run's result) in one answer,
    for the span detail."""
    svc, target = await _target(request)
    feedback = await svc.get_feedback(target)
    if target.span_id is not None:
        scores = await svc.store.list_scores(span_id=target.span_id)
    else:
        scores = await svc.store.list_scores(run_id=target.run_id)
    return json_response(
        {
            "target": {"run_id": target.run_id, "experiment_id": target.experiment_id},
            "feedback": feedback.as_dict() if feedback else None,
            "scores": [s.as_dict() for s in scores],
        }
    )


async def experiment_scores(request: Request) -> Response:
    """An experiment's scores, oldest first: ``metric`` and ``source`` filter them."""
    experiment = await app_state(request).experiments.get(request.path_params["experiment_id"])
    scores = await service(request).store.list_scores(
        experiment_id=experiment["id"],
        metric_key=query_str(request, "metric"),
        source=query_str(request, "source"),
        limit=query_int(request, "limit", 10_000, low=1, high=100_000),
    )
    return json_response({"data": [s.as_dict() for s in scores]})


async def experiment_feedback(request: Request) -> Response:
    experiment = await app_state(request).experiments.get(request.path_params["experiment_id"])
    feedback = await service(request).store.list_feedback(experiment_id=experiment["id"])
    return json_response({"data": [f.as_dict() for f in feedback]})


async def delete_score(request: Request) -> Response:
    await service(request).delete_score(request.path_params["score_id"])
    return Response(status_code=204)


# Metric definitions ---------------------------------------------------------------------


def _force(request: Request) -> bool:
    return (query_str(request, "force") or "").lower() in _TRUE


async def list_metrics(request: Request) -> Response:
    metrics = await service(request).store.list_metrics(metric_project(request))
    return json_response({"data": [m.as_dict() for m in metrics]})


async def create_metric(request: Request) -> Response:
    metric = metric_from_body(await read_json(request), metric_project(request))
    created = await service(request).create_metric(metric)
    return json_response({"metric": created.as_dict()}, status_code=201)


async def get_metric(request: Request) -> Response:
    svc = service(request)
    metric = await svc.metric(metric_project(request), request.path_params["key"])
    return json_response({"metric": metric.as_dict()})


async def update_metric(request: Request) -> Response:
    svc = service(request)
    current = await svc.metric(metric_project(request), request.path_params["key"])
    changed = metric_changes(current, await read_json(request))
    updated = await svc.update_metric(current, changed, force=_force(request))
    return json_response({"metric": updated.as_dict()})


async def delete_metric(request: Request) -> Response:
    svc = service(request)
    metric = await svc.metric(metric_project(request), request.path_params["key"])
    deleted = await svc.delete_metric(metric, force=_force(request))
    return json_response({"ok": True, "deleted_scores": deleted})


def routes() -> list[BaseRoute]:
    """Before the experiments' routes: ``/experiments/runs/...`` is not an experiment."""
    run = "/experiments/runs/{run_id}"
    span = "/spans/{span_id}"
    return [
        Route(f"{run}/feedback", set_feedback, methods=["POST"]),
        Route(f"{run}/feedback", get_feedback, methods=["GET"]),
        Route(f"{run}/scores", add_score, methods=["POST"]),
        Route(f"{run}/scores", list_target_scores, methods=["GET"]),
        Route(f"{span}/feedback", set_feedback, methods=["POST"]),
        Route(f"{span}/feedback", get_feedback, methods=["GET"]),
        Route(f"{span}/scores", add_score, methods=["POST"]),
        Route(f"{span}/scores", list_target_scores, methods=["GET"]),
        Route(f"{span}/evaluation", span_evaluation, methods=["GET"]),
        Route("/experiments/{experiment_id}/scores", experiment_scores, methods=["GET"]),
        Route("/experiments/{experiment_id}/feedback", experiment_feedback, methods=["GET"]),
        Route("/scores/{score_id}", delete_score, methods=["DELETE"]),
        Route("/metric-definitions", list_metrics, methods=["GET"]),
        Route("/metric-definitions", create_metric, methods=["POST"]),
        Route("/metric-definitions/{key}", get_metric, methods=["GET"]),
        Route("/metric-definitions/{key}", update_metric, methods=["PUT", "PATCH"]),
        Route("/metric-definitions/{key}", delete_metric, methods=["DELETE"]),
    ]
