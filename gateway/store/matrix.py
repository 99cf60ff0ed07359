"""Storage of an experiment's variants, inputs and matrix runs (migration 0006), on
SQLite or PostgreSQL: `SqlMatrixStore`, one implementation over `SQLDatabase`.

A matrix run's cells are ``experiment_runs`` rows (one per variant x input x
repetition) carrying ``matrix_run_id``; seed-1 runs leave those columns NULL. Every
write is one transaction (on SQLite the database's one write connection, shared with
the span writer and the experiment store); a write that depends on what it read (a
position, "no run is live") locks the experiment's row first (`row_lock`: PostgreSQL's
transactions run side by side). A cell's start and end are group-committed (several
cells' in one transaction, each write committed when its call returns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import Conflict
from gateway.store.dialect import dialect_for
from gateway.store.experiments import (
    RUN_COLUMNS,
    RUN_JSON,
    SELECT_RUN,
    now_iso,
    row_lock,
    run_from_row,
)
from gateway.store.group_commit import GroupCommit
from gateway.store.sql import IntegrityError, SQLConnection, SQLDatabase, SQLRow, fetch_all

VARIANT_KINDS = ("template", "override")
VARIANT_COLUMNS = (
    "id",
    "experiment_id",
    "name",
    "description",
    "system_prompt",
    "config",
    "kind",
    "position",
    "created_at",
    "updated_at",
)
VARIANT_JSON = frozenset({"config"})
INPUT_COLUMNS = (
    "id",
    "experiment_id",
    "key",
    "content",
    "variables",
    "request",
    "operation",
    "expected_output",
    "metadata",
    "source_span_id",
    "dataset_id",
    "dataset_version",
    "dataset_item_id",
    "position",
    "created_at",
)
INPUT_JSON = frozenset({"variables", "request", "expected_output", "metadata"})
MATRIX_RUN_COLUMNS = (
    "id",
    "experiment_id",
    "status",
    "variant_ids",
    "input_ids",
    "repetitions",
    "concurrency",
    "cells",
    "created_at",
    "updated_at",
)
MATRIX_RUN_JSON = frozenset({"variant_ids", "input_ids"})
# Cells a resume runs again: all but the completed (and those running now).
UNFINISHED = ("pending", "failed", "cancelled", "interrupted")


@dataclass(slots=True)
class VariantRecord:
    id: str
    experiment_id: str
    name: str
    config: dict[str, Any]
    position: int
    created_at: str
    updated_at: str
    kind: str = "template"
    description: str | None = None
    system_prompt: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in VARIANT_COLUMNS}


@dataclass(slots=True)
class InputRecord:
    id: str
    experiment_id: str
    key: str
    position: int
    created_at: str
    content: str | None = None
    variables: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    operation: str | None = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    source_span_id: str | None = None
    dataset_id: str | None = None
    dataset_version: int | None = None
    dataset_item_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in INPUT_COLUMNS}


@dataclass(slots=True)
class MatrixRunRecord:
    id: str
    experiment_id: str
    status: str
    variant_ids: list[str]
    input_ids: list[str]
    repetitions: int
    concurrency: int
    cells: int
    created_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in MATRIX_RUN_COLUMNS}


@dataclass(slots=True)
class Progress:
    run_id: str
    status: str
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    retries: int = 0

    def as_dict(self) -> dict[str, Any]:
        counts = {status: self.counts.get(status, 0) for status in CELL_COUNTED}
        return {
            "run_id": self.run_id,
            "status": self.status,
            "total": self.total,
            "done": counts["completed"],
            **counts,
            "cost_usd": round(self.cost_usd, 12),
            "retries": self.retries,
        }


CELL_COUNTED = ("pending", "running", "completed", "failed", "cancelled", "interrupted")


def _dump(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _values(record: Mapping[str, Any], columns: Sequence[str], json: frozenset[str]) -> list[Any]:
    return [_dump(record.get(c)) if c in json else record.get(c) for c in columns]


def _decode(row: SQLRow, json: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118  (a sqlite3.Row is not iterable by key)
        value = row[key]
        out[key] = orjson.loads(value) if key in json and value is not None else value
    return out


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


class SqlMatrixStore:
    """Variants, inputs, matrix runs and their cells on a `SQLDatabase` of either
    dialect."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        self.dialect = dialect_for(db.dialect)
        # Cells' start and end writes, several per transaction (`gateway.store.group_commit`).
        self.cell_writes = GroupCommit(db)

    # --- variants ------------------------------------------------------------------

    async def list_variants(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"SELECT {', '.join(VARIANT_COLUMNS)} FROM experiment_variants"
            " WHERE experiment_id = ? ORDER BY position, created_at",
            (experiment_id,),
        )
        return [_decode(r, VARIANT_JSON) for r in rows]

    async def insert_variant(self, variant: Mapping[str, Any]) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            await self._lock_experiment(conn, variant["experiment_id"])
            rows = await fetch_all(
                conn,
                "SELECT COALESCE(MAX(position), 0) + 1 FROM experiment_variants"
                " WHERE experiment_id = ?",
                (variant["experiment_id"],),
            )
            stored = {**variant, "position": rows[0][0]}
            try:
                await conn.execute(
                    _insert("experiment_variants", VARIANT_COLUMNS),
                    _values(stored, VARIANT_COLUMNS, VARIANT_JSON),
                )
            except IntegrityError:
                raise Conflict(
                    f"The experiment already has a variant named {variant['name']!r}.",
                    param="name",
                    code="duplicate_variant",
                ) from None
        return stored

    async def update_variant(self, variant: Mapping[str, Any]) -> None:
        columns = [c for c in VARIANT_COLUMNS if c not in ("id", "experiment_id", "created_at")]
        values = dict(
            zip(VARIANT_COLUMNS, _values(variant, VARIANT_COLUMNS, VARIANT_JSON), strict=True)
        )
        async with self.db.transaction() as conn:
            try:
                await conn.execute(
                    f"UPDATE experiment_variants SET {', '.join(f'{c} = ?' for c in columns)}"
                    " WHERE id = ?",
                    (*(values[c] for c in columns), variant["id"]),
                )
            except IntegrityError:
                raise Conflict(
                    f"The experiment already has a variant named {variant['name']!r}.",
                    param="name",
                    code="duplicate_variant",
                ) from None

    async def delete_variant(self, experiment_id: str, variant_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM experiment_variants WHERE id = ? AND experiment_id = ?",
                (variant_id, experiment_id),
            )
            return bool(cursor.rowcount)

    # --- inputs --------------------------------------------------------------------

    async def list_inputs(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"SELECT {', '.join(INPUT_COLUMNS)} FROM experiment_inputs"
            " WHERE experiment_id = ? ORDER BY position",
            (experiment_id,),
        )
        return [_decode(r, INPUT_JSON) for r in rows]

    async def insert_inputs(
        self, experiment_id: str, inputs: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """All or nothing: a key already used fails the whole batch."""
        stored: list[dict[str, Any]] = []
        async with self.db.transaction() as conn:
            await self._lock_experiment(conn, experiment_id)
            rows = await fetch_all(
                conn,
                "SELECT COALESCE(MAX(position), 0) FROM experiment_inputs WHERE experiment_id = ?",
                (experiment_id,),
            )
            position = int(rows[0][0])
            for item in inputs:
                position += 1
                row = {**item, "position": position}
                try:
                    await conn.execute(
                        _insert("experiment_inputs", INPUT_COLUMNS),
                        _values(row, INPUT_COLUMNS, INPUT_JSON),
                    )
                except IntegrityError:
                    raise Conflict(
                        f"The experiment already has an input with key {item['key']!r};"
                        " nothing was added.",
                        param="key",
                        code="duplicate_input",
                    ) from None
                stored.append(row)
        return stored

    async def delete_input(self, experiment_id: str, input_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM experiment_inputs WHERE id = ? AND experiment_id = ?",
                (input_id, experiment_id),
            )
            return bool(cursor.rowcount)

    async def insert_setup(
        self, variants: Sequence[Mapping[str, Any]], inputs: Sequence[Mapping[str, Any]]
    ) -> None:
        """Variants and inputs as given (positions kept), in one transaction: a
        duplicated experiment's copies, all or none."""
        async with self.db.transaction() as conn:
            for variant in variants:
                await conn.execute(
                    _insert("experiment_variants", VARIANT_COLUMNS),
                    _values(variant, VARIANT_COLUMNS, VARIANT_JSON),
                )
            for item in inputs:
                await conn.execute(
                    _insert("experiment_inputs", INPUT_COLUMNS),
                    _values(item, INPUT_COLUMNS, INPUT_JSON),
                )

    # --- matrix runs and cells -------------------------------------------------------

    async def create_run(self, run: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> None:
        """The run and all its cells (pending), in one transaction."""
        async with self.db.transaction() as conn:
            await self._refuse_live(conn, run["experiment_id"])
            await conn.execute(
                _insert("experiment_matrix_runs", MATRIX_RUN_COLUMNS),
                _values(run, MATRIX_RUN_COLUMNS, MATRIX_RUN_JSON),
            )
            await conn.executemany(
                _insert("experiment_runs", RUN_COLUMNS),
                [_values(cell, RUN_COLUMNS, RUN_JSON) for cell in cells],
            )

    async def resume_run(
        self,
        run_id: str,
        experiment_id: str,
        reset: Sequence[Mapping[str, Any]],
        missing: Sequence[Mapping[str, Any]],
    ) -> None:
        """Unfinished cells back to pending (their new request and config), the missing
        ones added, the run running again: one transaction."""
        async with self.db.transaction() as conn:
            await self._refuse_live(conn, experiment_id)
            for cell in reset:
                await conn.execute(
                    "UPDATE experiment_runs SET status = 'pending', request = ?, config = ?,"
                    " error = NULL, ended_at = NULL WHERE id = ? AND status IN"
                    f" ({', '.join(repr(s) for s in UNFINISHED)})",
                    (_dump(cell["request"]), _dump(cell["config"]), cell["id"]),
                )
            await conn.executemany(
                _insert("experiment_runs", RUN_COLUMNS),
                [_values(cell, RUN_COLUMNS, RUN_JSON) for cell in missing],
            )
            await conn.execute(
                # Not shared and no cancel until it starts (gateway.store.cell_claims).
                "UPDATE experiment_matrix_runs SET status = 'running', updated_at = ?,"
                " cells = (SELECT COUNT(*) FROM experiment_runs WHERE matrix_run_id = ?),"
                " shared = 0, cancel_requested = 0 WHERE id = ?",
                (now_iso(), run_id, run_id),
            )

    async def _lock_experiment(self, conn: SQLConnection, experiment_id: str) -> None:
        """Hold the experiment's row until the transaction ends: its writes that depend
        on what they read (a position, no live run) go one at a time, across processes
        too on PostgreSQL. On SQLite the write transaction holds the database already."""
        if self.dialect.postgres:
            await fetch_all(
                conn,
                "SELECT 1 FROM experiments WHERE id = ?" + row_lock(self.dialect),
                (experiment_id,),
            )

    async def _refuse_live(self, conn: SQLConnection, experiment_id: str) -> None:
        await self._lock_experiment(conn, experiment_id)
        live = await fetch_all(
            conn,
            "SELECT id FROM experiment_matrix_runs WHERE experiment_id = ? AND status = 'running'",
            (experiment_id,),
        )
        if live:
            raise Conflict(
                f"Experiment {experiment_id!r} is running (run {live[0][0]}): wait for it,"
                " or cancel it (POST /experiments/{id}/cancel).",
                code="experiment_running",
            )

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = await self.db.fetch(
            f"SELECT {', '.join(MATRIX_RUN_COLUMNS)} FROM experiment_matrix_runs WHERE id = ?",
            (run_id,),
        )
        return _decode(rows[0], MATRIX_RUN_JSON) if rows else None

    async def list_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"SELECT {', '.join(MATRIX_RUN_COLUMNS)} FROM experiment_matrix_runs"
            " WHERE experiment_id = ? ORDER BY created_at DESC, id DESC",
            (experiment_id,),
        )
        return [_decode(r, MATRIX_RUN_JSON) for r in rows]

    async def cells(self, run_id: str) -> list[dict[str, Any]]:
        """A run's cells in its grid's order (the order they are made in): variant by
        variant as the run lists them, then input by input, then repetition. Sorted
        here, not by an insertion rowid, which PostgreSQL has not."""
        run = await self.get_run(run_id)
        rows = await self.db.fetch(SELECT_RUN + " WHERE matrix_run_id = ?", (run_id,))
        cells = [run_from_row(r) for r in rows]
        variants = {v: n for n, v in enumerate(run["variant_ids"] if run else ())}
        inputs = {i: n for n, i in enumerate(run["input_ids"] if run else ())}
        cells.sort(
            key=lambda c: (
                variants.get(c["variant_id"], len(variants)),
                inputs.get(c["input_id"], len(inputs)),
                c["repetition"] or 0,
                c["id"],
            )
        )
        return cells

    async def start_cell(self, cell_id: str) -> None:
        await self.cell_writes.write(
            "UPDATE experiment_runs SET status = 'running', started_at = ? WHERE id = ?",
            (now_iso(), cell_id),
        )

    async def finish_cell(self, cell: Mapping[str, Any]) -> None:
        names = (
            "status",
            "request",
            "result_span_id",
            "result_trace_id",
            "output_text",
            "error",
            "ended_at",
            "duration_ms",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "ttft_ms",
            "retries",
            "tool_calls",
            "lease_until",  # None: a claim's lease ends with its cell (cell_claims)
        )
        values = [_dump(cell.get(n)) if n in RUN_JSON else cell.get(n) for n in names]
        # Only by the process that claimed it (gateway.store.cell_claims): one that
        # stalled past its lease, its cell run again elsewhere, writes nothing over it.
        await self.cell_writes.write(
            f"UPDATE experiment_runs SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
            " AND COALESCE(claimed_by, '') = COALESCE(?, '')",
            (*values, cell["id"], cell.get("claimed_by")),
        )

    async def end_run(self, run_id: str, status: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE experiment_matrix_runs SET status = ?, updated_at = ? WHERE id = ?",
                (status, now_iso(), run_id),
            )

    async def progress(self, run: Mapping[str, Any]) -> Progress:
        rows = await self.db.fetch(
            "SELECT status, COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(retries), 0)"
            " FROM experiment_runs WHERE matrix_run_id = ? GROUP BY status",
            (run["id"],),
        )
        progress = Progress(run["id"], run["status"], 0)
        for status, count, cost, retries in rows:
            progress.counts[status] = count
            progress.total += count
            progress.cost_usd += cost
            progress.retries += retries
        return progress

    async def interrupt_running(self) -> int:
        """At startup: cells a stopped gateway left running become interrupted, and
        its running matrix runs too (a resume finishes them)."""
        error = _dump(
            {
                "type": "interrupted",
                "code": "run_interrupted",
                "message": "The gateway stopped before this cell finished.",
            }
        )
        stamp = now_iso()
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE experiment_runs SET status = 'interrupted', error = ?, ended_at = ?"
                " WHERE matrix_run_id IS NOT NULL AND status = 'running'",
                (error, stamp),
            )
            await conn.execute(
                "UPDATE experiment_matrix_runs SET status = 'interrupted', updated_at = ?"
                " WHERE status = 'running'",
                (stamp,),
            )
            return int(cursor.rowcount)
