"""Export and import of experiments: one JSON document carries experiments with their
runs and version history, so exporting, importing elsewhere and exporting again gives
the same document (bar ``exported_at``).

Import is validated like a create (and all or nothing in the store); ids are kept, so
an import into a database that has them fails (``on_conflict=error``), leaves those
out (``skip``) or stores copies under new ids (``copy``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from gateway.capture.redaction import redact_body
from gateway.errors import InvalidRequest, ValidationFailed
from gateway.experiments.requests import (
    MAX_INTEGER,
    REPLAYABLE,
    check_content,
    json_object,
    optional_str,
    positive_int,
    project_id,
    validate_bool,
    validate_headers,
    validate_tags,
)
from gateway.store.experiments import (
    EXPERIMENT_KINDS,
    EXPERIMENT_STATUSES,
    RUN_STATUSES,
    ExperimentRecord,
    HistoryEntry,
    RunRecord,
    now_iso,
    snapshot_of,
)

EXPORT_FORMAT = "spanlab.experiments"
EXPORT_VERSION = 1
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_RESERVED_IDS = frozenset({"by-span", "export", "import"})
OnConflict = Literal["error", "skip", "copy"]


def new_experiment_id() -> str:
    return "exp_" + os.urandom(12).hex()


def new_run_id() -> str:
    return "exprun_" + os.urandom(12).hex()


def import_items(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if "experiments" in document:
            if document.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
                raise ValidationFailed(
                    f"Not a Spanlab experiments export (format {document.get('format')!r}).",
                    param="format",
                )
            version = document.get("version", EXPORT_VERSION)
            if not isinstance(version, int) or version > EXPORT_VERSION:
                raise ValidationFailed(
                    f"Export version {version!r} is newer than this Spanlab reads"
                    f" ({EXPORT_VERSION}).",
                    param="version",
                )
            items = document["experiments"]
            if not isinstance(items, list):
                raise ValidationFailed("experiments must be a list.", param="experiments")
            return items
        return [document]
    raise ValidationFailed(
        "An import is an export document, a list of experiments or one experiment.",
        param="body",
    )


def import_run(run: Any, experiment_id: str) -> dict[str, Any]:
    if not isinstance(run, Mapping):
        raise ValidationFailed("Each run must be a JSON object.", param="runs")
    run_id = run.get("id")
    if not isinstance(run_id, str) or not _ID.match(run_id):
        raise ValidationFailed(f"Invalid run id {run_id!r}.", param="runs.id")
    if run.get("status") not in RUN_STATUSES:
        raise ValidationFailed(f"Invalid run status {run.get('status')!r}.", param="runs.status")
    request = json_object(run.get("request"), "runs.request")
    if not isinstance(run.get("started_at"), str):
        raise ValidationFailed("A run needs started_at.", param="runs.started_at")
    error = run.get("error")
    if error is not None and not isinstance(error, dict):
        raise ValidationFailed("A run's error must be an object or null.", param="runs.error")
    duration = run.get("duration_ms")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not 0 <= duration <= MAX_INTEGER
    ):
        raise ValidationFailed(
            f"duration_ms must be a number from 0 to {MAX_INTEGER}.", param="runs.duration_ms"
        )
    return RunRecord(
        id=run_id,
        experiment_id=experiment_id,
        status=run["status"],
        request=redact_body(request),
        headers=validate_headers(run.get("headers")),
        stream=bool(run.get("stream")),
        result_span_id=optional_str(run, "result_span_id", limit=256),
        result_trace_id=optional_str(run, "result_trace_id", limit=256),
        output_text=optional_str(run, "output_text", limit=10_000_000),
        error=error,
        started_at=run["started_at"],
        ended_at=optional_str(run, "ended_at", limit=64),
        duration_ms=duration,
    ).as_dict()


def import_history(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ValidationFailed("Each history entry must be a JSON object.", param="history")
    version = positive_int(entry.get("version"), "history.version")
    if not isinstance(entry.get("action"), str) or not isinstance(entry.get("at"), str):
        raise ValidationFailed("A history entry needs action and at.", param="history")
    snapshot = entry.get("snapshot")
    if not isinstance(snapshot, dict):
        raise ValidationFailed("A history entry needs a snapshot object.", param="history")
    run_id = entry.get("run_id")
    if run_id is not None and (not isinstance(run_id, str) or len(run_id) > 256):
        raise ValidationFailed(
            "A history entry's run_id must be a run id or null.", param="history.run_id"
        )
    changes = entry.get("changes")
    if changes is not None and not isinstance(changes, dict):
        raise ValidationFailed("A history entry's changes must be an object.", param="history")
    return HistoryEntry(
        version=version,
        action=entry["action"],
        at=entry["at"],
        changes=changes,
        run_id=run_id,
        snapshot=redact_body(snapshot),
    ).as_dict()


def with_new_ids(
    experiment: dict[str, Any], runs: list[dict[str, Any]], history: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    new_id = new_experiment_id()
    run_ids = {run["id"]: new_run_id() for run in runs}
    return (
        {**experiment, "id": new_id},
        [{**run, "id": run_ids[run["id"]], "experiment_id": new_id} for run in runs],
        [{**h, "run_id": run_ids.get(h["run_id"], h["run_id"])} for h in history],
    )


def import_bundle(
    item: Mapping[str, Any], index: int
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    where = f"experiments[{index}]"
    try:
        experiment = import_experiment(item)
        # A matrix cell (a run with a matrix_run_id) is exported for the record but not
        # imported: its variant, input and matrix run are not part of the document.
        runs = [
            import_run(r, experiment["id"])
            for r in _entries(item, "runs")
            if not (isinstance(r, Mapping) and r.get("matrix_run_id"))
        ]
        history = [import_history(h) for h in _entries(item, "history")]
        _unique([r["id"] for r in runs], "run id", "runs.id")
        _unique([h["version"] for h in history], "history version", "history.version")
    except InvalidRequest as exc:
        raise type(exc)(f"{where}: {exc.message}", param=exc.param, code=exc.code) from None
    if not history:
        history = [
            HistoryEntry(
                version=experiment["version"],
                action="imported",
                at=experiment["updated_at"],
                snapshot=snapshot_of(experiment),
            ).as_dict()
        ]
    return experiment, runs, history


def _unique(values: list[Any], what: str, param: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValidationFailed(f"The {what} {value!r} appears twice.", param=param)
        seen.add(value)


def _entries(item: Mapping[str, Any], key: str) -> list[Any]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationFailed(f"{key} must be a list, got {type(value).__name__}.", param=key)
    return value


def import_experiment(item: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ValidationFailed("Each experiment must be a JSON object.")
    experiment_id = item.get("id") or new_experiment_id()
    if not isinstance(experiment_id, str) or not _ID.match(experiment_id):
        raise ValidationFailed(f"Invalid experiment id {experiment_id!r}.", param="id")
    if experiment_id in _RESERVED_IDS:
        raise ValidationFailed(f"{experiment_id!r} is not a usable id.", param="id")
    status = item.get("status", "draft")
    if status not in EXPERIMENT_STATUSES:
        raise ValidationFailed(f"Invalid status {status!r}.", param="status")
    kind = item.get("kind", "replay")
    if kind not in EXPERIMENT_KINDS:
        raise ValidationFailed(f"Invalid kind {kind!r}.", param="kind")
    if kind == "matrix":
        return _matrix_experiment(item, experiment_id, status)
    for key in ("original_span_id", "original_trace_id"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise ValidationFailed(f"{key} is required.", param=key)
    original = json_object(item.get("original_request"), "original_request")
    assert original is not None
    modified = json_object(item.get("modified_request", original), "modified_request")
    version = positive_int(item.get("version", 1), "version")
    now = now_iso()
    error = item.get("error")
    if error is not None and not isinstance(error, dict):
        raise ValidationFailed("error must be an object or null.", param="error")
    experiment = ExperimentRecord(
        id=experiment_id,
        name=optional_str(item, "name", limit=500) or f"Experiment {experiment_id}",
        description=optional_str(item, "description"),
        original_span_id=item["original_span_id"],
        original_trace_id=item["original_trace_id"],
        original_request=redact_body(original),
        modified_request=redact_body(modified),
        headers=validate_headers(item.get("headers")),
        prompt_variables=redact_body(
            json_object(item.get("prompt_variables"), "prompt_variables", nullable=True)
        ),
        model_parameters=redact_body(
            json_object(item.get("model_parameters"), "model_parameters", nullable=True)
        ),
        result_span_id=optional_str(item, "result_span_id", limit=256),
        result_trace_id=optional_str(item, "result_trace_id", limit=256),
        status=status,
        project_id=project_id(item),
        created_at=optional_str(item, "created_at", limit=64) or now,
        updated_at=optional_str(item, "updated_at", limit=64) or now,
        tags=validate_tags(item.get("tags")),
        favorite=validate_bool(item.get("favorite", False), "favorite"),
        error=error,
        operation=item.get("operation") or "chat",
        version=version,
    ).as_dict()
    if experiment["operation"] not in REPLAYABLE:
        raise ValidationFailed(f"Invalid operation {experiment['operation']!r}.", param="operation")
    check_content(experiment)
    return experiment


def _matrix_experiment(item: Mapping[str, Any], experiment_id: str, status: str) -> dict[str, Any]:
    """An exported matrix experiment (no span, no request: see migration 0006)."""
    now = now_iso()
    return ExperimentRecord(
        id=experiment_id,
        name=optional_str(item, "name", limit=500) or f"Experiment {experiment_id}",
        description=optional_str(item, "description"),
        original_span_id="",
        original_trace_id="",
        original_request={},
        modified_request={},
        status=status,
        project_id=project_id(item),
        created_at=optional_str(item, "created_at", limit=64) or now,
        updated_at=optional_str(item, "updated_at", limit=64) or now,
        tags=validate_tags(item.get("tags")),
        favorite=validate_bool(item.get("favorite", False), "favorite"),
        version=positive_int(item.get("version", 1), "version"),
        kind="matrix",
    ).as_dict()
