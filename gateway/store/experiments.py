"""Storage of experiments, their runs and their version history, on SQLite or PostgreSQL.

`ExperimentStore` is the interface; `SqlExperimentStore` is the one implementation,
its statements written once for both dialects (`gateway.store.sql`), on any
`SQLDatabase`: SQLite's (reads on its reader connection, writes in its one write
transaction, so an experiment write never lands inside the span writer's batch
transaction or the other way round) or PostgreSQL's (a pool: transactions run side by
side, so a read-then-write locks the row it read, `row_lock`). Values go in and come
out as the API presents them: JSON columns decoded, ``favorite`` a bool, ``tags`` a
list.

Each write that changes an experiment is one transaction that also appends its
history entry (the experiment's state after the change), so the history can never
disagree with the row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from gateway.errors import Conflict, NotFound
from gateway.store.dialect import Dialect, dialect_for
from gateway.store.pagination import Page, SortKey, keyset_page
from gateway.store.sql import IntegrityError, SQLConnection, SQLDatabase, SQLRow, fetch_all
from gateway.store.sqlwhere import Where

EXPERIMENT_STATUSES = ("draft", "running", "completed", "failed")
RUN_STATUSES = ("running", "completed", "failed")
# A matrix cell's statuses: the seed-1 run's, and pending (not started), cancelled
# (stopped by a cancel) and interrupted (the gateway stopped while it ran).
CELL_STATUSES = ("pending", "running", "completed", "failed", "cancelled", "interrupted")
# A seed-1 experiment (a captured call replayed) and one created without a span.
EXPERIMENT_KINDS = ("replay", "matrix")

# The seed's columns, in its order, then Spanlab's additions.
EXPERIMENT_COLUMNS = (
    "id",
    "name",
    "description",
    "original_span_id",
    "original_trace_id",
    "original_request",
    "modified_request",
    "headers",
    "prompt_variables",
    "model_parameters",
    "result_span_id",
    "result_trace_id",
    "status",
    "project_id",
    "created_at",
    "updated_at",
    "tags",
    "favorite",
    "error",
    "operation",
    "version",
    "kind",
)
# Newest first; a NULL created_at (imported rows may lack one) sorts as "".
EXPERIMENT_ORDER = (
    SortKey("COALESCE(created_at, '')", "created_at", "", kind=str),
    SortKey("id", "id", kind=str),
)
EXPERIMENT_JSON = frozenset(
    {
        "original_request",
        "modified_request",
        "headers",
        "prompt_variables",
        "model_parameters",
        "tags",
        "error",
    }
)
# What a history entry's snapshot holds: the state an edit or a run can change.
SNAPSHOT_FIELDS = tuple(
    c
    for c in EXPERIMENT_COLUMNS
    if c not in ("id", "created_at", "updated_at", "version", "operation", "kind")
)
RUN_COLUMNS = (
    "id",
    "experiment_id",
    "status",
    "request",
    "headers",
    "stream",
    "result_span_id",
    "result_trace_id",
    "output_text",
    "error",
    "started_at",
    "ended_at",
    "duration_ms",
    # A matrix cell's (NULL for a seed-1 run; see migration 0006).
    "matrix_run_id",
    "variant_id",
    "input_id",
    "repetition",
    "config",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "ttft_ms",
    "retries",
    "tool_calls",  # the tool calls a cell was answered with (migration 0009)
)
RUN_JSON = frozenset({"request", "headers", "error", "config", "tool_calls"})
HISTORY_COLUMNS = ("experiment_id", "version", "action", "at", "changes", "run_id", "snapshot")
HISTORY_JSON = frozenset({"changes", "snapshot"})

OnConflict = Literal["error", "skip"]


@dataclass(slots=True)
class ExperimentRecord:
    """An experiment, every column typed: the one constructor of a new experiment's
    values, shared by create, import and duplicate (`as_dict` is the stored and
    presented shape, in `EXPERIMENT_COLUMNS` order)."""

    id: str
    name: str
    original_span_id: str
    original_trace_id: str
    original_request: dict[str, Any]
    modified_request: dict[str, Any]
    created_at: str
    updated_at: str
    description: str | None = None
    headers: dict[str, str] | None = None
    prompt_variables: dict[str, Any] | None = None
    model_parameters: dict[str, Any] | None = None
    result_span_id: str | None = None
    result_trace_id: str | None = None
    status: str = "draft"
    project_id: str | None = None
    tags: list[str] = field(default_factory=list)
    favorite: bool = False
    error: dict[str, Any] | None = None
    operation: str = "chat"
    version: int = 1
    kind: str = "replay"

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ExperimentRecord:
        """A stored experiment (`as_dict`'s shape) as a record."""
        return cls(**{column: values[column] for column in EXPERIMENT_COLUMNS})

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in EXPERIMENT_COLUMNS}


