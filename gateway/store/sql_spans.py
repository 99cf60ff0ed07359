"""The span store's queries, once for both dialects: `SQLSpanStore`.

`gateway.store.sqlite.SQLiteSpanStore` (its inserts, and the `/stats` rollup the
writer process keeps) and `gateway.store.postgres_spans.PostgresSpanStore` (COPY
inserts) extend it. Reads go through the database's ``fetch``; the SQL is portable
but for the fragments `gateway.store.dialect` gives (time buckets, GROUP_CONCAT, the
case-insensitive LIKE).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.capture.origin import APP
from gateway.capture.span_table import (
    FACET_KINDS,
    ORIGINAL_ID_ATTRIBUTE,
    SELECT_IDENTITY,
    SPAN_COLUMNS,
    SUMMARY_COLUMNS,
    insert_sql,
    renamed_row,
    same_span,
)
from gateway.errors import InvalidRequest
from gateway.store.dialect import Dialect, dialect_for
from gateway.store.pagination import Page, SortKey, keyset_page
from gateway.store.spans import SpanFilter, SpanStore, StatsAnswer, iso_from_us, span_from_row
from gateway.store.sql import SQLConnection, SQLDatabase
from gateway.store.sqlwhere import Where

# The writer process logs a renamed span under this name: so do the stores.
capture_log = logging.getLogger("gateway.writer.span_writer")

SPAN_ORDER = (SortKey("start_us", "start_us"), SortKey("span_id", "span_id"))
# The facets of the spans left after a prune, rebuilt in one statement (the values
# `span_table.facets_of` takes: non-empty text).
REBUILD_FACETS = (
    "INSERT INTO span_facets (kind, value)"
    + " UNION ".join(
        f" SELECT '{kind}', {column} FROM spans WHERE {column} IS NOT NULL AND {column} != ''"
        for kind, columns in FACET_KINDS.items()
        for column in columns
    )
    + " ON CONFLICT DO NOTHING"
)


def stats_groups(sql: Dialect) -> dict[str, str]:
    """``group_by`` -> the group's SQL expression, in a dialect."""
    return {
        # One row for every span the filter takes (its group is null): a summary's totals.
        "total": "NULL",
        "model": "COALESCE(request_model, response_model)",
        "provider": "provider",
        "thread": "thread_id",
        "status": "status",
        "minute": sql.time_bucket("minute", "start_us"),
        "hour": sql.time_bucket("hour", "start_us"),
        "day": sql.time_bucket("day", "start_us"),
    }


