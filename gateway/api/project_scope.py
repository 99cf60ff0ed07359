"""Project keys: a key bound to a project reads and changes that project only.

One hook, `fenced` (like `gateway.api.audit.audited`), wraps the handlers of the
management routes once. With keys off, or a key bound to no project (the admin key,
an admin-made global key), it costs one attribute lookup and the handler runs as
before. For a key bound to project P (a NULL ``project_id`` in any table is the
default project, ``"default"``):

- **Objects named in the path** (`PARAM_KINDS`: ``experiment_id``, ``dataset_id``,
  ``span_id``, ``session_id``, ``run_id``, ``score_id``): another project's is a 404
  with the very answer a missing id gets (its existence is not confirmed). What hangs
  under an object (variants, inputs, items, runs, evaluators, scores...) is reached
  through it, so is fenced with it.
- **The ``project`` query parameter** is set to P on every route, so every list,
  count, facet, export-by-filter and metric definition is P's. Naming another project
  there is a 403 (``project_forbidden``): the request asked for what the key cannot
  have, and saying so is clearer than answering with something else.
- **Bodies** of the routes that create or move things (`BODY_RULES`): a
  ``project_id`` (or its alias) naming another project is a 403; what is created is
  put in P. Objects a body refers to (the span an experiment varies, a dataset's
  items as inputs, a playground session, spans to copy into a dataset) must be P's
  (else the same 404 as a missing one).
- **Answers** that gather things by another link (`ANSWER_RULES`: experiments on a
  span, an import's answer, a trace's spans, the project list) keep P's only.

The live ``/events`` stream keeps P's events (`visible`, applied in
`gateway.api.system`). The proxy path's ``x-project-id`` is the guard's: a project
key's own project replaces whatever the client sent (`gateway.access.guard`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope

from gateway.access.guard import principal_of
from gateway.access.keys import DEFAULT_PROJECT
from gateway.access.routes import route_methods
from gateway.api import json_body, json_response
from gateway.api.datasets import read_limited
from gateway.api.events import EVENT_NAME
from gateway.errors import Forbidden, InvalidRequest, NotFound
from gateway.state import AppState, app_state

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
PROJECT_FIELDS = ("project_id", "projectId", "project")


def project_scope(request: Request | Scope) -> str | None:
    """The project the request is confined to (its key's), or None (keys off, or a key
    bound to no project: everything, as before)."""
    scope = request.scope if isinstance(request, Request) else request
    principal = principal_of(scope)
    return None if principal is None else principal.project_id


def same_project(value: Any, project: str) -> bool:
    """Whether a stored or asked ``project_id`` is ``project`` (None or "" is the default)."""
    return (value or DEFAULT_PROJECT) == project


def visible(item: dict[str, Any], project: str) -> bool:
    """Whether a live event (a stored span, or a named event's record) is ``project``'s."""
    data = item.get("data") if EVENT_NAME in item else item
    return isinstance(data, dict) and same_project(data.get("project_id"), project)


def forbidden(asked: Any, project: str) -> Forbidden:
    return Forbidden(
        f"This key is bound to project {project!r}; it cannot act on project {asked!r}.",
        code="project_forbidden",
        param="project_id",
    )


# --- who owns an object -------------------------------------------------------------

_MISSING = object()  # the object does not exist
Owner = Callable[[AppState, str], Awaitable[Any]]


async def _experiment(state: AppState, ref: str) -> Any:
    found = await state.stores.experiments.get_experiment(ref)
    return _MISSING if found is None else found.get("project_id")


async def _run(state: AppState, ref: str) -> Any:
    run = await state.stores.experiments.get_experiment_run(ref)
    return _MISSING if run is None else await _experiment(state, str(run["experiment_id"]))


async def _dataset(state: AppState, ref: str) -> Any:
    found = await state.stores.datasets.get_dataset(ref)
    return _MISSING if found is None else found.project_id


async def _span(state: AppState, ref: str) -> Any:
    found = await state.stores.spans.get_span(ref)
    if found is None:
        # An app sends feedback with the span id it was just answered with: the span may
        # still be in the writer's queue (the handler waits for it the same way).
        await state.writer.flush(state.settings.flush_timeout_s)
        found = await state.stores.spans.get_span(ref)
    return _MISSING if found is None else found.get("project_id")


async def _session(state: AppState, ref: str) -> Any:
    found = await state.stores.playground.get_session(ref)
    return _MISSING if found is None else found.project_id


async def _score(state: AppState, ref: str) -> Any:
    found = await state.stores.evaluation.get_score(ref)
    return _MISSING if found is None else found.project_id


@dataclass(frozen=True, slots=True)
class Kind:
    owner: Owner
    message: str  # the handlers' own 404 message ({!r} of the id)
    param: str | None  # the handlers' own 404 param (None: the field's name)


EXPERIMENT = Kind(_experiment, "No experiment with id {!r}.", "id")
RUN = Kind(_run, "No experiment run with id {!r}.", "run_id")
DATASET = Kind(_dataset, "No dataset with id {!r}.", "dataset_id")
SPAN = Kind(_span, "No span with id {!r}.", "span_id")
SESSION = Kind(_session, "No playground session with id {!r}.", "id")
SCORE = Kind(_score, "No score with id {!r}.", "score_id")

# Path parameters that name an object, and its kind.
PARAM_KINDS: dict[str, Kind] = {
    "experiment_id": EXPERIMENT,
    "run_id": RUN,
    "dataset_id": DATASET,
    "span_id": SPAN,
    "session_id": SESSION,
    "score_id": SCORE,
}
# Under an experiment, a run id is checked against the experiment by the handler.
_INNER_PARAMS = {("experiment_id", "run_id")}


async def check_owned(
    state: AppState, kind: Kind, ref: Any, project: str, param: str | None = None
) -> None:
    """A 404, as for a missing id, unless ``ref`` is ``project``'s."""
    if not isinstance(ref, str):
        return  # the handler says what is wrong with it
    owner = await kind.owner(state, ref)
    if owner is _MISSING or not same_project(owner, project):
        raise NotFound(kind.message.format(ref), param=kind.param or param)


# --- the rules ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BodyRule:
    """What a route's JSON body may say: ``put`` its project (a new thing goes to the
    key's project; else another one named is only refused), the fields that name
    ``refs`` (field -> kind; a list of ids is checked id by id), and ``items``: the
    body is an import document (a list, ``{"experiments": [...]}``, or one)."""

    put: bool = False
    refs: dict[str, Kind] = field(default_factory=dict)
    items: bool = False
    # Lists of rows (a field's name; "": the body is the list) whose rows may name a
    # source span (`SOURCE_FIELDS`): each must be the project's.
    rows: tuple[str, ...] = ()


SOURCE_FIELDS = ("source_span_id", "sourceSpanId")


_SPAN_REF = {"original_span_id": SPAN}
BODY_RULES: dict[str, BodyRule] = {
    "POST /experiments": BodyRule(put=True, refs=_SPAN_REF),
    "POST /experiments/import": BodyRule(put=True, items=True),
    "PUT /experiments/{experiment_id}": BodyRule(),
    "PATCH /experiments/{experiment_id}": BodyRule(),
    "POST /experiments/{experiment_id}/duplicate": BodyRule(put=True),
    "POST /experiments/{experiment_id}/inputs": BodyRule(
        refs={"dataset_id": DATASET, "datasetId": DATASET}, rows=("inputs", "")
    ),
    "POST /datasets": BodyRule(put=True, rows=("items",)),
    "POST /datasets/{dataset_id}/items": BodyRule(rows=("items", "")),
    "PUT /datasets/{dataset_id}/items/{item_id}": BodyRule(rows=("",)),
    "PATCH /datasets/{dataset_id}/items/{item_id}": BodyRule(rows=("",)),
    "PUT /datasets/{dataset_id}": BodyRule(),
    "PATCH /datasets/{dataset_id}": BodyRule(),
    "POST /datasets/{dataset_id}/items/from-spans": BodyRule(refs={"span_ids": SPAN}),
    "POST /playground/complete": BodyRule(
        put=True, refs={"session_id": SESSION, "sessionId": SESSION}
    ),
    "POST /playground/sessions/{session_id}/experiment": BodyRule(),
    "POST /metric-definitions": BodyRule(put=True),
}


@dataclass(frozen=True, slots=True)
class AnswerRule:
    """Keep the entries of the answer's list ``key`` whose ``field`` is the project;
    ``empty`` (a 404 message with ``{!r}`` of ``param``): none left is a 404."""

    key: str = "data"
    field: str = "project_id"
    empty: str | None = None
    param: str | None = None


ANSWER_RULES: dict[str, AnswerRule] = {
    "GET /experiments/by-span/{span_id}": AnswerRule(),
    "POST /experiments/import": AnswerRule(),
    "GET /traces/{trace_id}": AnswerRule("spans", empty="No trace with id {!r}.", param="trace_id"),
    "GET /projects": AnswerRule(field="id"),
}

# Query parameters that list objects by id (comma-separated): each must be the project's.
QUERY_REFS: dict[str, tuple[str, Kind]] = {"GET /experiments/export": ("ids", EXPERIMENT)}


async def _restored_project(request: Request, project: str) -> None:
    """A restored version brings back its ``project_id``: it must be the key's (an
    experiment an admin moved into the project has versions from another)."""
    experiment_id = request.path_params["experiment_id"]
    history = await app_state(request).experiments.history(experiment_id)
    version = request.path_params.get("version")
    for entry in history:
        if str(entry.get("version")) == version:
            snapshot = entry.get("snapshot") or {}
            if "project_id" in snapshot and not same_project(snapshot["project_id"], project):
                raise forbidden(snapshot["project_id"], project)


# Checks of what a route would bring in that its path, query and body do not say.
PRE_CHECKS: dict[str, Callable[[Request, str], Awaitable[None]]] = {
    "POST /experiments/{experiment_id}/history/{version}/restore": _restored_project,
}

# Routes whose query string is the handler's own fields (a raw import's options): the
# project is checked there, not added.
OWN_QUERY = frozenset({"POST /datasets/{dataset_id}/import"})

# Routes a project key never reaches (admin scope) or that hold no project's data.
UNFENCED_PREFIXES = ("/v1/", "/session", "/keys", "/audit", "/ui", "/healthz", "/metrics")


@dataclass(frozen=True, slots=True)
class Fence:
    route: str  # "METHOD /path"
    params: tuple[tuple[str, Kind], ...]
    body: BodyRule | None
    answer: AnswerRule | None
    query: tuple[str, Kind] | None = None


def fence_for(method: str, path: str) -> Fence | None:
    if path == "/" or path.startswith(UNFENCED_PREFIXES):
        return None
    route = f"{method} {path}"
    names = [p.split(":")[0] for p in _path_params(path)]
    params = tuple(
        (name, PARAM_KINDS[name])
        for name in names
        if name in PARAM_KINDS
        and not any(outer in names and inner == name for outer, inner in _INNER_PARAMS)
    )
    return Fence(
        route, params, BODY_RULES.get(route), ANSWER_RULES.get(route), QUERY_REFS.get(route)
    )


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


# --- applying them ------------------------------------------------------------------


def _query(request: Request, project: str, keep_unset: bool) -> bytes:
    """The query string with ``project`` set to the key's (another one: 403)."""
    pairs = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), True)
    out: list[tuple[str, str]] = []
    for name, value in pairs:
        if name == "project":
            if value and not same_project(value, project):
                raise forbidden(value, project)
            continue
        out.append((name, value))
    if not keep_unset:
        out.append(("project", project))
    return urlencode(out).encode("latin-1")


