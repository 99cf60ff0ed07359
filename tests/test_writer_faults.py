"""The span writer on a bad day: a full disk, a hung writer process, huge spans.

A full disk is SQLite's own SQLITE_FULL ("database or disk is full"), made with
``PRAGMA max_page_count`` at the database's current size: SQLite then rolls the
transaction back by itself, as it does when the disk is really full.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.pricing import PriceTable
from gateway.metrics import Metrics
from gateway.store.database import SQLiteDatabase
from gateway.store.sqlite import SQLiteSpanStore
from gateway.writer.span_writer import SpanWriter
from tests.conftest import GatewayFactory
from tests.writer_helpers import (
    disk_full_for_writer_process,
    fill,
    make_room,
    make_span,
    stopped,
    wait_for,
    writer_process_pid,
)

pytestmark = pytest.mark.slow

DISK_FULL = "database or disk is full"


class InProcessStore(SQLiteSpanStore):
    """A SQLite store the writer runs in the gateway's process for (not a plain
    `SQLiteSpanStore`); ``gate``, when cleared, holds every insert (a hung disk)."""

    def __init__(self, path: str) -> None:
        super().__init__(SQLiteDatabase(path))
        self.gate = asyncio.Event()
        self.gate.set()

    async def insert_spans(self, records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
        await self.gate.wait()
        return await super().insert_spans(records)


@pytest.fixture
async def local_store(tmp_path: Path) -> AsyncIterator[InProcessStore]:
    store = InProcessStore(str(tmp_path / "local.db"))
    await store.db.open()
    yield store
    await store.db.close()


@pytest.fixture
async def file_store(tmp_path: Path) -> AsyncIterator[SQLiteSpanStore]:
    store = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "process.db")))
    await store.db.open()
    yield store
    await store.db.close()


def writer_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "gateway.writer.span_writer" and r.levelno >= logging.ERROR
    ]


async def count(store: SQLiteSpanStore) -> int:
    return await store.count_spans()


# --- a full disk ------------------------------------------------------------------------


async def test_a_full_disk_in_process_is_logged_once_as_what_it_is(
    local_store: InProcessStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite rolled back already, so the writer's own ROLLBACK failed with "no
    transaction is active" and that was the error reported (with a traceback per
    retry); now: the real error, once, and once more when it works again."""
    db = tmp_path / "local.db"
    pages = fill(db, 4)
    await local_store.db.writer.execute_fetchall(f"PRAGMA max_page_count = {pages}")
    writer = SpanWriter(local_store, PriceTable(), Metrics(), batch_size=10)
    writer.start()
    spans = [make_span(i, body_bytes=10_000) for i in range(40)]
    with caplog.at_level(logging.DEBUG, logger="gateway.writer.span_writer"):
        for span in spans:
            writer.submit(span)
        await wait_for(lambda: writer.metrics.write_errors._value.get() >= 4)
        errors = writer_errors(caplog)
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert DISK_FULL in errors[0].getMessage()
        assert "no transaction is active" not in errors[0].getMessage()
        assert writer.failing and writer.last_error is not None
        assert DISK_FULL in writer.last_error
        make_room(db)
        await asyncio.wait_for(writer.flush(), 30)
    assert await count(local_store) == len(spans)
    assert not writer.failing
    assert len(writer_errors(caplog)) == 1
    assert any("works again" in r.getMessage() for r in caplog.records)
    await writer.close()


