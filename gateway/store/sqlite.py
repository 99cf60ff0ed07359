"""The span store on SQLite: `SQLiteSpanStore`, on a `SQLiteDatabase`'s connections.

Reads go to the database's reader connection; writes run in its one write
transaction (shared with the experiment store, so neither lands inside the other's).
On a database file the proxy's spans are stored by the writer process instead
(`gateway.writer.process`, the same INSERT statements); this store stores them when
the span writer runs in the gateway's process, and replays a spill file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from gateway.capture.origin import APP
from gateway.capture.span_table import (
    FACET_COLUMNS,
    FACET_KINDS,
    INSERT_FACET,
    INSERT_SIZES,
    ORIGINAL_ID_ATTRIBUTE,
    SELECT_IDENTITY,
    SPAN_COLUMNS,
    SUMMARY_COLUMNS,
    Renamed,
    facet_indexes,
    facets_of,
    insert_sql,
    renamed_row,
    same_span,
    span_rows,
)
from gateway.errors import InvalidRequest
from gateway.store.database import SQLiteDatabase
from gateway.store.pagination import Page, SortKey, keyset_page
from gateway.store.spans import (
    SpanFilter,
    SpanStore,
    StatsAnswer,
    iso_from_us,
    span_from_row,
)
from gateway.store.sqlite_stats import fold_rollup, prune_rollup, rollup_stats
from gateway.store.sqlwhere import Where

# The writer process logs a renamed span under this name: so does this store.
capture_log = logging.getLogger("gateway.writer.span_writer")

SPAN_ORDER = (SortKey("start_us", "start_us"), SortKey("span_id", "span_id"))
STATS_GROUPS = {
    # One row for every span the filter takes (its group is null): a summary's totals.
    "total": "NULL",
    "model": "COALESCE(request_model, response_model)",
    "provider": "provider",
    "thread": "thread_id",
    "status": "status",
    "minute": "strftime('%Y-%m-%dT%H:%M:00Z', start_us / 1000000, 'unixepoch')",
    "hour": "strftime('%Y-%m-%dT%H:00:00Z', start_us / 1000000, 'unixepoch')",
    "day": "strftime('%Y-%m-%d', start_us / 1000000, 'unixepoch')",
}


class SQLiteSpanStore(SpanStore):
    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db

    # --- spans ---------------------------------------------------------------------

    async def insert_spans(self, records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
        rows = span_rows(records)
        renamed: Renamed = {}
        # The statements of `span_table.insert_rows` (what the writer process runs),
        # through aiosqlite's public interface: a chunk of rows per INSERT.
        async with self.db.transaction() as conn:
            start = 0
            for size in INSERT_SIZES:
                while len(rows) - start >= size:
                    chunk = rows[start : start + size]
                    flat = [v for row in chunk for v in row]
                    if (await conn.execute(insert_sql(size), flat)).rowcount != size:
                        for i in range(start, start + size):
                            new = await _settle_conflict(conn, rows[i])
                            if new is not None:
                                renamed[i] = new
                    start += size
            await conn.executemany(INSERT_FACET, facets_of(rows))
        return {i: dict(zip(SPAN_COLUMNS, row, strict=True)) for i, row in renamed.items()}

    async def get_span(self, span_id: str) -> dict[str, Any] | None:
        rows = await self.db.fetch(
            f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE span_id = ?", (span_id,)
        )
        return span_from_row(rows[0]) if rows else None

    async def list_spans(
        self, filters: SpanFilter, *, limit: int, cursor: str | None = None
    ) -> Page:
        where, params = filters.where()
        return await keyset_page(
            self.db.fetch,
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM spans",
            where,
            params,
            SPAN_ORDER,
            limit=limit,
            cursor=cursor,
            convert=span_from_row,
        )

    async def get_trace(self, trace_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM spans WHERE trace_id = ?"
            " ORDER BY start_us, span_id",
            (trace_id,),
        )
        return [span_from_row(r) for r in rows]

    async def list_threads(
        self, *, project: str | None, limit: int, offset: int = 0
    ) -> list[dict[str, Any]]:
        clauses = Where()
        clauses.add("thread_id IS NOT NULL")
        clauses.project("project_id", project)
        where, params = clauses.sql()
        # The totals are the app's calls only: a replay (any origin but app) lands in
        # its original's thread, and is counted apart (replays) instead of inflating it.
        app = f"origin = '{APP}'"
        rows = await self.db.fetch(
            f"SELECT thread_id, SUM({app}) AS calls,"
            f" SUM({app} AND status != 'ok') AS errors,"
            f" SUM(CASE WHEN {app} THEN COALESCE(total_tokens, 0) END) AS total_tokens,"
            f" SUM(CASE WHEN {app} THEN cost_usd END) AS cost_usd,"
            f" SUM(origin != '{APP}') AS replays,"
            f" COALESCE(MIN(CASE WHEN {app} THEN start_us END), MIN(start_us)) AS first_us,"
            f" COALESCE(MAX(CASE WHEN {app} THEN start_us END), MAX(start_us)) AS last_us,"
            " GROUP_CONCAT(DISTINCT CASE WHEN"
            f" {app} THEN COALESCE(request_model, response_model) END) AS models,"
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
                "total_tokens": r["total_tokens"] or 0,
                "cost_usd": r["cost_usd"],
                "replays": r["replays"],
                "first_activity": iso_from_us(r["first_us"]),
                "last_activity": iso_from_us(r["last_us"]),
                "models": sorted(set((r["models"] or "").split(","))) if r["models"] else [],
            }
            for r in rows
        ]

    async def stats(self, group_by: str, filters: SpanFilter) -> list[dict[str, Any]]:
        return (await self.stats_answer(group_by, filters)).rows

    async def stats_answer(
        self, group_by: str, filters: SpanFilter, *, exact: bool = False
    ) -> StatsAnswer:
        key = STATS_GROUPS.get(group_by)
        if key is None:
            raise InvalidRequest(
                f"group_by must be one of {', '.join(STATS_GROUPS)}", param="group_by"
            )
        if not exact:
            # The rollup (migration 0014) when it can answer and the range is large;
            # else the exact scan below (`gateway.store.sqlite_stats`).
            rolled = await rollup_stats(self.db.fetch, group_by, key, filters)
            if rolled is not None:
                return StatsAnswer(rolled, approximate=True)
        where, params = filters.where()
        # Nearest-rank percentiles with window functions: the smallest duration whose
        # rank reaches p * n within its group (spans without a duration rank after n).
        sql = f"""
            WITH f AS (
                SELECT {key} AS grp, status, start_us, duration_ms, ttft_ms, prompt_tokens,
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
                   AVG(ttft_ms) AS ttft_avg_ms,
                   MIN(start_us) AS first_us, MAX(start_us) AS last_us
            FROM r GROUP BY grp ORDER BY calls DESC, grp
        """
        rows = await self.db.fetch(sql, params)
        return StatsAnswer([_stats_row(r) for r in rows], approximate=False)

    async def facets(self, limit: int = 1000, project: str | None = None) -> dict[str, list[str]]:
        if project is not None:
            return await self._project_facets(limit, project)
        # Per kind, the primary key's order: a range of the index, `limit` rows at most.
        out: dict[str, list[str]] = {}
        for kind in FACET_KINDS:
            rows = await self.db.fetch(
                "SELECT value FROM span_facets WHERE kind = ? ORDER BY value LIMIT ?",
                (kind, limit),
            )
            out[kind] = [r[0] for r in rows]
        return out

    async def _project_facets(self, limit: int, project: str) -> dict[str, list[str]]:
        # The facets table knows no projects: one project's values come from its spans
        # (a scan of them; only a key bound to a project asks this).
        clauses = Where()
        clauses.project("project_id", project)
        where, params = clauses.sql()
        out: dict[str, list[str]] = {}
        for kind, columns in FACET_KINDS.items():
            union = " UNION ".join(
                f"SELECT {c} AS value FROM spans WHERE {where} AND {c} IS NOT NULL AND {c} <> ''"
                for c in columns
            )
            rows = await self.db.fetch(
                f"SELECT value FROM ({union}) ORDER BY value LIMIT ?",
                [*params * len(columns), limit],
            )
            out[kind] = [r[0] for r in rows]
        return out

    async def count_spans(self, filters: SpanFilter | None = None) -> int:
        where, params = (filters or SpanFilter()).where()
        rows = await self.db.fetch(f"SELECT COUNT(*) FROM spans WHERE {where}", params)
        return int(rows[0][0])

    async def fold_rollup(self) -> int:
        async with self.db.transaction() as conn:
            return await fold_rollup(conn)

    async def delete_spans_before(self, before_us: int) -> int:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM spans WHERE start_us < ?", (before_us,))
            deleted = int(cursor.rowcount)
            if deleted:
                await prune_rollup(conn, before_us)
                # The facets of the spans left, in the same transaction (the writer
                # process adds its batches' facets in its own, before or after this):
                # one scan, for a maintenance command that scanned to delete already.
                combos = await conn.execute_fetchall(
                    f"SELECT DISTINCT {', '.join(FACET_COLUMNS)} FROM spans"
                )
                await conn.execute("DELETE FROM span_facets")
                await conn.executemany(
                    INSERT_FACET, facets_of(list(combos), facet_indexes(FACET_COLUMNS))
                )
            return deleted


def _stats_row(row: Any) -> dict[str, Any]:
    out = {"group": row["grp"]}
    out.update({k: row[k] for k in row.keys() if k not in ("grp", "first_us", "last_us")})  # noqa: SIM118
    out["first_time"] = iso_from_us(row["first_us"])
    out["last_time"] = iso_from_us(row["last_us"])
    return out


async def _settle_conflict(
    conn: aiosqlite.Connection, row: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """A row its chunk's INSERT may have refused (`span_table._settle_conflicts`, in
    the writer process): the same span stored already is done (None); another span's
    id is taken, so the row is stored under a new id (returned)."""
    span_id = row[SPAN_COLUMNS.index("span_id")]
    found = await (await conn.execute(SELECT_IDENTITY, (span_id,))).fetchone()
    if same_span(row, found):
        return None
    new = row if found is None else renamed_row(row)
    while (await conn.execute(insert_sql(1), new)).rowcount != 1:
        new = renamed_row(row)
    if new is row:
        return None
    capture_log.warning(
        "span id %s was already taken by another span; this span is stored as %s"
        " (attribute %s keeps the id its response carried)",
        span_id,
        new[SPAN_COLUMNS.index("span_id")],
        ORIGINAL_ID_ATTRIBUTE,
    )
    return new
