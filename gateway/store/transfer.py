"""Copying a whole database to another (``spanlab copy-db``): a SQLite file to
PostgreSQL when a team outgrows one machine, or back.

Both databases are first brought to the same schema (their migrations applied; a
target behind or ahead is refused). Then every table of the product is copied in the
order of its foreign keys, in batches read by keyset on the primary key (memory stays
flat at any size) and written with ``INSERT ... ON CONFLICT DO NOTHING`` (a copy cut
short can be run again: what is there is kept, the rest added). Values are converted
to the target column's type where the dialects differ (SQLite keeps an integer in a
REAL column; PostgreSQL's driver will not take it for DOUBLE PRECISION). PostgreSQL
identity columns are moved past the largest id copied.

Left out: ``schema_migrations`` (each side has its own, equal by then) and the /stats
rollup (``span_rollup*``: its watermark is a SQLite rowid; PostgreSQL answers /stats
exactly, and a SQLite target folds its spans anew).

`copy_database` returns per table the rows read and the rows the target then holds,
and checks a sample of rows (up to `SAMPLE_ROWS` per table, spread over the table)
value by value on the target.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from gateway.errors import Conflict
from gateway.store.database import Database
from gateway.store.sql import SQLDatabase

logger = logging.getLogger(__name__)

BATCH_ROWS = 2000
SAMPLE_ROWS = 50
SKIPPED = frozenset({"schema_migrations"})
SKIPPED_PREFIXES = ("span_rollup",)

INTEGER_TYPES = frozenset({"integer", "bigint", "smallint"})
FLOAT_TYPES = frozenset({"double precision", "real", "numeric"})


@dataclass(slots=True)
class Table:
    name: str
    columns: list[str]
    key: list[str]  # the primary key's columns, in order
    types: dict[str, str] = field(default_factory=dict)  # PostgreSQL target: column -> type


@dataclass(slots=True)
class TableCopy:
    table: str
    read: int = 0
    in_target: int = 0
    sampled: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.in_target >= self.read and not self.mismatches


Progress = Callable[[TableCopy], None]


def _copied(name: str) -> bool:
    return name not in SKIPPED and not name.startswith(SKIPPED_PREFIXES)


async def tables_of(db: SQLDatabase) -> list[Table]:
    """The product's tables, parents before children (foreign keys)."""
    if db.dialect == "sqlite":
        names = [
            r[0]
            for r in await db.fetch(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        tables: dict[str, Table] = {}
        parents: dict[str, set[str]] = {}
        for name in names:
            info = await db.fetch("SELECT name, pk FROM pragma_table_info(?)", (name,))
            key = [r[0] for r in sorted((r for r in info if r[1]), key=lambda r: r[1])]
            tables[name] = Table(name, [r[0] for r in info], key)
            refs = await db.fetch('SELECT "table" FROM pragma_foreign_key_list(?)', (name,))
            parents[name] = {r[0] for r in refs} - {name}
    else:
        rows = await db.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        )
        tables = {}
        for table_name, column, data_type in rows:
            table = tables.setdefault(table_name, Table(table_name, [], []))
            table.columns.append(column)
            table.types[column] = data_type
        keys = await db.fetch(
            "SELECT c.relname, a.attname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indisprimary ORDER BY c.relname, array_position(i.indkey, a.attnum)"
        )
        for table_name, column in keys:
            if table_name in tables:
                tables[table_name].key.append(column)
        refs = await db.fetch(
            "SELECT child.relname, parent.relname FROM pg_constraint k"
            " JOIN pg_class child ON child.oid = k.conrelid"
            " JOIN pg_class parent ON parent.oid = k.confrelid"
            " JOIN pg_namespace n ON n.oid = child.relnamespace AND n.nspname = current_schema()"
            " WHERE k.contype = 'f'"
        )
        parents = {name: set() for name in tables}
        for child, parent in refs:
            if child != parent and child in parents:
                parents[child].add(parent)
    ordered: list[Table] = []
    placed: set[str] = set()
    pending = sorted(n for n in tables if _copied(n))
    while pending:
        ready = [n for n in pending if parents.get(n, set()) <= placed | set(SKIPPED)]
        if not ready:  # a cycle: keep the rest in name order (none in this schema)
            ready = pending[:1]
        for name in ready:
            ordered.append(tables[name])
            placed.add(name)
        pending = [n for n in pending if n not in placed]
    return ordered


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _converter(data_type: str | None) -> Callable[[Any], Any] | None:
    if data_type in INTEGER_TYPES:
        return lambda v: v if v is None or isinstance(v, int) else int(v)
    if data_type in FLOAT_TYPES:
        return lambda v: v if v is None or isinstance(v, float) else float(v)
    if data_type == "text":
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    return None


async def _read_batches(source: SQLDatabase, table: Table, columns: list[str]) -> Any:
    """The table's rows, ``BATCH_ROWS`` at a time, in primary-key order (keyset)."""
    select = ", ".join(_quoted(c) for c in columns)
    order = ", ".join(_quoted(c) for c in table.key)
    positions = [columns.index(c) for c in table.key]
    after: list[Any] | None = None
    while True:
        if after is None:
            rows = await source.fetch(
                f"SELECT {select} FROM {_quoted(table.name)} ORDER BY {order} LIMIT ?",
                (BATCH_ROWS,),
            )
        else:
            marks = ", ".join("?" for _ in table.key)
            rows = await source.fetch(
                f"SELECT {select} FROM {_quoted(table.name)}"
                f" WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT ?",
                (*after, BATCH_ROWS),
            )
        if not rows:
            return
        yield [tuple(r) for r in rows]
        after = [rows[-1][i] for i in positions]
        if len(rows) < BATCH_ROWS:
            return


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    return bool(a == b)


async def copy_table(
    source: SQLDatabase, target: SQLDatabase, table: Table, target_table: Table
) -> TableCopy:
    if not table.key:
        raise Conflict(f"table {table.name} has no primary key: it cannot be copied")
    columns = [c for c in table.columns if c in target_table.columns]
    missing = [c for c in table.columns if c not in target_table.columns]
    if missing:
        raise Conflict(f"table {table.name}: the target lacks columns {', '.join(missing)}")
    converters = [_converter(target_table.types.get(c)) for c in columns]
    insert = (
        f"INSERT INTO {_quoted(table.name)} ({', '.join(_quoted(c) for c in columns)})"
        f" VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT DO NOTHING"
    )
    result = TableCopy(table.name)
    sample: list[tuple[Any, ...]] = []
    async for batch in _read_batches(source, table, columns):
        if any(converters):
            batch = [
                tuple(f(v) if f is not None else v for f, v in zip(converters, row, strict=True))
                for row in batch
            ]
        async with target.transaction() as conn:
            await conn.executemany(insert, batch)
        result.read += len(batch)
        # Spread over the table: every batch's first and last rows, while room lasts.
        for row in batch[:1] + batch[1:][-1:]:
            if len(sample) < SAMPLE_ROWS:
                sample.append(row)
    count = await target.fetch(f"SELECT COUNT(*) FROM {_quoted(table.name)}")
    result.in_target = int(count[0][0])
    positions = [columns.index(c) for c in table.key]
    where = " AND ".join(f"{_quoted(c)} = ?" for c in table.key)
    select = ", ".join(_quoted(c) for c in columns)
    for row in sample:
        found = await target.fetch(
            f"SELECT {select} FROM {_quoted(table.name)} WHERE {where}",
            [row[i] for i in positions],
        )
        result.sampled += 1
        if not found:
            result.mismatches.append(f"{table.name} {[row[i] for i in positions]}: missing")
            continue
        for column, mine, theirs in zip(columns, row, tuple(found[0]), strict=True):
            if not _same(mine, theirs):
                key = [row[i] for i in positions]
                result.mismatches.append(f"{table.name} {key} {column}: {mine!r} != {theirs!r}")
    return result


async def _move_identities(target: SQLDatabase, tables: Sequence[Table]) -> None:
    """PostgreSQL: identity columns continue past the largest id copied."""
    rows = await target.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    names = {t.name for t in tables}
    for table_name, column in rows:
        if table_name not in names:
            continue
        async with target.transaction() as conn:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?),"
                f" COALESCE((SELECT MAX({_quoted(column)}) FROM {_quoted(table_name)}), 0) + 1,"
                " false)",
                (table_name, column),
            )


async def copy_database(
    source: Database, target: Database, progress: Progress | None = None
) -> list[TableCopy]:
    """Copy every table of ``source`` into ``target`` (both open: migrated); see the
    module's docstring."""
    mine, theirs = await source.applied_migrations(), await target.applied_migrations()
    if mine != theirs:
        raise Conflict(
            "the databases are at different schema versions"
            f" ({mine[-1] if mine else 'none'} and {theirs[-1] if theirs else 'none'}):"
            " upgrade both to the same spanlab version first"
        )
    # Both dialects' databases fill the stores' seams (`gateway.store.sql`).
    source_sql, target_sql = cast(SQLDatabase, source), cast(SQLDatabase, target)
    target_tables = {t.name: t for t in await tables_of(target_sql)}
    results = []
    for table in await tables_of(source_sql):
        if table.name not in target_tables:
            raise Conflict(f"the target has no table {table.name}")
        result = await copy_table(source_sql, target_sql, table, target_tables[table.name])
        results.append(result)
        if progress is not None:
            progress(result)
    if target.dialect == "postgresql":
        await _move_identities(target_sql, list(target_tables.values()))
    return results
