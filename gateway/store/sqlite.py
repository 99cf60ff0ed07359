"""The store: one interface for spans and experiments, SQLite behind it.

`Store` is the interface the rest of the gateway uses; `SQLiteStore` implements it
with two aiosqlite connections: one writer (management writes, and spans when the
span writer runs in the gateway's process) and one reader. On a database file the
spans are stored by the writer process (`gateway.writer.process`) on its own
connection; SQLite serializes its transactions with this connection's (WAL,
``BEGIN IMMEDIATE``, a 5 s busy timeout on both sides). A PostgreSQL store can
implement the same interface.

Migrations are numbered SQL files (``0001_spans.sql``...) shipped inside the package;
each is applied once, in order, in its own transaction, and recorded in
``schema_migrations``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import anyio
import orjson

from gateway.capture.span_table import (
    JSON_COLUMNS,
    SELECT_IDENTITY,
    SPAN_COLUMNS,
    SUMMARY_COLUMNS,
    Renamed,
    insert_rows,
    insert_sql,
    renamed_row,
    same_span,
    span_rows,
)
from gateway.errors import InvalidRequest
from gateway.store.experiments import ExperimentFilter, SQLiteExperimentStore
from gateway.store.pagination import Page, SortKey, keyset_page
from gateway.store.sqlwhere import Where

logger = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

SPAN_ORDER = (SortKey("start_us", "start_us"), SortKey("span_id", "span_id"))
STATS_GROUPS = {
    "model": "COALESCE(request_model, response_model)",
    "provider": "provider",
    "thread": "thread_id",
    "status": "status",
    "hour": "strftime('%Y-%m-%dT%H:00:00Z', start_us / 1000000, 'unixepoch')",
    "day": "strftime('%Y-%m-%d', start_us / 1000000, 'unixepoch')",
}


def migrations_source() -> Traversable:
    """The migrations folder: inside the installed package, or the source tree's."""
    packaged = resources.files("gateway").joinpath("migrations")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def available_migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in migrations_source().iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class SpanFilter:
    project: str | None = None
    thread: str | None = None
    run: str | None = None
    trace: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    label: str | None = None
    operation: str | None = None
    text: str | None = None
    since_us: int | None = None
    until_us: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        where = Where()
        where.equals("project_id", self.project)
        where.equals("thread_id", self.thread)
        where.equals("run_id", self.run)
        where.equals("trace_id", self.trace)
        where.equals("provider", self.provider)
        where.equals("status", self.status)
        where.equals("label", self.label)
        where.equals("operation", self.operation)
        if self.model is not None:
            where.add("(request_model = ? OR response_model = ?)", self.model, self.model)
        where.contains_text(("input_preview", "output_text", "request", "response"), self.text)
        if self.since_us is not None:
            where.add("start_us >= ?", self.since_us)
        if self.until_us is not None:
            where.add("start_us < ?", self.until_us)
        return where.sql()


