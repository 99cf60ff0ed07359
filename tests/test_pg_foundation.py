"""The PostgreSQL foundation: placeholders, migrations side by side with SQLite's (the
same versions, tables and columns), migrations run once by concurrent processes, the
connection adapter (rowcount, rows, errors translated) and the dialect fragments giving
the same answers on both."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.span_table import SPAN_COLUMNS
from gateway.store.database import SQLiteDatabase
from gateway.store.dialect import dialect_for
from gateway.store.migrations import available_migrations
from gateway.store.postgres import PostgresDatabase, numbered, redacted_url
from gateway.store.sql import IntegrityError, SQLDatabase, savepoint
from tests.postgres import PostgresCluster
from tests.serve import child_env


def test_placeholders_are_numbered_outside_literals_and_comments() -> None:
    assert numbered("SELECT ? , ?") == "SELECT $1 , $2"
    assert numbered("SELECT '?', \"a?\", ? -- why?\n, ?") == (
        "SELECT '?', \"a?\", $1 -- why?\n, $2"
    )
    assert numbered("SELECT 'it''s ?' || ?") == "SELECT 'it''s ?' || $1"
    assert numbered("SELECT 1") == "SELECT 1"
    # Cached: the same string object comes back for the same statement.
    assert numbered("SELECT ? + ?") is numbered("SELECT ? + ?")


def test_url_password_is_redacted() -> None:
    assert redacted_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert "secret" not in repr(PostgresDatabase("postgresql://u:secret@h/db"))


def test_both_dialects_have_the_same_migrations() -> None:
    sqlite = [(m.version, m.name) for m in available_migrations("sqlite")]
    postgres = [(m.version, m.name) for m in available_migrations("postgresql")]
    assert sqlite, "no migrations found"
    assert postgres == sqlite


async def _sqlite_schema(path: Path) -> dict[str, list[str]]:
    db = SQLiteDatabase(str(path))
    await db.open()
    try:
        tables = await db.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        out = {}
        for row in tables:
            columns = await db.fetch(f"PRAGMA table_info({row[0]})")
            out[row[0]] = sorted(c["name"] for c in columns)
        return out
    finally:
        await db.close()


async def _postgres_schema(url: str) -> dict[str, list[str]]:
    db = PostgresDatabase(url, pool_size=1)
    await db.connect()
    try:
        rows = await db.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
        out: dict[str, list[str]] = {}
        for row in rows:
            out.setdefault(row["table_name"], []).append(row["column_name"])
        return {table: sorted(columns) for table, columns in out.items()}
    finally:
        await db.close()


async def test_migrated_schemas_have_the_same_tables_and_columns(
    tmp_path: Path, pg_url: str
) -> None:
    sqlite = await _sqlite_schema(tmp_path / "s.db")
    postgres = await _postgres_schema(pg_url)
    assert "spans" in sqlite and "schema_migrations" in sqlite
    assert sorted(postgres) == sorted(sqlite)
    for table, columns in sqlite.items():
        assert postgres[table] == columns, table


async def _index_names_pg(url: str) -> set[str]:
    db = PostgresDatabase(url, pool_size=1)
    await db.connect()
    try:
        rows = await db.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        return {r[0] for r in rows}
    finally:
        await db.close()


async def test_migrated_schemas_have_the_same_named_indexes(tmp_path: Path, pg_url: str) -> None:
    db = SQLiteDatabase(str(tmp_path / "s.db"))
    await db.open()
    try:
        rows = await db.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
        sqlite = {r[0] for r in rows}
    finally:
        await db.close()
    postgres = await _index_names_pg(pg_url)
    assert sqlite and sqlite <= postgres, sqlite - postgres


async def test_concurrent_migrations_apply_each_once(pg_cluster: PostgresCluster) -> None:
    url = pg_cluster.new_database(migrated=False)
    databases = [PostgresDatabase(url, pool_size=2) for _ in range(3)]
    try:
        results = await asyncio.gather(*(db.migrate() for db in databases))
        labels = [m.label for m in available_migrations("postgresql")]
        applied = [label for result in results for label in result]
        # Every migration applied by exactly one of the three; the others found it done.
        assert sorted(applied) == sorted(labels)
        assert await databases[0].applied_migrations() == labels
        rows = await databases[1].fetch("SELECT COUNT(*) FROM schema_migrations")
        assert rows[0][0] == len(labels)
        assert await databases[2].migrate() == []
    finally:
        for db in databases:
            await db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open, migrated database of either dialect."""
    db: SQLiteDatabase | PostgresDatabase
    if request.param == "sqlite":
        db = SQLiteDatabase(str(tmp_path / "t.db"))
    else:
        db = PostgresDatabase(request.getfixturevalue("pg_url"))
    await db.open()
    yield db
    await db.close()


