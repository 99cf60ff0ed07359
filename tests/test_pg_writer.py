"""The span writer into PostgreSQL, in the gateway's process (no writer process: the
database is a server): it batches into the store through the pool, keeps retrying
while the database cannot be reached and stores everything once it can, and at a
shutdown that cannot wait saves what is left to the spill file, stored at the next
start."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.capture.pricing import PriceTable
from gateway.metrics import Metrics
from gateway.store.postgres import PostgresDatabase
from gateway.store.postgres_spans import PostgresSpanStore
from gateway.writer.span_writer import SpanWriter
from gateway.writer.spill import replay_spill, spill_path_for
from tests.postgres import PostgresCluster
from tests.writer_helpers import make_span, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresSpanStore]:
    s = PostgresSpanStore(PostgresDatabase(pg_url, pool_size=2))
    await s.db.open()
    yield s
    await s.db.close()


async def _admin(cluster: PostgresCluster, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(cluster.url("postgres"))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def cut_off(cluster: PostgresCluster, url: str, allow: bool) -> None:
    """Refuse (or allow again) new connections to the test's database; when refusing,
    end the ones open (the pool's): as a database restarting or a network cut does."""
    name = url.rsplit("/", 1)[1]
    statements = [f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'true' if allow else 'false'}"]
    if not allow:
        statements.append(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
    await _admin(cluster, *statements)


async def test_the_writer_stores_into_postgresql_in_batches(store: PostgresSpanStore) -> None:
    writer = SpanWriter(store, PriceTable(), Metrics(), batch_size=50)
    writer.start()
    try:
        for i in range(120):
            writer.submit(make_span(i))
        await writer.flush(within=20)
        assert writer.written == 120
        assert await store.count_spans() == 120
    finally:
        await writer.close(5)


async def test_the_writer_retries_until_postgresql_is_back(
    store: PostgresSpanStore, pg_cluster: PostgresCluster, pg_url: str
) -> None:
    writer = SpanWriter(store, PriceTable(), Metrics())
    writer.start()
    try:
        writer.submit(make_span(0))
        await writer.flush(within=10)
        await cut_off(pg_cluster, pg_url, allow=False)
        for i in range(1, 11):
            writer.submit(make_span(i))
        await wait_for(lambda: writer.failing, 10)  # it tried, and failed, and waits
        assert writer.written == 1
        await cut_off(pg_cluster, pg_url, allow=True)
        await writer.flush(within=20)
        assert not writer.failing
        assert writer.written == 11
        assert await store.count_spans() == 11
    finally:
        await cut_off(pg_cluster, pg_url, allow=True)
        await writer.close(5)


async def test_a_shutdown_that_cannot_reach_postgresql_spills_and_the_next_start_stores(
    store: PostgresSpanStore, pg_cluster: PostgresCluster, pg_url: str, tmp_path: Path
) -> None:
    spill = str(tmp_path / "spanlab.spill.jsonl")
    writer = SpanWriter(store, PriceTable(), Metrics(), spill_path=spill)
    writer.start()
    await cut_off(pg_cluster, pg_url, allow=False)
    try:
        for i in range(7):
            writer.submit(make_span(i))
        await wait_for(lambda: writer.failing, 10)
        await writer.close(0.5)  # the deadline passes: the spans go to the spill file
        assert os.path.exists(spill)  # noqa: ASYNC240
    finally:
        await cut_off(pg_cluster, pg_url, allow=True)
    assert await store.count_spans() == 0
    assert await replay_spill(store, spill) == 7
    assert await store.count_spans() == 7
    assert not os.path.exists(spill)  # noqa: ASYNC240


def test_a_gateway_on_postgresql_spills_into_its_working_directory() -> None:
    assert spill_path_for(None, "postgresql") == "spanlab.spill.jsonl"
    assert spill_path_for("/data/spanlab.db", "sqlite") == "/data/spanlab.db.spill.jsonl"
    assert spill_path_for(None) is None  # an in-memory SQLite database: nowhere