def _project_fields(body: dict[str, Any], project: str, put: bool) -> dict[str, Any]:
    out = dict(body)
    for name in PROJECT_FIELDS:
        if name in out:
            value = out[name]
            if value not in (None, "") and not (
                isinstance(value, str) and same_project(value, project)
            ):
                raise forbidden(value, project)
            if put:
                del out[name]
    if put and project != DEFAULT_PROJECT:
        out["project_id"] = project  # the default project is NULL: nothing to put
    return out


async def _checked_body(
    request: Request, rule: BodyRule, project: str
) -> tuple[bytes, dict[str, Any] | None]:
    raw = await read_limited(request)
    if not raw.strip():
        return raw, None
    try:
        body = json_body(raw)
    except InvalidRequest:
        return raw, None  # the handler answers it (a CSV import, bad JSON...)
    state = app_state(request)
    for name in rule.rows:
        for row in _rows(body, name):
            for source in SOURCE_FIELDS:
                await check_owned(state, SPAN, row.get(source), project, source)
    if isinstance(body, dict) and not rule.items:
        for name, kind in rule.refs.items():
            value = body.get(name)
            for ref in value if isinstance(value, list) else [value]:
                if ref is not None:
                    await check_owned(state, kind, ref, project, name)
        body = _project_fields(body, project, rule.put)
    elif rule.items:
        if isinstance(body, dict) and isinstance(body.get("experiments"), list):
            body = {**body, "experiments": _items(body["experiments"], project)}
        elif isinstance(body, list):
            body = _items(body, project)
        elif isinstance(body, dict):
            body = _project_fields(body, project, True)
    return orjson.dumps(body), body if isinstance(body, dict) else None