async def test_connection_rowcount_rows_and_rollback(database: SQLDatabase) -> None:
    async with database.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO projects (id, name) VALUES (?, ?) ON CONFLICT DO NOTHING", ("p1", "One")
        )
        assert cursor.rowcount == 1
        cursor = await conn.execute(
            "INSERT INTO projects (id, name) VALUES (?, ?) ON CONFLICT DO NOTHING", ("p1", "One")
        )
        assert cursor.rowcount == 0
        await conn.executemany(
            "INSERT INTO projects (id, name) VALUES (?, ?)", [("p2", "Two"), ("p3", "Three")]
        )
        cursor = await conn.execute("UPDATE projects SET name = ? WHERE id != ?", ("X", "p1"))
        assert cursor.rowcount == 2
        cursor = await conn.execute("SELECT id, name FROM projects WHERE id = ?", ("p2",))
        row = await cursor.fetchone()
        assert (row["id"], row[1], list(row.keys())) == ("p2", "X", ["id", "name"])
        rows = await conn.execute_fetchall("SELECT id FROM projects ORDER BY id")
        assert [r[0] for r in rows] == ["p1", "p2", "p3"]
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await conn.execute("DELETE FROM projects")
            raise RuntimeError("undo")
    rows = await database.fetch("SELECT COUNT(*) AS n FROM projects")
    assert rows[0]["n"] == 3


async def test_a_constraint_violation_is_the_one_integrity_error(database: SQLDatabase) -> None:
    async with database.transaction() as conn:
        await conn.execute("INSERT INTO projects (id, name) VALUES (?, ?)", ("p1", "One"))
    with pytest.raises(IntegrityError):
        async with database.transaction() as conn:
            await conn.execute("INSERT INTO projects (id, name) VALUES (?, ?)", ("p1", "Again"))
    # Caught inside a savepoint, the transaction goes on (PostgreSQL would refuse it
    # after the error otherwise).
    async with database.transaction() as conn:
        with pytest.raises(IntegrityError):
            async with savepoint(conn):
                await conn.execute("INSERT INTO projects (id, name) VALUES (?, ?)", ("p1", "x"))
        await conn.execute("INSERT INTO projects (id, name) VALUES (?, ?)", ("p2", "Two"))
    rows = await database.fetch("SELECT id, name FROM projects ORDER BY id")
    assert [tuple(r) for r in rows] == [("p1", "One"), ("p2", "Two")]


async def test_dialect_fragments_agree(database: SQLDatabase) -> None:
    d = dialect_for(database.dialect)
    us = 1_764_657_123_456_789  # 2025-12-02T06:32:03.456789Z
    us_param = "CAST(? AS BIGINT)"
    sql = (
        f"SELECT {d.time_bucket('minute', us_param)} AS m,"
        f" {d.time_bucket('hour', us_param)} AS h, {d.time_bucket('day', us_param)} AS d,"
        f" {d.json_text('CAST(? AS TEXT)', 'a.b')} AS j,"
        f" ('HeLLo' {d.like_nocase} ?) AS l, {d.now_iso} AS now"
    )
    params: tuple[Any, ...] = (us, us, us, '{"a.b": "x", "c": 1}', "%ell%")
    row = (await database.fetch(sql, params))[0]
    assert row["m"] == "2025-12-02T06:32:00Z"
    assert row["h"] == "2025-12-02T06:00:00Z"
    assert row["d"] == "2025-12-02"
    assert row["j"] == "x"
    assert bool(row["l"])
    assert len(row["now"]) == len("2025-12-02T06:32:03.456Z") and row["now"].endswith("Z")
    async with database.transaction() as conn:
        await conn.executemany(
            "INSERT INTO projects (id, name) VALUES (?, ?)", [("a", "x"), ("b", "x"), ("c", "y")]
        )
    rows = await database.fetch(
        f"SELECT {d.group_concat('name', distinct=True)} AS names,"
        f" {d.count_if('name = ?')} AS xs, {d.total('LENGTH(id)')} AS t FROM projects",
        ("x",),
    )
    assert sorted(rows[0]["names"].split(",")) == ["x", "y"]
    assert rows[0]["xs"] == 2
    assert rows[0]["t"] == 3


def test_sqlite_integrity_error_is_the_shared_class() -> None:
    assert IntegrityError is sqlite3.IntegrityError


async def test_the_span_columns_are_the_postgresql_spans_table(pg_url: str) -> None:
    db = PostgresDatabase(pg_url, pool_size=1)
    await db.connect()
    try:
        rows = await db.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'spans' ORDER BY ordinal_position"
        )
    finally:
        await db.close()
    assert tuple(r[0] for r in rows) == SPAN_COLUMNS


def test_spanlab_migrate_applies_the_postgresql_migrations(pg_cluster: PostgresCluster) -> None:
    url = pg_cluster.new_database(migrated=False)
    command = [sys.executable, "-m", "gateway", "migrate", "--db", url]
    env = child_env()
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    last = available_migrations("postgresql")[-1].label
    assert f"{url}: schema at {last}" in first.stdout
    assert all(m.label in first.stdout for m in available_migrations("postgresql"))
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and f"schema at {last}" in again.stdout


def test_without_postgresql_the_tests_skip_but_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tests.postgres

    monkeypatch.setattr(tests.postgres, "pg_bin", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"):
        tests.postgres.require_postgres()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL tests"):
        tests.postgres.require_postgres()