def iso_from_us(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


class Store(ABC):
    """What the gateway needs from a database."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""

    @abstractmethod
    async def insert_spans(
        self, records: Sequence[Mapping[str, Any]]
    ) -> Mapping[int, Mapping[str, Any]] | None:
        """Store the records; a record whose span id another span holds already is
        stored under a new id (returned, by index). A record already stored (the same
        span, sent again) is left as it is."""

    @abstractmethod
    async def get_span(self, span_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def list_spans(
        self, filters: SpanFilter, *, limit: int, cursor: str | None = None
    ) -> Page: ...

    @abstractmethod
    async def get_trace(self, trace_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def list_threads(
        self, *, project: str | None, limit: int, offset: int = 0
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def stats(self, group_by: str, filters: SpanFilter) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the database does not answer."""

    @abstractmethod
    async def count_spans(self, filters: SpanFilter | None = None) -> int: ...

    @abstractmethod
    async def delete_spans_before(self, before_us: int) -> int:
        """Delete spans that started before ``before_us``; return how many."""

    # --- experiments (see gateway/store/experiments.py) ------------------------------

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
        on_conflict: Literal["error", "skip"] = "error",
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


def _ensure_parent(path: str) -> None:
    Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


class SQLiteStore(SQLiteExperimentStore, Store):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # Every write transaction holds this: the writer connection is shared by the
        # span writer and management writes, and two interleaved BEGINs would merge.
        self._write_lock = asyncio.Lock()

    # --- connections ---------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    async def open(self) -> None:
        if self.path != ":memory:":
            await asyncio.to_thread(_ensure_parent, self.path)
        self._writer = await self._connect()
        mode = await (await self._writer.execute("PRAGMA journal_mode = WAL")).fetchone()
        if mode is not None and mode[0] != "wal" and self.path != ":memory:":
            logger.warning("SQLite refused WAL mode (got %s); concurrent reads may wait", mode[0])
        await self.migrate()
        self._reader = await self._connect() if self.path != ":memory:" else self._writer

    async def close(self) -> None:
        for conn in {id(c): c for c in (self._reader, self._writer) if c is not None}.values():
            await conn.close()
        self._reader = self._writer = None

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self.reader.execute_fetchall(sql, params))

    async def _fetch_w(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self.writer.execute_fetchall(sql, params))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection, committed or rolled back
        whole; the end is shielded so a cancelled caller cannot leave it open."""
        async with self._write_lock:
            conn = self.writer
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # SQLite rolls back by itself on some errors (a full disk): a ROLLBACK
                # then fails ("no transaction is active") and would hide the real error.
                with anyio.CancelScope(shield=True):
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                await conn.execute("COMMIT")

    # --- migrations ----------------------------------------------------------------

    async def migrate(self) -> list[str]:
        conn = self.writer
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
        done = {row[0] for row in rows}
        applied = []
        for version, name, sql in available_migrations():
            if version in done:
                continue
            stamp = datetime.now(UTC).isoformat()
            script = (
                "BEGIN;\n"
                + sql
                + f"\n;INSERT INTO schema_migrations VALUES ({version}, '{name}', '{stamp}');"
                + "\nCOMMIT;"
            )
            try:
                await conn.executescript(script)
            except sqlite3.Error:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
            applied.append(f"{version:04d}_{name}")
            logger.info("applied migration %04d_%s", version, name)
        return applied

    async def applied_migrations(self) -> list[str]:
        rows = await self._fetch_w("SELECT version, name FROM schema_migrations ORDER BY version")
        return [f"{r[0]:04d}_{r[1]}" for r in rows]

    # --- spans ---------------------------------------------------------------------

    async def insert_spans(self, records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
        rows = span_rows(records)
        run_on_thread = getattr(self.writer, "_execute", None)
        if run_on_thread is not None:
            # The whole transaction in one trip to aiosqlite's thread. Each trip costs
            # about 100 us of hand-over between the threads; a span written alone (an
            # idle writer) took three: BEGIN, INSERT, COMMIT. `_execute` is aiosqlite's
            # own queue (private, stable since 0.11); without it, `transaction()`. The
            # thread runs the transaction to its end even if this caller is cancelled.
            async with self._write_lock:
                renamed: Renamed = await run_on_thread(_insert_rows, self.writer, rows)
        else:
            renamed = await self._insert_rows_one_by_one(rows)
        return {i: dict(zip(SPAN_COLUMNS, row, strict=True)) for i, row in renamed.items()}

    async def _insert_rows_one_by_one(self, rows: list[tuple[Any, ...]]) -> Renamed:
        """`insert_rows` through aiosqlite's public interface: a trip per row."""
        renamed: Renamed = {}
        async with self.transaction() as conn:
            for i, row in enumerate(rows):
                new = row
                while (await conn.execute(insert_sql(1), new)).rowcount != 1:
                    found = await (await conn.execute(SELECT_IDENTITY, (row[0],))).fetchone()
                    if same_span(row, found):
                        break
                    new = renamed_row(row)
                if new is not row:
                    renamed[i] = new
        return renamed

    async def get_span(self, span_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE span_id = ?", (span_id,)
        )
        return span_from_row(rows[0]) if rows else None

    async def list_spans(
        self, filters: SpanFilter, *, limit: int, cursor: str | None = None
    ) -> Page:
        where, params = filters.where()
        return await keyset_page(
            self._fetch,
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM spans",
            where,
            params,
            SPAN_ORDER,
            limit=limit,
            cursor=cursor,
            convert=span_from_row,
        )

    async def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM spans WHERE trace_id = ?"
            " ORDER BY start_us, span_id",
            (trace_id,),
        )
        return [span_from_row(r) for r in rows]

    async def list_threads(
        self, *, project: str | None, limit: int, offset: int = 0
    ) -> list[dict[str, Any]]:
        where = "thread_id IS NOT NULL"
        params: list[Any] = []
        if project is not None:
            where += " AND project_id = ?"
            params.append(project)
        rows = await self._fetch(
            "SELECT thread_id, COUNT(*) AS calls,"
            " SUM(status != 'ok') AS errors,"
            " SUM(COALESCE(total_tokens, 0)) AS total_tokens,"
            " SUM(cost_usd) AS cost_usd,"
            " MIN(start_us) AS first_us, MAX(start_us) AS last_us,"
            " GROUP_CONCAT(DISTINCT COALESCE(request_model, response_model)) AS models,"
            " MAX(project_id) AS project_id"
            f" FROM spans WHERE {where} GROUP BY thread_id"
            " ORDER BY last_us DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [
            {
                "thread_id": r["thread_id"],
                "project_id": r["project_id"],
                "calls": r["calls"],
                "errors": r["errors"],
                "total_tokens": r["total_tokens"],
                "cost_usd": r["cost_usd"],
                "first_activity": iso_from_us(r["first_us"]),
                "last_activity": iso_from_us(r["last_us"]),
                "models": sorted(set((r["models"] or "").split(","))) if r["models"] else [],
            }
            for r in rows
        ]

    async def stats(self, group_by: str, filters: SpanFilter) -> list[dict[str, Any]]:
        key = STATS_GROUPS.get(group_by)
        if key is None:
            raise InvalidRequest(
                f"group_by must be one of {', '.join(STATS_GROUPS)}", param="group_by"
            )
        where, params = filters.where()
        # Nearest-rank percentiles with window functions: the smallest duration whose
        # rank reaches p * n within its group (spans without a duration rank after n).
        sql = f"""
            WITH f AS (
                SELECT {key} AS grp, status, duration_ms, ttft_ms, prompt_tokens,
                       completion_tokens, total_tokens, cost_usd
                FROM spans WHERE {where}
            ),
            r AS (
                SELECT *,
                       ROW_NUMBER() OVER (PARTITION BY grp ORDER BY duration_ms NULLS LAST) AS rn,
                       COUNT(duration_ms) OVER (PARTITION BY grp) AS n
                FROM f
            )
            SELECT grp, COUNT(*) AS calls, SUM(status != 'ok') AS errors,
                   SUM(COALESCE(prompt_tokens, 0)) AS prompt_tokens,
                   SUM(COALESCE(completion_tokens, 0)) AS completion_tokens,
                   SUM(COALESCE(total_tokens, 0)) AS total_tokens,
                   SUM(cost_usd) AS cost_usd,
                   AVG(duration_ms) AS latency_avg_ms,
                   MIN(CASE WHEN duration_ms IS NOT NULL AND rn >= 0.5 * n
                       THEN duration_ms END) AS latency_p50_ms,
                   MIN(CASE WHEN duration_ms IS NOT NULL AND rn >= 0.95 * n
                       THEN duration_ms END) AS latency_p95_ms,
                   AVG(ttft_ms) AS ttft_avg_ms
            FROM r GROUP BY grp ORDER BY calls DESC, grp
        """
        rows = await self._fetch(sql, params)
        return [{"group": r["grp"], **{k: r[k] for k in r.keys() if k != "grp"}} for r in rows]  # noqa: SIM118

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def count_spans(self, filters: SpanFilter | None = None) -> int:
        where, params = (filters or SpanFilter()).where()
        rows = await self._fetch(f"SELECT COUNT(*) FROM spans WHERE {where}", params)
        return int(rows[0][0])

    async def delete_spans_before(self, before_us: int) -> int:
        async with self.transaction() as conn:
            cursor = await conn.execute("DELETE FROM spans WHERE start_us < ?", (before_us,))
            return int(cursor.rowcount)


def _insert_rows(conn: aiosqlite.Connection, rows: list[tuple[Any, ...]]) -> Renamed:
    return insert_rows(conn._conn, rows)


def span_from_row(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    """A stored span (a row, or a record about to be stored) as the API presents it."""
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118  (sqlite3.Row is not iterable by key)
        value = row[key]
        if key in JSON_COLUMNS and value is not None:
            value = orjson.loads(value)
        out[key] = value
    out["stream"] = bool(out.get("stream"))
    out["start_time"] = iso_from_us(out.get("start_us"))
    out["end_time"] = iso_from_us(out.get("end_us"))
    out["usage"] = {
        "prompt_tokens": out.pop("prompt_tokens", None),
        "completion_tokens": out.pop("completion_tokens", None),
        "total_tokens": out.pop("total_tokens", None),
        "cached_tokens": out.pop("cached_tokens", None),
    }
    return out
