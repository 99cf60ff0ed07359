"""The span store on PostgreSQL: `PostgresSpanStore`.

Its reads are `SQLSpanStore`'s, shared with SQLite. Its inserts: a batch goes into a
temporary table with COPY (binary; the fastest way asyncpg has, docs/postgres.md), then
into the spans with one ``INSERT ... SELECT ... ON CONFLICT (span_id) DO NOTHING
RETURNING span_id``, in the batch's order. A row that did not go in had its span id
taken: the same span stored already (sent again) is done; another span is stored under
a new id (`span_table.renamed_row`), as on SQLite (`span_table.same_span`).

`/stats` is answered exactly, from the spans (the rollup of migration 0014 is folded by
SQLite's writer process; here its tables exist but stay empty): PostgreSQL's parallel
scan and the start index keep that affordable to a few million spans in range.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.capture.span_table import (
    SPAN_COLUMNS,
    Renamed,
    facets_of,
    insert_sql,
    outline_row,
    span_rows,
)
from gateway.store.postgres import PostgresDatabase, numbered, translated
from gateway.store.sql import savepoint
from gateway.store.sql_spans import REBUILD_FACETS, SQLSpanStore, settle_conflict

capture_log = logging.getLogger("gateway.writer.span_writer")

_ID = SPAN_COLUMNS.index("span_id")
STAGE = "spans_in"
# The staging table lives as long as its connection (a pooled one: created once per
# connection, IF NOT EXISTS), emptied at each commit.
CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (seq INTEGER NOT NULL, LIKE spans)"
    " ON COMMIT DELETE ROWS"
)
INSERT_STAGED = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)})"
    f" SELECT {', '.join(SPAN_COLUMNS)} FROM {STAGE} ORDER BY seq"
    " ON CONFLICT (span_id) DO NOTHING RETURNING span_id"
)
# The batch's facets in one statement (one round trip, prepared once per connection).
INSERT_FACETS = (
    "INSERT INTO span_facets (kind, value) SELECT * FROM unnest($1::text[], $2::text[])"
    " ON CONFLICT DO NOTHING"
)
# Below this many rows a batch is one multi-row INSERT (one round trip; a statement
# per size, prepared once per connection); from it on, COPY into the staging table
# (three round trips, but COPY's binary rows are cheaper than parameters: measured,
# docs/postgres.md).
COPY_FROM = 16


@functools.lru_cache(maxsize=COPY_FROM)
def _insert_returning(count: int) -> str:
    return numbered(insert_sql(count)) + " RETURNING span_id"


class _Probed(Exception):
    """Ends a probe's savepoint (or transaction) by rolling it back."""


# What a row's own values can raise: asyncpg's encoders' DataError (an integer out of
# range), `PostgresDataError` (PostgreSQL's class 22: text it cannot take), Python's
# encoding errors: all ValueErrors.
_ROW_ERRORS: tuple[type[Exception], ...] = (ValueError, OverflowError)


def _text_safe(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` with NUL characters in its text replaced (U+FFFD): PostgreSQL's text
    cannot hold them, SQLite's can. A membership test per text value (memchr)."""
    if any(type(v) is str and "\x00" in v for v in row):
        return tuple(v.replace("\x00", "\ufffd") if type(v) is str else v for v in row)
    return row


class PostgresSpanStore(SQLSpanStore):
    def __init__(self, db: PostgresDatabase) -> None:
        super().__init__(db)
        self.db: PostgresDatabase = db

    async def insert_spans(self, records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
        rows = [_text_safe(row) for row in span_rows(records)]
        if not rows:
            return {}
        changed: Renamed = {}
        try:
            renamed = await self._insert(rows)
        except _ROW_ERRORS:
            # A value PostgreSQL refuses (an integer past 64 bits, text it cannot
            # encode): such a span would stop the writer at every retry, and every span
            # behind it. The rows it refuses alone are stored as their outline, as the
            # SQLite writer process does (`ChildWriter._outline_poison`).
            changed = await self._outline_poison(rows)
            rows = [changed.get(i, row) for i, row in enumerate(rows)]
            renamed = await self._insert(rows)
        changed.update(renamed)
        return {i: dict(zip(SPAN_COLUMNS, row, strict=True)) for i, row in changed.items()}

    async def _insert(self, rows: list[tuple[Any, ...]]) -> Renamed:
        """The rows in one transaction; those stored under a new id, by index."""
        renamed: Renamed = {}
        async with self.db.transaction() as conn:
            raw = conn.raw
            async with translated():
                if len(rows) < COPY_FROM:
                    flat = [v for row in rows for v in row]
                    stored = await raw.fetch(_insert_returning(len(rows)), *flat)
                else:
                    await raw.execute(CREATE_STAGE)
                    await raw.copy_records_to_table(
                        STAGE,
                        records=[(i, *row) for i, row in enumerate(rows)],
                        columns=("seq", *SPAN_COLUMNS),
                    )
                    stored = await raw.fetch(INSERT_STAGED)
            if len(stored) != len(rows):
                # Rows in order: each id returned went in for its first row in the batch.
                taken = {r[0] for r in stored}
                for i, row in enumerate(rows):
                    if row[_ID] in taken:
                        taken.discard(row[_ID])
                        continue
                    new = await settle_conflict(conn, row)
                    if new is not None:
                        renamed[i] = new
            facets = sorted(facets_of(rows))
            if facets:
                async with translated():
                    await raw.execute(INSERT_FACETS, [k for k, _ in facets], [v for _, v in facets])
        return renamed

    async def _outline_poison(self, rows: list[tuple[Any, ...]]) -> Renamed:
        """The rows PostgreSQL refuses alone while their outline goes in, as outlines
        (by index); probed in a transaction rolled back. A failure that is not the
        rows' (their outlines fail too) replaces nothing: the batch fails as before."""
        replaced: Renamed = {}
        one = _insert_returning(1)
        try:
            async with self.db.transaction() as conn:
                for i, row in enumerate(rows):
                    try:
                        async with savepoint(conn), translated():
                            await conn.raw.fetch(one, *row)
                            raise _Probed
                    except _Probed:
                        continue
                    except _ROW_ERRORS as exc:
                        outline = outline_row(
                            dict(zip(SPAN_COLUMNS, row, strict=True)),
                            f"the call could not be stored whole ({type(exc).__name__})",
                        )
                    try:
                        async with savepoint(conn), translated():
                            await conn.raw.fetch(one, *outline)
                            raise _Probed
                    except _Probed:
                        replaced[i] = outline
                    except _ROW_ERRORS:
                        pass  # not this row's fault: left as it is
                raise _Probed  # roll the probe back
        except _Probed:
            pass
        for i in replaced:
            capture_log.error(
                "span %s could not be stored whole; storing its outline", rows[i][_ID]
            )
        return replaced

    async def delete_spans_before(self, before_us: int) -> int:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM spans WHERE start_us < ?", (before_us,))
            deleted = int(cursor.rowcount)
            if deleted:
                # The facets of the spans left, in the same transaction: one scan, for a
                # maintenance command that scanned to delete already.
                await conn.execute("DELETE FROM span_facets")
                await conn.execute(REBUILD_FACETS)
            return deleted
