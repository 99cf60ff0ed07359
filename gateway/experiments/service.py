"""Experiments: take a captured call, change it, replay it through the gateway, compare.

`ExperimentService` is the domain: it validates what clients send (the HTTP routes in
`gateway.api.experiments` and the CLI are thin over it), stores experiments through the
`ExperimentStore` (reading spans from the `SpanStore`), and runs them through the same
`ProxyPipeline` every proxied call takes (routing, providers, capture, metrics), in
process, with its own response sink.

A run, step by step:

1. `gateway.experiments.requests.prepare_request` makes the body and headers: the
   ``model_parameters`` merged, the Mustache ``prompt_variables`` rendered, the
   fields capture redacted removed;
2. the route is checked: only a configured provider (routing never takes a URL), and
   a credential for it: the provider's configured key (added by the pipeline), or the
   run caller's own credential headers; when neither exists but one is needed, the
   run is refused with a clear error before anything is written;
3. the call goes through `ProxyPipeline.handle` as a new trace in the original's
   thread, labelled ``experiment``, its span carrying the experiment and original ids
   as attributes and an OpenTelemetry link to the original span;
4. the run (``experiment_runs``) and the experiment (status, result, error) are
   updated in one transaction, which also appends a history entry.

Runs execute as tasks the service owns: a client that goes away mid-run does not cut
the run short, and `close` lets runs in flight finish (or fail them) at shutdown.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import orjson

from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import credential_values, redact_body, scrub_values
from gateway.capture.span import STATUS_OK, Span, finalize, to_record
from gateway.config import Settings
from gateway.errors import Conflict, NotFound, SpanlabError, ValidationFailed
from gateway.experiments.diffing import compare_spans, json_changes
from gateway.experiments.matrix import REPLAY_FIELDS, MatrixService, matrix_experiment
from gateway.experiments.naming import default_name
from gateway.experiments.requests import (
    REPLAYABLE,
    check_content,
    json_object,
    optional_str,
    prepare_request,
    project_id,
    replayable_headers,
    replayable_request,
    validate_bool,
    validate_headers,
    validate_tags,
)
from gateway.experiments.runner import check_route, proxy_request
from gateway.experiments.transfer import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    OnConflict,
    import_bundle,
    import_items,
    new_experiment_id,
    new_run_id,
    with_new_ids,
)
from gateway.proxy.operations import ProxyRequest
from gateway.proxy.pipeline import ProxyPipeline
from gateway.proxy.providers import Router
from gateway.proxy.providers.base import CREDENTIAL_HEADERS, provider_secret_values
from gateway.proxy.sink import CollectingSink, Delta
from gateway.store.experiments import (
    EXPERIMENT_KINDS,
    EXPERIMENT_STATUSES,
    ExperimentFilter,
    ExperimentRecord,
    ExperimentStore,
    RunRecord,
    SqlExperimentStore,
    now_iso,
)
from gateway.store.matrix import SqlMatrixStore
from gateway.store.pagination import Page
from gateway.store.spans import SpanStore, span_from_row
from gateway.writer.span_writer import SpanWriter

logger = logging.getLogger(__name__)

EDITABLE = (
    "name",
    "description",
    "modified_request",
    "headers",
    "prompt_variables",
    "model_parameters",
    "status",
    "project_id",
    "tags",
    "favorite",
    "result_span_id",
    "result_trace_id",
)
READ_ONLY = (
    "id",
    "original_span_id",
    "original_trace_id",
    "original_request",
    "operation",
    "created_at",
    "updated_at",
    "error",
    "version",
    "kind",
)
CREATE_FIELDS = frozenset(
    {
        "name",
        "description",
        "original_span_id",
        "original_trace_id",
        "original_request",
        "modified_request",
        "headers",
        "prompt_variables",
        "model_parameters",
        "project_id",
        "tags",
        "favorite",
        "operation",
        "status",
        "kind",
    }
)
# PUT status changes that make sense; "running" is entered only through a run.
TRANSITIONS = {
    "draft": {"draft", "completed", "failed"},
    "running": {"running"},
    "completed": {"completed", "draft"},
    "failed": {"failed", "draft"},
}
STALE_GRACE_S = 60.0
CLOSE_GRACE_MAX_S = 10.0


# --- the service ----------------------------------------------------------------------------


@dataclass(slots=True)
class RunHandle:
    run: dict[str, Any]
    task: asyncio.Task[dict[str, Any]]


@dataclass
class ExperimentService:
    settings: Settings
    spans: SpanStore
    experiments: ExperimentStore
    pipeline: ProxyPipeline
    writer: SpanWriter
    prices: PriceTable
    router: Router
    _tasks: set[asyncio.Task[dict[str, Any]]] = field(default_factory=set)
    # Variants x inputs (gateway.experiments.matrix), on the same database.
    matrix: MatrixService = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.experiments, SqlExperimentStore):
            raise TypeError("the matrix needs the SQL experiment store")
        self.matrix = MatrixService(
            self.settings,
            SqlMatrixStore(self.experiments.db),
            self.spans,
            self.pipeline,
            self.prices,
            self.router,
        )

    # --- reading ------------------------------------------------------------------------

    async def get(self, experiment_id: str) -> dict[str, Any]:
        experiment = await self.experiments.get_experiment(experiment_id)
        if experiment is None:
            raise NotFound(f"No experiment with id {experiment_id!r}.", param="id")
        return experiment

    async def list_experiments(
        self,
        filters: ExperimentFilter,
        *,
        limit: int,
        cursor: str | None = None,
        latest_run: bool = False,
    ) -> Page:
        """A page of experiments; with ``latest_run``, each carries its latest run's
        summary (opt-in: the seed's list items are the experiments exactly)."""
        page = await self.experiments.list_experiments(filters, limit=limit, cursor=cursor)
        if latest_run:
            latest = await self.experiments.latest_runs([item["id"] for item in page.items])
            for item in page.items:
                item["latest_run"] = latest.get(item["id"])
        return page

    async def by_span(self, span_id: str, *, latest_run: bool = False) -> list[dict[str, Any]]:
        page = await self.list_experiments(
            ExperimentFilter(span=span_id), limit=1000, latest_run=latest_run
        )
        return page.items

    async def runs(self, experiment_id: str) -> list[dict[str, Any]]:
        await self.get(experiment_id)
        return await self.experiments.list_experiment_runs(experiment_id)

    async def get_run(self, experiment_id: str, run_id: str) -> dict[str, Any]:
        run = await self.experiments.get_experiment_run(run_id)
        if run is None or run["experiment_id"] != experiment_id:
            raise NotFound(f"Experiment {experiment_id!r} has no run {run_id!r}.", param="run")
        return run

    async def history(self, experiment_id: str) -> list[dict[str, Any]]:
        await self.get(experiment_id)
        return await self.experiments.experiment_history(experiment_id)

    # --- creating and editing -------------------------------------------------------

    async def create(self, body: Any) -> dict[str, Any]:
        body = json_object(body, "body")
        assert body is not None
        body = _aliases(body)
        unknown = set(body) - CREATE_FIELDS
        if unknown:
            raise ValidationFailed(
                f"Unknown field(s): {', '.join(sorted(unknown))}. Accepted:"
                f" {', '.join(sorted(CREATE_FIELDS))}.",
                param=sorted(unknown)[0],
            )
        kind = body.get("kind", "matrix" if not set(body) & REPLAY_FIELDS else "replay")
        if kind not in EXPERIMENT_KINDS:
            raise ValidationFailed(
                f"kind must be one of {', '.join(EXPERIMENT_KINDS)}, got {kind!r}.", param="kind"
            )
        if kind == "matrix":
            return await self._create_matrix(body)
        span_id = body.get("original_span_id")
        if not isinstance(span_id, str) or not span_id:
            raise ValidationFailed(
                "original_span_id is required: the span this experiment varies.",
                param="original_span_id",
            )
        span = await self.spans.get_span(span_id)
        if span is None:
            # A call made a moment ago may still be queued (bounded: 503 past it).
            await self.writer.flush(self.settings.flush_timeout_s)
            span = await self.spans.get_span(span_id)
        original = json_object(body.get("original_request"), "original_request", nullable=True)
        if original is None:
            if span is None:
                raise NotFound(
                    f"No span with id {span_id!r}; pass original_request (and"
                    " original_trace_id) to experiment on a call Spanlab did not capture.",
                    param="original_span_id",
                )
            original = replayable_request(span, self.router)
        trace_id = body.get("original_trace_id")
        if trace_id is not None and not isinstance(trace_id, str):
            raise ValidationFailed("original_trace_id must be a string.", param="original_trace_id")
        if span is not None:
            if trace_id and trace_id != span["trace_id"]:
                raise ValidationFailed(
                    f"original_trace_id {trace_id!r} is not the trace of span {span_id!r}"
                    f" ({span['trace_id']!r}).",
                    param="original_trace_id",
                )
            trace_id = span["trace_id"]
        if not trace_id:
            raise ValidationFailed(
                f"original_trace_id is required: span {span_id!r} is not in the store.",
                param="original_trace_id",
            )
        operation = body.get("operation") or (span or {}).get("operation") or "chat"
        if operation not in REPLAYABLE:
            raise ValidationFailed(
                f"Cannot experiment on a {operation!r} call; replayable: {', '.join(REPLAYABLE)}.",
                param="operation",
            )
        modified = json_object(body.get("modified_request"), "modified_request", nullable=True)
        status = body.get("status", "draft")
        if status != "draft":
            raise ValidationFailed(
                f"A new experiment starts as draft (got status {status!r}); run it to change that.",
                param="status",
            )
        now = now_iso()
        experiment = ExperimentRecord(
            id=new_experiment_id(),
            name=optional_str(body, "name", limit=500)
            or default_name(original, (span or {}).get("request_model"), datetime.now(UTC)),
            description=optional_str(body, "description"),
            original_span_id=span_id,
            original_trace_id=trace_id,
            original_request=redact_body(original),
            modified_request=redact_body(modified if modified is not None else original),
            headers=(
                validate_headers(body["headers"])
                if "headers" in body
                else (replayable_headers(span) if span is not None else None)
            ),
            prompt_variables=redact_body(
                json_object(body.get("prompt_variables"), "prompt_variables", nullable=True)
            ),
            model_parameters=redact_body(
                json_object(body.get("model_parameters"), "model_parameters", nullable=True)
            ),
            result_span_id=None,
            result_trace_id=None,
            status="draft",
            project_id=project_id(body) or (span or {}).get("project_id"),
            created_at=now,
            updated_at=now,
            tags=validate_tags(body.get("tags")),
            favorite=validate_bool(body.get("favorite", False), "favorite"),
            error=None,
            operation=operation,
            version=1,
        ).as_dict()
        check_content(experiment)
        await self.experiments.insert_experiment(experiment)
        return experiment

    async def _create_matrix(self, body: Mapping[str, Any]) -> dict[str, Any]:
        experiment = matrix_experiment(body)
        await self.experiments.insert_experiment(experiment)
        return experiment

    async def update(self, experiment_id: str, body: Any) -> dict[str, Any]:
        body = json_object(body, "body")
        assert body is not None
        body = _aliases(body)
        current = await self.get(experiment_id)
        unknown = set(body) - set(EDITABLE) - set(READ_ONLY)
        if unknown:
            raise ValidationFailed(
                f"Unknown field(s): {', '.join(sorted(unknown))}. Editable: {', '.join(EDITABLE)}.",
                param=sorted(unknown)[0],
            )
        if "version" in body and body["version"] != current["version"]:
            raise Conflict(
                f"Experiment {experiment_id!r} is at version {current['version']}, not"
                f" {body['version']!r}: it changed since you read it. Reload and retry.",
                param="version",
            )
        for key in READ_ONLY:
            if key != "version" and key in body and body[key] != current[key]:
                raise ValidationFailed(f"{key} cannot be changed.", param=key)
        values = self._edited_values(body)
        updated = {**current, **values}
        self._check_transition(current, updated, "status" in body)
        if updated.get("kind") != "matrix":  # a matrix experiment has no request
            check_content(updated)
        changes = {
            key: {"from": current[key], "to": value}
            for key, value in values.items()
            if value != current[key]
        }
        if not changes:
            return current
        values["updated_at"] = now_iso()
        return await self.experiments.update_experiment(
            experiment_id,
            values,
            expected_version=current["version"],
            changes=changes,
        )

    def _edited_values(self, body: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "name" in body:
            name = optional_str(body, "name", limit=500)
            if not name:
                raise ValidationFailed("name cannot be empty.", param="name")
            values["name"] = name
        if "description" in body:
            values["description"] = optional_str(body, "description")
        if "modified_request" in body:
            values["modified_request"] = redact_body(
                json_object(body["modified_request"], "modified_request")
            )
        if "headers" in body:
            values["headers"] = validate_headers(body["headers"])
        for key in ("prompt_variables", "model_parameters"):
            if key in body:
                values[key] = redact_body(json_object(body[key], key, nullable=True))
        if "status" in body:
            status = body["status"]
            if status not in EXPERIMENT_STATUSES:
                raise ValidationFailed(
                    f"status must be one of {', '.join(EXPERIMENT_STATUSES)}, got {status!r}.",
                    param="status",
                )
            values["status"] = status
        if "project_id" in body:
            values["project_id"] = project_id(body)
        if "tags" in body:
            values["tags"] = validate_tags(body["tags"])
        if "favorite" in body:
            values["favorite"] = validate_bool(body["favorite"], "favorite")
        for key in ("result_span_id", "result_trace_id"):
            if key in body:
                values[key] = optional_str(body, key, limit=256)
        return values

    def _check_transition(
        self, current: Mapping[str, Any], updated: Mapping[str, Any], asked: bool
    ) -> None:
        before, after = current["status"], updated["status"]
        if before == "running" and (
            (asked and after != "running") or updated["result_span_id"] != current["result_span_id"]
        ):
            raise Conflict(
                f"Experiment {current['id']!r} is running; its status and result change when"
                " the run ends.",
                param="status",
                code="experiment_running",
            )
        if after not in TRANSITIONS[before]:
            hint = " (use POST /experiments/{id}/run)" if after == "running" else ""
            raise Conflict(
                f"Cannot change status from {before!r} to {after!r}{hint}.",
                param="status",
                code="invalid_transition",
            )
        if after == "completed" and not updated.get("result_span_id"):
            raise Conflict(
                "An experiment is completed only with a result: set result_span_id, or run it.",
                param="status",
                code="invalid_transition",
            )

    async def delete(self, experiment_id: str) -> None:
        await self.matrix.stop(experiment_id)  # its matrix run, if any, stops first
        if not await self.experiments.delete_experiment(experiment_id):
            raise NotFound(f"No experiment with id {experiment_id!r}.", param="id")

    async def duplicate(self, experiment_id: str, body: Any = None) -> dict[str, Any]:
        source = await self.get(experiment_id)
        overrides = json_object(body, "body", nullable=True) or {}
        unknown = set(overrides) - {"name", "description", "tags", "project_id"}
        if unknown:
            raise ValidationFailed(
                f"duplicate accepts name, description, tags and project_id; got"
                f" {', '.join(sorted(unknown))}.",
                param=sorted(unknown)[0],
            )
        now = now_iso()
        record = dataclasses.replace(
            ExperimentRecord.of(copy.deepcopy(source)),
            id=new_experiment_id(),
            name=optional_str(overrides, "name", limit=500) or f"Copy of {source['name']}",
            result_span_id=None,
            result_trace_id=None,
            status="draft",
            error=None,
            favorite=False,
            created_at=now,
            updated_at=now,
            version=1,
        )
        if "description" in overrides:
            record.description = optional_str(overrides, "description")
        if "tags" in overrides:
            record.tags = validate_tags(overrides["tags"])
        if "project_id" in overrides:
            record.project_id = project_id(overrides)
        copy_ = record.as_dict()
        await self.experiments.insert_experiment(
            copy_, action="duplicated", changes={"duplicated_from": experiment_id}
        )
        return copy_

    async def restore(self, experiment_id: str, version: int) -> dict[str, Any]:
        """Bring back the edited content of an earlier version (a new version)."""
        history = await self.history(experiment_id)
        entry = next((h for h in history if h["version"] == version), None)
        if entry is None:
            raise NotFound(
                f"Experiment {experiment_id!r} has no version {version}.", param="version"
            )
        snapshot = entry["snapshot"]
        content = (
            "name",
            "description",
            "modified_request",
            "headers",
            "prompt_variables",
            "model_parameters",
            "tags",
            "favorite",
            "project_id",
        )
        return await self.update(experiment_id, {k: snapshot[k] for k in content if k in snapshot})

    # --- running ----------------------------------------------------------------------

    async def run(self, experiment_id: str, **options: Any) -> dict[str, Any]:
        """`start_run` with ``options``, and wait for the run's end."""
        handle = await self.start_run(experiment_id, **options)
        # Shielded: a caller that goes away does not cut the run short.
        return await asyncio.shield(handle.task)

    async def start_run(
        self,
        experiment_id: str,
        *,
        stream: bool = False,
        credentials: Sequence[tuple[str, str]] = (),
        on_delta: Delta | None = None,
        charge: str | None = None,
    ) -> RunHandle:
        """Validate and record the start of a run, then run it as a task.

        Every refusal (404, 409, 422, missing credential...) happens before anything
        is written."""
        experiment = await self.get(experiment_id)
        original = await self.spans.get_span(experiment["original_span_id"])
        payload, headers = prepare_request(experiment, stream=stream)
        credentials = [(k.lower(), v) for k, v in credentials if k.lower() in CREDENTIAL_HEADERS]
        provider = check_route(self.pipeline, experiment, payload, headers, credentials, original)
        run = RunRecord(
            id=new_run_id(),
            experiment_id=experiment_id,
            status="running",
            request=payload,
            headers=headers or None,
            stream=bool(payload.get("stream")),
            result_span_id=None,
            result_trace_id=None,
            output_text=None,
            error=None,
            started_at=now_iso(),
            ended_at=None,
            duration_ms=None,
        ).as_dict()
        # As the proxy knows them ("Bearer x" gives x too; a base_url's userinfo).
        configured = self.router.provider(provider)
        secrets = credential_values(credentials) + provider_secret_values(configured)
        key = configured.api_key()
        if key:
            secrets.append(key)
        if secrets:  # a credential typed into a prompt still never reaches the database
            run["request"] = orjson.loads(scrub_values(orjson.dumps(payload).decode(), secrets))
        await self.experiments.start_experiment_run(run, stale_before=self._stale_before())
        # The pipeline edits the body it sends (model prefix, stream options): its own copy.
        request = proxy_request(
            experiment, run, copy.deepcopy(payload), headers, credentials, original
        )
        request.charge = charge  # counted for the key that started it (quotas)
        task = asyncio.create_task(
            self._execute(experiment, run, request, on_delta), name=f"experiment-run-{run['id']}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return RunHandle(dict(run), task)

    async def _execute(
        self,
        experiment: Mapping[str, Any],
        run: dict[str, Any],
        request: ProxyRequest,
        on_delta: Delta | None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        sink = CollectingSink(request.operation, on_delta)
        run = dict(run)
        if self.pipeline.writer is not None and request.context is not None:
            # The pipeline stores a span for every call, however it ends (an
            # interrupted one too), so the run can name it from the start.
            run["result_span_id"] = request.context.span_id
            run["result_trace_id"] = request.context.trace_id
        try:
            span = await self.pipeline.handle(request, sink)
            result = self.span_json(span)
            run["result_span_id"] = result["span_id"]
            run["result_trace_id"] = result["trace_id"]
            run["output_text"] = result.get("output_text")
            ok = result["status"] == STATUS_OK and (result.get("http_status") or 200) < 400
            run["status"] = "completed" if ok else "failed"
            if not ok:
                run["error"] = result.get("error") or {
                    "type": "upstream_error",
                    "code": f"http_{result.get('http_status')}",
                    "message": f"The provider answered HTTP {result.get('http_status')}.",
                }
        except BaseException as exc:
            run["status"] = "failed"
            if isinstance(exc, asyncio.CancelledError):
                run["error"] = {
                    "type": "interrupted",
                    "code": "run_interrupted",
                    "message": "The gateway stopped before this run finished.",
                }
            elif isinstance(exc, SpanlabError):
                run["error"] = exc.to_dict()["error"]
            else:
                logger.exception("experiment run %s failed", run["id"])
                run["error"] = {
                    "type": "server_error",
                    "code": "internal_error",
                    "message": f"Internal error ({type(exc).__name__}); see the gateway log.",
                }
            raise
        finally:
            run["ended_at"] = now_iso()
            run["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self.pipeline.metrics.experiment_runs.labels(run["status"]).inc()
            with anyio.CancelScope(shield=True):
                await self.experiments.finish_experiment_run(run)
        return run

    def span_json(self, span: Span) -> dict[str, Any]:
        """The span as the API will present it once stored (redacted, derived)."""
        finalize(span, self.prices)
        return span_from_row(to_record(span))

    async def close(self, grace_s: float | None = None) -> None:
        """At shutdown: let runs in flight finish for ``grace_s`` seconds (default:
        ``shutdown_grace_s``, at most 10: the server has waited for its requests
        already), then fail them, each recorded as interrupted. Matrix runs stop at
        once, their cells in flight interrupted (a resume finishes them)."""
        await self.matrix.close()
        tasks = list(self._tasks)
        if not tasks:
            return
        if grace_s is None:
            grace_s = min(self.settings.shutdown_grace_s, CLOSE_GRACE_MAX_S)
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def recover(self) -> int:
        """Fail runs that a stopped gateway left running (older than any live run);
        matrix cells left running become interrupted."""
        await self.matrix.recover()
        return await self.experiments.fail_stale_experiment_runs(self._stale_before())

    def _stale_before(self) -> str:
        """Runs still marked running that started before this are orphans: no live run
        lasts longer than ``request_timeout`` (the pipeline's deadline)."""
        cutoff = datetime.now(UTC) - timedelta(
            seconds=self.settings.request_timeout + STALE_GRACE_S
        )
        return cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # --- comparing ------------------------------------------------------------------------

    async def compare(
        self, experiment_id: str, run_id: str | None = None, base_run_id: str | None = None
    ) -> dict[str, Any]:
        """Side A (``original``: the original call, or the run ``base_run_id``) against
        side B (``result``: the run ``run_id``, or the experiment's latest result): what
        changed in the request, then in the output and the numbers."""
        experiment = await self.get(experiment_id)
        run: dict[str, Any] | None = None
        if run_id is not None:
            run = await self._finished_run(experiment_id, run_id, "run")
            result_span_id = run["result_span_id"]
        else:
            runs = await self.experiments.list_experiment_runs(experiment_id)
            run = next((r for r in runs if r["status"] != "running"), None)
            result_span_id = experiment.get("result_span_id")
            if run is not None and run["result_span_id"] != result_span_id:
                run = next((r for r in runs if r["result_span_id"] == result_span_id), None)
        if not result_span_id:
            if experiment["status"] == "running":
                raise Conflict(
                    f"Experiment {experiment_id!r} is running; compare when it ends.",
                    code="experiment_running",
                )
            raise Conflict(
                f"Experiment {experiment_id!r} has no result yet: run it first.",
                code="not_run",
            )
        base: dict[str, Any] | None = None
        if base_run_id is not None:
            base = await self._finished_run(experiment_id, base_run_id, "base")
            original = await self._span(base["result_span_id"], "base run's result")
            request_a: Any = base["request"]
        else:
            original = await self._span(experiment["original_span_id"], "original")
            request_a = experiment["original_request"]
        result = await self._span(result_span_id, "result")
        request_b: Any = run["request"] if run is not None else None
        comparison = compare_spans(original, result)
        return {
            "experiment_id": experiment_id,
            "base_run_id": base["id"] if base is not None else None,
            "run_id": run["id"] if run is not None else None,
            "run_status": run["status"] if run is not None else experiment["status"],
            "request": {
                "original": request_a,
                "result": request_b,
                "changes": json_changes(request_a, request_b) if request_b is not None else [],
            },
            **comparison,
        }

    async def _finished_run(self, experiment_id: str, run_id: str, param: str) -> dict[str, Any]:
        """A run of this experiment that ended with a result span (to compare)."""
        run = await self.experiments.get_experiment_run(run_id)
        if run is None or run["experiment_id"] != experiment_id:
            raise NotFound(f"Experiment {experiment_id!r} has no run {run_id!r}.", param=param)
        if run["status"] == "running":
            raise Conflict(
                f"Run {run_id!r} is still running.", param=param, code="experiment_running"
            )
        if not run["result_span_id"]:
            raise Conflict(
                f"Run {run_id!r} failed before it made a call: there is no output to compare.",
                param=param,
                code="no_result",
            )
        return run

    async def _span(self, span_id: str, which: str) -> dict[str, Any]:
        span = await self.spans.get_span(span_id)
        if span is None:
            # A result that was just produced may still be queued (bounded: 503 past it).
            await self.writer.flush(self.settings.flush_timeout_s)
            span = await self.spans.get_span(span_id)
        if span is None:
            raise NotFound(
                f"The {which} span {span_id!r} is not in the store (not captured, or"
                " deleted), so there is nothing to compare it with.",
                param="span_id",
            )
        return span

    # --- export and import -------------------------------------------------------------

    async def export(self, experiment_ids: Sequence[str]) -> dict[str, Any]:
        items = []
        for experiment_id in experiment_ids:
            experiment = await self.get(experiment_id)
            items.append(
                {
                    **experiment,
                    "runs": await self.experiments.list_experiment_runs(experiment_id),
                    "history": [
                        {k: v for k, v in h.items() if k != "experiment_id"}
                        for h in await self.experiments.experiment_history(experiment_id)
                    ],
                }
            )
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "exported_at": now_iso(),
            "experiments": items,
        }

    async def import_(self, document: Any, *, on_conflict: OnConflict = "error") -> list[str]:
        """Store exported experiments (all or nothing); returns the ids stored."""
        items = import_items(document)
        bundles = [import_bundle(item, i) for i, item in enumerate(items)]
        if on_conflict == "copy":
            bundles = [with_new_ids(*bundle) for bundle in bundles]
        seen: set[str] = set()
        for experiment, _, _ in bundles:
            if experiment["id"] in seen:
                raise ValidationFailed(
                    f"Experiment {experiment['id']!r} appears twice in the import.", param="id"
                )
            seen.add(experiment["id"])
        return await self.experiments.import_experiments(
            bundles, on_conflict="skip" if on_conflict == "skip" else "error"
        )


# --- helpers --------------------------------------------------------------------------------


def _aliases(body: dict[str, Any]) -> dict[str, Any]:
    if "favourite" in body and "favorite" not in body:
        body = {**body, "favorite": body["favourite"]}
        del body["favourite"]
    return body