@dataclass(slots=True)
class RunRecord:
    """A run of an experiment, every column typed: the one constructor of a run's
    values, shared by a run's start and an import."""

    id: str
    experiment_id: str
    status: str
    request: dict[str, Any]
    started_at: str
    headers: dict[str, str] | None = None
    stream: bool = False
    result_span_id: str | None = None
    result_trace_id: str | None = None
    output_text: str | None = None
    error: dict[str, Any] | None = None
    ended_at: str | None = None
    duration_ms: float | None = None
    matrix_run_id: str | None = None
    variant_id: str | None = None
    input_id: str | None = None
    repetition: int | None = None
    config: dict[str, Any] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    ttft_ms: float | None = None
    retries: int = 0
    tool_calls: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in RUN_COLUMNS}


@dataclass(slots=True)
class HistoryEntry:
    """One version of an experiment as its history keeps it (the experiment's id is
    the history's owner, given when it is stored)."""

    version: int
    action: str
    at: str
    snapshot: dict[str, Any]
    changes: dict[str, Any] | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "action": self.action,
            "at": self.at,
            "changes": self.changes,
            "run_id": self.run_id,
            "snapshot": self.snapshot,
        }


def now_iso() -> str:
    """Now as ISO 8601 UTC with microseconds: fixed width, so it sorts as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_lock(dialect: Dialect) -> str:
    """The end of a SELECT whose rows a transaction reads to write them back: on
    PostgreSQL ``FOR UPDATE`` (transactions run side by side there: a second one waits
    for the first to commit, then reads what it wrote); nothing on SQLite, where the
    one write transaction at a time already serializes them."""
    return " FOR UPDATE" if dialect.postgres else ""


def tagged(dialect: Dialect) -> str:
    """The condition "the JSON list in ``experiments.tags`` holds the parameter"."""
    if dialect.postgres:
        return (
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(experiments.tags::jsonb) AS t(value)"
            " WHERE t.value = ?)"
        )
    return "EXISTS (SELECT 1 FROM json_each(experiments.tags) WHERE value = ?)"


@dataclass(frozen=True, slots=True)
class ExperimentFilter:
    project: str | None = None
    status: str | None = None
    tag: str | None = None
    favorite: bool | None = None
    text: str | None = None
    span: str | None = None

    def where(self, dialect: Dialect) -> tuple[str, list[Any]]:
        where = Where(dialect.like_nocase)
        where.project("project_id", self.project)
        where.equals("status", self.status)
        where.equals("original_span_id", self.span)
        if self.tag is not None:
            where.add(tagged(dialect), self.tag)
        if self.favorite is not None:
            where.add("favorite = ?", int(self.favorite))
        where.contains_text(("name", "description", "modified_request", "tags", "id"), self.text)
        return where.sql()


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _row_dict(row: SQLRow, json_columns: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118  (a sqlite3.Row is not iterable by key)
        value = row[key]
        if key in json_columns and value is not None:
            value = orjson.loads(value)
        out[key] = value
    return out


def experiment_from_row(row: SQLRow) -> dict[str, Any]:
    out = _row_dict(row, EXPERIMENT_JSON)
    out["favorite"] = bool(out["favorite"])
    out["tags"] = out["tags"] or []
    return out


def run_from_row(row: SQLRow) -> dict[str, Any]:
    out = _row_dict(row, RUN_JSON)
    out["stream"] = bool(out["stream"])
    return out


def snapshot_of(experiment: Mapping[str, Any]) -> dict[str, Any]:
    return {field: experiment.get(field) for field in SNAPSHOT_FIELDS}


def _row_values(
    record: Mapping[str, Any],
    columns: Sequence[str],
    json_columns: Collection[str],
    flag_column: str,
) -> tuple[Any, ...]:
    """``record`` as a row: JSON columns encoded, the boolean column as 0/1."""
    values = []
    for column in columns:
        value = record.get(column)
        if column in json_columns:
            value = _dump(value)
        elif column == flag_column:
            value = int(bool(value))
        values.append(value)
    return tuple(values)


def _experiment_values(experiment: Mapping[str, Any]) -> tuple[Any, ...]:
    return _row_values(experiment, EXPERIMENT_COLUMNS, EXPERIMENT_JSON, "favorite")


def _run_values(run: Mapping[str, Any]) -> tuple[Any, ...]:
    # A run recorded before migration 0006's columns (an import, a seed-1 run) has none.
    return _row_values({**run, "retries": run.get("retries") or 0}, RUN_COLUMNS, RUN_JSON, "stream")


_SELECT_EXPERIMENT = f"SELECT {', '.join(EXPERIMENT_COLUMNS)} FROM experiments"
_INSERT_EXPERIMENT = (
    f"INSERT INTO experiments ({', '.join(EXPERIMENT_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in EXPERIMENT_COLUMNS)})"
)
_INSERT_RUN = (
    f"INSERT INTO experiment_runs ({', '.join(RUN_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in RUN_COLUMNS)})"
)
_INSERT_HISTORY = (
    f"INSERT INTO experiment_history ({', '.join(HISTORY_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in HISTORY_COLUMNS)})"
)
SELECT_RUN = f"SELECT {', '.join(RUN_COLUMNS)} FROM experiment_runs"
_SELECT_HISTORY = f"SELECT {', '.join(HISTORY_COLUMNS)} FROM experiment_history"


# A project's row, the first time something names it (an existing one is left as it is).
INSERT_PROJECT = (
    "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING"
)

# The newest run per experiment (same order as `list_experiment_runs`), joined to its
# result span and the experiment's original span: the experiment_runs index serves the
# inner lookup, the spans primary key the joins.
_LATEST_RUNS = """
SELECT r.experiment_id, r.id, r.status, r.stream, r.started_at, r.ended_at,
       r.result_span_id, r.error,
       rs.duration_ms AS result_latency_ms, rs.cost_usd AS result_cost_usd,
       rs.total_tokens AS result_total_tokens,
       os.duration_ms AS original_latency_ms, os.cost_usd AS original_cost_usd,
       os.total_tokens AS original_total_tokens
