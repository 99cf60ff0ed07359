"""Cells' start and end writes are group-committed: many cells' writes in one
transaction, yet each committed (readable by another connection) when its call
returns, in the order asked, a cancelled caller's write kept, and a failed group
failing only its own callers. On SQLite and on PostgreSQL (the ``db_setting`` fixture)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.store.database import SQLiteDatabase
from gateway.store.group_commit import GroupCommit
from gateway.store.matrix import SqlMatrixStore
from gateway.store.postgres import PostgresDatabase
from gateway.store.stores import stores_for

CELLS = 32


class CountingDatabase:
    """A database of either dialect, counting its write transactions."""

    def __init__(self, inner: SQLiteDatabase | PostgresDatabase) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.transactions = 0

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.inner.fetch(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.transactions += 1
        async with self.inner.transaction() as conn:
            yield conn


@pytest.fixture
async def db(db_setting: str) -> AsyncIterator[CountingDatabase]:
    inner = stores_for(db_setting).database
    assert isinstance(inner, SQLiteDatabase | PostgresDatabase)
    await inner.open()
    database = CountingDatabase(inner)
    async with database.transaction() as conn:
        await conn.execute(
            "INSERT INTO experiments (id, name, original_span_id, original_trace_id,"
            " original_request, modified_request, status, created_at, updated_at, kind)"
            " VALUES ('e1', 'm', '', '', '{}', '{}', 'draft', 'c', 'u', 'matrix')"
        )
        await conn.executemany(
            "INSERT INTO experiment_runs (id, experiment_id, status, request, started_at,"
            " matrix_run_id, variant_id, input_id, repetition)"
            " VALUES (?, 'e1', 'pending', '{}', '', 'm1', 'v1', ?, 1)",
            [(f"c{i}", f"i{i}") for i in range(CELLS)],
        )
    database.transactions = 0
    yield database
    await inner.close()


async def status_elsewhere(db: CountingDatabase, cell_id: str) -> str:
    """The cell's status as another connection (another process) sees it."""
    sql = "SELECT status FROM experiment_runs WHERE id = ?"
    if isinstance(db.inner, PostgresDatabase):
        import asyncpg

        conn = await asyncpg.connect(db.inner.url)
        try:
            return str(await conn.fetchval(sql.replace("?", "$1"), cell_id))
        finally:
            await conn.close()
    assert isinstance(db.inner, SQLiteDatabase)
    with sqlite3.connect(db.inner.path) as lite:
        [[status]] = lite.execute(sql, (cell_id,))
    return str(status)


def finished(cell_id: str) -> dict[str, Any]:
    return {
        "id": cell_id,
        "status": "completed",
        "request": {"model": "m"},
        "output_text": "ok",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f"}}],
        "retries": 0,
    }


async def test_concurrent_cells_share_transactions_and_each_write_is_committed_on_return(
    db: CountingDatabase,
) -> None:
    store = SqlMatrixStore(db)
    seen: dict[str, tuple[str, str]] = {}

    async def cell(cell_id: str) -> None:
        await store.start_cell(cell_id)
        running = await status_elsewhere(db, cell_id)
        await store.finish_cell(finished(cell_id))
        seen[cell_id] = (running, await status_elsewhere(db, cell_id))

    await asyncio.gather(*(cell(f"c{i}") for i in range(CELLS)))
    assert seen == {f"c{i}": ("running", "completed") for i in range(CELLS)}
    # 64 writes: one transaction each before; grouped now.
    assert db.transactions <= CELLS // 2, db.transactions
    [cell] = [c for c in await store.cells("m1") if c["id"] == "c3"]
    assert cell["tool_calls"][0]["id"] == "call_1" and cell["started_at"]


async def test_a_start_and_an_end_in_one_group_keep_their_order(db: CountingDatabase) -> None:
    store = SqlMatrixStore(db)
    # Asked for in the same turn of the loop: the same group.
    await asyncio.gather(store.start_cell("c0"), store.finish_cell(finished("c0")))
    assert await status_elsewhere(db, "c0") == "completed"
    assert db.transactions == 1


async def test_a_cancelled_caller_still_has_its_write_committed(db: CountingDatabase) -> None:
    store = SqlMatrixStore(db)
    task = asyncio.create_task(store.finish_cell(finished("c1")))
    await asyncio.sleep(0)  # queued
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.start_cell("c2")  # a later write: committed after the earlier one
    assert await status_elsewhere(db, "c1") == "completed"


async def test_a_failed_group_fails_its_callers_and_the_next_group_goes_on(
    db: CountingDatabase,
) -> None:
    writes = GroupCommit(db)
    results = await asyncio.gather(
        writes.write("UPDATE experiment_runs SET status = 'running' WHERE id = ?", ("c4",)),
        writes.write("UPDATE no_such_table SET x = 1 WHERE id = ?", ("c5",)),
        return_exceptions=True,
    )
    # One group: the good write fails with the bad one (nothing half-written).
    assert all(isinstance(r, Exception) for r in results), results
    assert type(results[0]) is type(results[1])  # the database's error (no such table)
    assert await status_elsewhere(db, "c4") == "pending"  # the group was rolled back whole
    await writes.write("UPDATE experiment_runs SET status = 'running' WHERE id = ?", ("c4",))
    assert await status_elsewhere(db, "c4") == "running"
