"""The span store on SQLite: `SQLiteSpanStore`, on a `SQLiteDatabase`'s connections.

Its queries are `gateway.store.sql_spans.SQLSpanStore`'s (shared with PostgreSQL).
Reads go to the database's reader connection; writes run in its one write
transaction (shared with the experiment store, so neither lands inside the other's).
On a database file the proxy's spans are stored by the writer process instead
(`gateway.writer.process`, the same INSERT statements); this store stores them when
the span writer runs in the gateway's process, and replays a spill file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.capture.span_table import (
    FACET_COLUMNS,
    INSERT_FACET,
    INSERT_SIZES,
    SPAN_COLUMNS,
    Renamed,
    facet_indexes,
    facets_of,
    insert_sql,
    span_rows,
)
from gateway.store.database import SQLiteDatabase
from gateway.store.dialect import dialect_for
from gateway.store.spans import SpanFilter, StatsAnswer
from gateway.store.sql_spans import SQLSpanStore, settle_conflict, stats_groups
from gateway.store.sqlite_stats import fold_rollup, prune_rollup, rollup_stats

STATS_GROUPS = stats_groups(dialect_for("sqlite"))


class SQLiteSpanStore(SQLSpanStore):
    """The span store on SQLite: the shared reads (`SQLSpanStore`), its inserts, and
    `/stats` from the rollup the writer process keeps (`gateway.store.sqlite_stats`)."""

    def __init__(self, db: SQLiteDatabase) -> None:
        super().__init__(db)
        self.db: SQLiteDatabase = db

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
                            new = await settle_conflict(conn, rows[i])
                            if new is not None:
                                renamed[i] = new
                    start += size
            await conn.executemany(INSERT_FACET, facets_of(rows))
        return {i: dict(zip(SPAN_COLUMNS, row, strict=True)) for i, row in renamed.items()}

    async def stats_answer(
        self, group_by: str, filters: SpanFilter, *, exact: bool = False
    ) -> StatsAnswer:
        key = self.group_sql(group_by)
        if not exact:
            # The rollup (migration 0014) when it can answer and the range is large;
            # else the exact scan (`gateway.store.sqlite_stats`).
            rolled = await rollup_stats(self.db.fetch, group_by, key, filters)
            if rolled is not None:
                return StatsAnswer(rolled, approximate=True)
        return StatsAnswer(await self.exact_stats(key, filters), approximate=False)

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