FROM experiment_runs r
JOIN experiments e ON e.id = r.experiment_id
LEFT JOIN spans rs ON rs.span_id = r.result_span_id
LEFT JOIN spans os ON os.span_id = e.original_span_id
WHERE r.experiment_id IN ({marks})
  AND r.id = (
    SELECT r2.id FROM experiment_runs r2 WHERE r2.experiment_id = r.experiment_id
    ORDER BY r2.started_at DESC, r2.id DESC LIMIT 1
  )
"""
LATEST_RUN_METRICS = ("latency_ms", "cost_usd", "total_tokens")


def latest_run_from_row(row: SQLRow) -> dict[str, Any]:
    """A `GET /experiments` item's ``latest_run``: the run, and per metric the
    original's value, the result's and the delta (None when a side is unknown)."""
    out: dict[str, Any] = {
        "id": row["id"],
        "status": row["status"],
        "stream": bool(row["stream"]),
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "result_span_id": row["result_span_id"],
        "error": orjson.loads(row["error"]) if row["error"] is not None else None,
    }
    for name in LATEST_RUN_METRICS:
        original, result = row[f"original_{name}"], row[f"result_{name}"]
        delta = None
        if original is not None and result is not None:
            delta = result - original
            if isinstance(delta, float):
                delta = round(delta, 12)  # no 1e-17 noise from float subtraction
        out[name] = {"original": original, "result": result, "delta": delta}
    return out


class ExperimentStore(ABC):
    """What the gateway needs of stored experiments, their runs and history."""

    @abstractmethod
    async def get_experiment(self, experiment_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def list_experiments(
        self, filters: ExperimentFilter, *, limit: int, cursor: str | None = None
    ) -> Page: ...

    @abstractmethod
    async def insert_experiment(
        self,
        experiment: Mapping[str, Any],
        *,
        action: str = "created",
        changes: Mapping[str, Any] | None = None,
    ) -> None: ...

    @abstractmethod
    async def import_experiments(
        self,
        bundles: Sequence[
            tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]
        ],
        *,
        on_conflict: OnConflict = "error",
    ) -> list[str]: ...

    @abstractmethod
    async def update_experiment(
        self,
        experiment_id: str,
        values: Mapping[str, Any],
        *,
        expected_version: int,
        changes: Mapping[str, Any],
    ) -> dict[str, Any]: ...

    @abstractmethod
    async def delete_experiment(self, experiment_id: str) -> bool: ...

    @abstractmethod
    async def start_experiment_run(
        self, run: Mapping[str, Any], *, stale_before: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    async def finish_experiment_run(self, run: Mapping[str, Any]) -> dict[str, Any] | None: ...

    @abstractmethod
    async def fail_stale_experiment_runs(self, stale_before: str) -> int: ...

    @abstractmethod
    async def list_experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def get_experiment_run(self, run_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def experiment_history(self, experiment_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def latest_runs(self, experiment_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


class SqlExperimentStore(ExperimentStore):
    """Experiments on a `SQLDatabase` of either dialect: reads with its ``fetch``,
    writes in its ``transaction()`` (on SQLite the one write transaction, shared with
    the span store)."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        self.dialect = dialect_for(db.dialect)

    # --- reading -------------------------------------------------------------------

    async def get_experiment(self, experiment_id: str) -> dict[str, Any] | None:
        rows = await self.db.fetch(_SELECT_EXPERIMENT + " WHERE id = ?", (experiment_id,))
        return experiment_from_row(rows[0]) if rows else None

    async def list_experiments(
        self, filters: ExperimentFilter, *, limit: int, cursor: str | None = None
    ) -> Page:
        where, params = filters.where(self.dialect)
        return await keyset_page(
            self.db.fetch,
            _SELECT_EXPERIMENT,
            where,
            params,
            EXPERIMENT_ORDER,
            limit=limit,
            cursor=cursor,
            convert=experiment_from_row,
        )

    async def list_experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            SELECT_RUN + " WHERE experiment_id = ? ORDER BY started_at DESC, id DESC",
            (experiment_id,),
        )
        return [run_from_row(r) for r in rows]

    async def get_experiment_run(self, run_id: str) -> dict[str, Any] | None:
        rows = await self.db.fetch(SELECT_RUN + " WHERE id = ?", (run_id,))
        return run_from_row(rows[0]) if rows else None

    async def experiment_history(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            _SELECT_HISTORY + " WHERE experiment_id = ? ORDER BY version DESC", (experiment_id,)
        )
        return [_row_dict(r, HISTORY_JSON) for r in rows]

    async def latest_runs(self, experiment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The latest run of each experiment, summarised with its result span's and the
        original span's latency, cost and tokens: one query for a whole page of
        experiments (the list shows it per row; a query per row would be N+1)."""
        if not experiment_ids:
            return {}
        marks = ", ".join("?" for _ in experiment_ids)
        rows = await self.db.fetch(_LATEST_RUNS.format(marks=marks), tuple(experiment_ids))
        return {row["experiment_id"]: latest_run_from_row(row) for row in rows}

    # --- writing -------------------------------------------------------------------

    async def insert_experiment(
        self,
        experiment: Mapping[str, Any],
        *,
        action: str = "created",
        changes: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a new experiment (its project row too, if new) and history entry 1."""
        async with self.db.transaction() as conn:
            await self._ensure_project(conn, experiment.get("project_id"))
            try:
                await conn.execute(_INSERT_EXPERIMENT, _experiment_values(experiment))
            except IntegrityError:
                raise Conflict(
                    f"An experiment with id {experiment['id']!r} already exists.", param="id"
                ) from None
            await conn.execute(
                _INSERT_HISTORY,
                (
                    experiment["id"],
                    experiment.get("version", 1),
                    action,
                    experiment.get("created_at") or now_iso(),
                    _dump(changes),
                    None,
                    _dump(snapshot_of(experiment)),
                ),
            )

    async def import_experiments(
        self,
        bundles: Sequence[
            tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]
        ],
        *,
        on_conflict: OnConflict = "error",
    ) -> list[str]:
        """Store (experiment, runs, history) bundles verbatim, all or nothing.

        An id already present fails the whole import (``error``) or leaves that one
        experiment out (``skip``). Returns the ids stored."""
        stored: list[str] = []
        async with self.db.transaction() as conn:
            for experiment, runs, history in bundles:
                rows = await fetch_all(
                    conn, "SELECT 1 FROM experiments WHERE id = ?", (experiment["id"],)
                )
                if rows:
                    if on_conflict == "skip":
                        continue
                    raise Conflict(
                        f"An experiment with id {experiment['id']!r} already exists; nothing"
                        " was imported (import with on_conflict=skip or on_conflict=copy).",
                        param="id",
                    )
                await self._ensure_project(conn, experiment.get("project_id"))
                await conn.execute(_INSERT_EXPERIMENT, _experiment_values(experiment))
                for run in runs:
                    try:
                        await conn.execute(_INSERT_RUN, _run_values(run))
                    except IntegrityError:
                        raise Conflict(
                            f"A run with id {run['id']!r} already exists; nothing was imported"
                            " (import with on_conflict=copy).",
                            param="id",
                        ) from None
                for entry in history:
                    await conn.execute(
                        _INSERT_HISTORY,
                        (
                            experiment["id"],
                            entry["version"],
                            entry["action"],
                            entry["at"],
                            _dump(entry.get("changes")),
                            entry.get("run_id"),
                            _dump(entry["snapshot"]),
                        ),
                    )
                stored.append(experiment["id"])
        return stored

    async def update_experiment(
        self,
        experiment_id: str,
        values: Mapping[str, Any],
        *,
        expected_version: int,
        changes: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Apply ``values`` if the experiment is still at ``expected_version``.

        Raises `NotFound` (deleted meanwhile) or `Conflict` (changed meanwhile)."""
        async with self.db.transaction() as conn:
            current = await self._locked_experiment(conn, experiment_id)
            if current["version"] != expected_version:
                raise Conflict(
                    f"Experiment {experiment_id!r} changed meanwhile (now version"
                    f" {current['version']}, expected {expected_version}); reload and retry.",
                    param="version",
                )
            updated = {**current, **values, "version": expected_version + 1}
            await self._ensure_project(conn, updated.get("project_id"))
            await self._write_experiment(conn, updated)
            await self._append_history(conn, updated, "updated", changes=changes)
        return updated

    async def delete_experiment(self, experiment_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))
            return bool(cursor.rowcount)

    async def start_experiment_run(
        self, run: Mapping[str, Any], *, stale_before: str
    ) -> dict[str, Any]:
        """Record a run as started and the experiment as running, in one step.

        A run still marked running that started before ``stale_before`` belongs to a
        gateway that stopped mid-run: it is marked failed first. A live one is a
        `Conflict`. Returns the experiment as it now is."""
        experiment_id = run["experiment_id"]
        async with self.db.transaction() as conn:
            current = await self._locked_experiment(conn, experiment_id)
            await self._fail_stale_runs(conn, stale_before, experiment_id)
            live = await fetch_all(
                conn,
                "SELECT id FROM experiment_runs WHERE experiment_id = ? AND status = 'running'",
                (experiment_id,),
            )
            if live:
                raise Conflict(
                    f"Experiment {experiment_id!r} is already running (run {live[0][0]});"
                    " wait for it to finish.",
                    code="experiment_running",
                )
            updated = {
                **current,
                "status": "running",
                "error": None,
                "updated_at": run["started_at"],
            }
            await self._write_experiment(conn, updated)
            await conn.execute(_INSERT_RUN, _run_values(run))
        return updated

    async def finish_experiment_run(self, run: Mapping[str, Any]) -> dict[str, Any] | None:
        """Record how a run ended; the experiment takes its status, result and error.

        Returns the experiment, or None when it was deleted during the run."""
        async with self.db.transaction() as conn:
            # The experiment's row first, then its run's, in the order a delete of the
            # experiment takes them (its cascade): two transactions on PostgreSQL that
            # lock them in opposite orders could deadlock.
            rows = await fetch_all(
                conn,
                _SELECT_EXPERIMENT + " WHERE id = ?" + row_lock(self.dialect),
                (run["experiment_id"],),
            )
            await conn.execute(
                "UPDATE experiment_runs SET status = ?, result_span_id = ?, result_trace_id = ?,"
                " output_text = ?, error = ?, ended_at = ?, duration_ms = ? WHERE id = ?",
                (
                    run["status"],
                    run.get("result_span_id"),
                    run.get("result_trace_id"),
                    run.get("output_text"),
                    _dump(run.get("error")),
                    run.get("ended_at"),
                    run.get("duration_ms"),
                    run["id"],
                ),
            )
            if not rows:
                return None
            current = experiment_from_row(rows[0])
            updated = {
                **current,
                "status": run["status"],
                "error": run.get("error"),
                "updated_at": run.get("ended_at") or now_iso(),
                "version": current["version"] + 1,
            }
            if run.get("result_span_id"):
                updated["result_span_id"] = run["result_span_id"]
                updated["result_trace_id"] = run.get("result_trace_id")
            await self._write_experiment(conn, updated)
            await self._append_history(
                conn,
                updated,
                "run",
                changes={"status": {"from": "running", "to": run["status"]}},
                run_id=run["id"],
            )
        return updated

    async def fail_stale_experiment_runs(self, stale_before: str) -> int:
        """Mark failed every run left running by a gateway that stopped mid-run."""
        async with self.db.transaction() as conn:
            return await self._fail_stale_runs(conn, stale_before, None)

    # --- helpers (inside a transaction) ----------------------------------------------

    async def _locked_experiment(self, conn: SQLConnection, experiment_id: str) -> dict[str, Any]:
        rows = await fetch_all(
            conn, _SELECT_EXPERIMENT + " WHERE id = ?" + row_lock(self.dialect), (experiment_id,)
        )
        if not rows:
            raise NotFound(f"No experiment with id {experiment_id!r}.", param="id")
        return experiment_from_row(rows[0])

    async def _write_experiment(self, conn: SQLConnection, experiment: Mapping[str, Any]) -> None:
        columns = [c for c in EXPERIMENT_COLUMNS if c != "id"]
        values = dict(zip(EXPERIMENT_COLUMNS, _experiment_values(experiment), strict=True))
        await conn.execute(
            f"UPDATE experiments SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            (*(values[c] for c in columns), experiment["id"]),
        )

    async def _append_history(
        self,
        conn: SQLConnection,
        experiment: Mapping[str, Any],
        action: str,
        *,
        changes: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        await conn.execute(
            _INSERT_HISTORY,
            (
                experiment["id"],
                experiment["version"],
                action,
                experiment.get("updated_at") or now_iso(),
                _dump(changes),
                run_id,
                _dump(snapshot_of(experiment)),
            ),
        )

    async def _fail_stale_runs(
        self, conn: SQLConnection, stale_before: str, experiment_id: str | None
    ) -> int:
        # Matrix cells are not seed-1 runs: `SqlMatrixStore.interrupt_running` ends them.
        where = "status = 'running' AND started_at < ? AND matrix_run_id IS NULL"
        params: list[Any] = [stale_before]
        if experiment_id is not None:
            where += " AND experiment_id = ?"
            params.append(experiment_id)
        stale = await fetch_all(
            conn, f"SELECT id, experiment_id FROM experiment_runs WHERE {where}", params
        )
        if not stale:
            return 0
        error = _dump(
            {
                "type": "interrupted",
                "code": "run_interrupted",
                "message": "The gateway stopped before this run finished.",
            }
        )
        stamp = now_iso()
        for run_id, owner in stale:
            await conn.execute(
                "UPDATE experiment_runs SET status = 'failed', error = ?, ended_at = ?"
                " WHERE id = ?",
                (error, stamp, run_id),
            )
            await conn.execute(
                "UPDATE experiments SET status = 'failed', error = ?, updated_at = ?"
                " WHERE id = ? AND status = 'running'",
                (error, stamp, owner),
            )
        return len(stale)

    async def _ensure_project(self, conn: SQLConnection, project_id: Any) -> None:
        if project_id:
            await conn.execute(INSERT_PROJECT, (project_id, project_id, now_iso()))