def _rows(body: Any, name: str) -> list[dict[str, Any]]:
    """The rows ``body`` holds under ``name`` ("": the body itself, a list or one row)."""
    found = body if name == "" else (body.get(name) if isinstance(body, dict) else None)
    rows = [found] if isinstance(found, dict) else found if isinstance(found, list) else []
    return [row for row in rows if isinstance(row, dict)]


def _items(items: list[Any], project: str) -> list[Any]:
    return [_project_fields(i, project, True) if isinstance(i, dict) else i for i in items]


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the client's own messages (a
    disconnect, for a streamed answer)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _filtered(response: Response, rule: AnswerRule, project: str, request: Request) -> Response:
    body = getattr(response, "body", None)
    if not (200 <= response.status_code < 300 and isinstance(body, bytes)):
        return response
    answer = orjson.loads(body)
    entries = answer.get(rule.key) if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        return response
    kept = [e for e in entries if isinstance(e, dict) and same_project(e.get(rule.field), project)]
    if not kept and rule.empty is not None:
        ref = request.path_params.get(rule.param or "")
        raise NotFound(rule.empty.format(ref), param=rule.param)
    filtered = json_response({**answer, rule.key: kept}, status_code=response.status_code)
    for name, value in response.headers.items():
        if name not in ("content-length", "content-type"):
            filtered.headers[name] = value
    return filtered