class SQLSpanStore(SpanStore):
    """The reads of a span store on a SQL database of either dialect."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        self.sql = dialect_for(db.dialect)
        self.groups = stats_groups(self.sql)

    def where(self, filters: SpanFilter) -> tuple[str, list[Any]]:
        return filters.where(like=self.sql.like_nocase)

    async def get_span(self, span_id: str) -> dict[str, Any] | None:
        rows = await self.db.fetch(
            f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE span_id = ?", (span_id,)
        )
        return span_from_row(rows[0]) if rows else None

    async def list_spans(
        self, filters: SpanFilter, *, limit: int, cursor: str | None = None
    ) -> Page:
        where, params = self.where(filters)
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
        clauses = Where(self.sql.like_nocase)
        clauses.add("thread_id IS NOT NULL")
        clauses.project("project_id", project)
        where, params = clauses.sql()
        # The totals are the app's calls only: a replay (any origin but app) lands in
        # its original's thread, and is counted apart (replays) instead of inflating it.
        app = f"origin = '{APP}'"
        app_error = f"{app} AND status <> 'ok'"
        replay = f"origin <> '{APP}'"
        count_if = self.sql.count_if
        models = self.sql.group_concat(
            f"CASE WHEN {app} THEN COALESCE(request_model, response_model) END", distinct=True
        )
        rows = await self.db.fetch(
            f"SELECT thread_id, {count_if(app)} AS calls,"
            f" {count_if(app_error)} AS errors,"
            f" SUM(CASE WHEN {app} THEN COALESCE(total_tokens, 0) END) AS total_tokens,"
            f" SUM(CASE WHEN {app} THEN cost_usd END) AS cost_usd,"
            f" {count_if(replay)} AS replays,"
            f" COALESCE(MIN(CASE WHEN {app} THEN start_us END), MIN(start_us)) AS first_us,"
            f" COALESCE(MAX(CASE WHEN {app} THEN start_us END), MAX(start_us)) AS last_us,"
            f" {models} AS models, MAX(project_id) AS project_id"
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

    def group_sql(self, group_by: str) -> str:
        key = self.groups.get(group_by)
        if key is None:
            raise InvalidRequest(
                f"group_by must be one of {', '.join(self.groups)}", param="group_by"
            )
        return key

    async def stats_answer(
        self, group_by: str, filters: SpanFilter, *, exact: bool = False
    ) -> StatsAnswer:
        return StatsAnswer(await self.exact_stats(self.group_sql(group_by), filters))

    async def exact_stats(self, key: str, filters: SpanFilter) -> list[dict[str, Any]]:
        """`/stats` rows from a scan of the spans the filter takes."""
        where, params = self.where(filters)
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
            SELECT grp, COUNT(*) AS calls, {self.sql.count_if("status <> 'ok'")} AS errors,
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
            FROM r GROUP BY grp ORDER BY calls DESC, grp NULLS FIRST
        """
        rows = await self.db.fetch(sql, params)
        return [_stats_row(r) for r in rows]

    async def facets(self, limit: int = 1000, project: str | None = None) -> dict[str, list[str]]:
        if project is not None:
            return await self.project_facets(limit, project)
        # Per kind, the primary key's order: a range of the index, `limit` rows at most.
        out: dict[str, list[str]] = {}
        for kind in FACET_KINDS:
            rows = await self.db.fetch(
                "SELECT value FROM span_facets WHERE kind = ? ORDER BY value LIMIT ?",
                (kind, limit),
            )
            out[kind] = [r[0] for r in rows]
        return out

    async def project_facets(self, limit: int, project: str) -> dict[str, list[str]]:
        """The facets of one project's spans. The facets table knows no projects: they
        come from its spans (a scan of them; only a key bound to a project asks this)."""
        clauses = Where(self.sql.like_nocase)
        clauses.project("project_id", project)
        where, params = clauses.sql()
        out: dict[str, list[str]] = {}
        for kind, columns in FACET_KINDS.items():
            union = " UNION ".join(
                f"SELECT {c} AS value FROM spans WHERE {where} AND {c} IS NOT NULL AND {c} <> ''"
                for c in columns
            )
            rows = await self.db.fetch(
                f"SELECT value FROM ({union}) AS project_values ORDER BY value LIMIT ?",
                [*params * len(columns), limit],
            )
            out[kind] = [r[0] for r in rows]
        return out

    async def count_spans(self, filters: SpanFilter | None = None) -> int:
        where, params = self.where(filters or SpanFilter())
        rows = await self.db.fetch(f"SELECT COUNT(*) FROM spans WHERE {where}", params)
        return int(rows[0][0])


def _stats_row(row: Any) -> dict[str, Any]:
    out = {"group": row["grp"]}
    out.update({k: row[k] for k in row.keys() if k not in ("grp", "first_us", "last_us")})  # noqa: SIM118
    out["first_time"] = iso_from_us(row["first_us"])
    out["last_time"] = iso_from_us(row["last_us"])
    return out


async def settle_conflict(conn: SQLConnection, row: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """A row its chunk's INSERT may have refused (either dialect; the writer process
    does the same in `span_table._settle_conflicts`): the same span stored already is
    done (None); another span's id is taken, so the row is stored under a new id
    (returned)."""
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