async def test_a_full_disk_in_the_writer_process_is_logged_once_as_what_it_is(
    file_store: SQLiteSpanStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "process.db"
    disk_full_for_writer_process(monkeypatch, tmp_path, fill(db, 4))
    process_db = file_store.db.file_path
    assert process_db is not None
    writer = SpanWriter(file_store, PriceTable(), Metrics(), batch_size=10, process_db=process_db)
    writer.start()
    spans = [make_span(i, body_bytes=10_000) for i in range(40)]
    with caplog.at_level(logging.DEBUG, logger="gateway.writer.span_writer"):
        for span in spans:
            writer.submit(span)
        # Past ISOLATE_AFTER failures the process also probes the rows one by one: on a
        # full disk that probe fails too, and must not stop the process.
        await wait_for(lambda: writer.metrics.write_errors._value.get() >= 4)
        errors = writer_errors(caplog)
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert DISK_FULL in errors[0].getMessage()
        make_room(db)
        await asyncio.wait_for(writer.flush(), 30)
    assert await count(file_store) == len(spans)
    assert len(writer_errors(caplog)) == 1
    assert any("works again" in r.getMessage() for r in caplog.records)
    await asyncio.wait_for(writer.close(), 30)


async def test_a_transaction_on_a_full_disk_raises_the_real_error(
    local_store: InProcessStore, tmp_path: Path
) -> None:
    pages = fill(tmp_path / "local.db", 1)
    await local_store.db.writer.execute_fetchall(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(Exception, match=DISK_FULL):
        async with local_store.db.transaction() as conn:
            await conn.execute("INSERT INTO filler VALUES (zeroblob(1024 * 1024))")
    assert not local_store.db.writer.in_transaction


# --- bounded waits and health -------------------------------------------------------------


async def test_an_experiment_waiting_on_a_hung_writer_gets_503_and_health_says_so(
    make_gateway: GatewayFactory,
) -> None:
    """Experiment create waited for `writer.flush()` without limit (hung for as long as
    the writer did), and /healthz said ok with the queue growing."""
    gateway = await make_gateway(flush_timeout_s=0.5)
    r = await gateway.client.post("/v1/chat/completions", json=CHAT)
    await gateway.flush()
    health = (await gateway.client.get("/healthz")).json()
    assert health["status"] == "ok" and health["problems"] == []
    pid = await writer_process_pid(gateway.state.writer)
    with stopped(pid):
        r = await gateway.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200
        span_id = r.headers["x-spanlab-span-id"]
        started = asyncio.get_running_loop().time()
        r = await gateway.client.post("/experiments", json={"original_span_id": span_id})
        waited = asyncio.get_running_loop().time() - started
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "span_writer_behind"
        assert error["type"] == "server_error"
        assert "not stored yet" in error["message"]
        assert r.headers["retry-after"] == "5"
        assert 0.4 < waited < 5
        await asyncio.sleep(0.6)  # nothing stored for longer than flush_timeout_s
        r = await gateway.client.get("/healthz")
        assert r.status_code == 200
        health = r.json()
        assert health["status"] == "degraded"
        assert health["span_queue_depth"] == 1
        assert health["span_queue_bytes"] > 0
        assert any("no span stored" in p for p in health["problems"])
    # Once it runs again, so does everything.
    r = await gateway.client.post("/experiments", json={"original_span_id": span_id})
    assert r.status_code == 201, r.text
    health = (await gateway.client.get("/healthz")).json()
    assert health["status"] == "ok"


async def test_health_reports_the_last_write_error(
    make_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "spanlab.db"
    gateway = await make_gateway()
    await gateway.flush()
    # A full disk from the next writer process on: replace the running one.
    disk_full_for_writer_process(monkeypatch, tmp_path, fill(db, 2))
    writer = gateway.state.writer
    pid = await writer_process_pid(writer)
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: writer._child is not None and writer._child.proc.pid != pid)
    r = await gateway.client.post("/v1/chat/completions", json={**CHAT, "pad": "y" * 50_000})
    assert r.status_code == 200
    await wait_for(lambda: writer.last_error is not None and DISK_FULL in writer.last_error)
    health = (await gateway.client.get("/healthz")).json()
    assert health["status"] == "degraded"
    assert health["writer_failing"] is True
    assert DISK_FULL in health["last_write_error"]
    assert health["last_write_error_at"].endswith("Z")
    assert any(DISK_FULL in p for p in health["problems"])
    make_room(db)
    await asyncio.wait_for(gateway.flush(), 30)
    health = (await gateway.client.get("/healthz")).json()
    assert health["status"] == "ok" and health["writer_failing"] is False
    assert DISK_FULL in health["last_write_error"]  # the last one stays visible


# --- the queue bounded in bytes -----------------------------------------------------------


async def test_the_queue_is_bounded_in_bytes_too(local_store: InProcessStore) -> None:
    """1 MB spans with a hung writer grew the gateway by 400 MB at 400 queued (far
    below the 100,000-span bound): past write_queue_max_bytes new calls wait."""
    local_store.gate.clear()
    writer = SpanWriter(
        local_store, PriceTable(), Metrics(), queue_max_bytes=5 * 1024 * 1024, batch_size=2
    )
    writer.start()
    spans = [make_span(i, body_bytes=1024 * 1024) for i in range(8)]
    for span in spans[:4]:
        writer.submit(span)
    await writer.wait_for_room()  # 4 MB: room still
    writer.submit(spans[4])
    assert writer.depth_bytes > 5 * 1024 * 1024
    room = asyncio.create_task(writer.wait_for_room())
    await asyncio.sleep(0.1)
    assert not room.done()  # back-pressure at 5 spans, far below queue_max
    local_store.gate.set()
    await asyncio.wait_for(room, 30)
    for span in spans[5:]:
        writer.submit(span)
    await asyncio.wait_for(writer.flush(), 30)
    assert await count(local_store) == len(spans)
    assert writer.depth_bytes == 0
    await writer.close()


async def test_the_byte_bound_counts_spans_in_the_writer_process_too(
    file_store: SQLiteSpanStore,
) -> None:
    process_db = file_store.db.file_path
    assert process_db is not None
    writer = SpanWriter(
        file_store,
        PriceTable(),
        Metrics(),
        queue_max_bytes=3 * 1024 * 1024,
        process_db=process_db,
    )
    writer.start()
    pid = await writer_process_pid(writer)
    spans = [make_span(i, body_bytes=1024 * 1024) for i in range(4)]
    with stopped(pid):
        for span in spans[:3]:
            writer.submit(span)
        room = asyncio.create_task(writer.wait_for_room())
        await asyncio.sleep(0.1)
        assert not room.done()
        assert writer.depth == 3
    await asyncio.wait_for(room, 30)
    writer.submit(spans[3])
    await asyncio.wait_for(writer.flush(), 30)
    assert await count(file_store) == len(spans)
    await asyncio.wait_for(writer.close(), 30)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