def _fenced_handler(handler: Handler, fences: dict[str, Fence]) -> Handler:
    async def endpoint(request: Request) -> Response:
        project = project_scope(request)
        if project is None:
            return await handler(request)
        fence = fences.get("GET" if request.method == "HEAD" else request.method)
        if fence is None:
            return await handler(request)
        state = app_state(request)
        for name, kind in fence.params:
            await check_owned(state, kind, request.path_params.get(name), project, name)
        if fence.query is not None:
            name, kind = fence.query
            for ref in (request.query_params.get(name) or "").split(","):
                if ref.strip():
                    await check_owned(state, kind, ref.strip(), project, name)
        pre = PRE_CHECKS.get(fence.route)
        if pre is not None:
            await pre(request, project)
        scope = dict(request.scope)
        receive = request.receive
        body: dict[str, Any] | None = None
        if fence.body is not None:
            raw, body = await _checked_body(request, fence.body, project)
            receive = _replay(raw, request.receive)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"] + [
                (b"content-length", str(len(raw)).encode())
            ]
        # Spans listed by id are not also filtered (the service takes one or the other).
        listed = body is not None and "span_ids" in body
        scope["query_string"] = _query(
            request, project, keep_unset=listed or fence.route in OWN_QUERY
        )
        response = await handler(Request(scope, receive))
        if fence.answer is not None:
            return _filtered(response, fence.answer, project, request)
        return response

    return endpoint


def fenced(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with every management handler wrapped (`Fence` for each method)."""
    out: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route) and inspect.iscoroutinefunction(route.endpoint):
            fences = {
                method: fence
                for method, path in route_methods(route)
                if (fence := fence_for(method, path)) is not None
            }
            if fences:
                route = Route(
                    route.path,
                    _fenced_handler(route.endpoint, fences),
                    methods=sorted(route.methods or ()),
                    name=route.name,
                )
        out.append(route)
    return out
