"""Shutdown with a deadline: spans the writer could not store in time are saved,
redacted, to a spill file beside the database and stored at the next start."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span
from gateway.metrics import Metrics
from gateway.store.database import SQLiteDatabase
from gateway.store.sqlite import SQLiteSpanStore
from gateway.writer.span_writer import SpanWriter
from gateway.writer.spill import (
    replay_spill,
    spill_path_for,
    spill_paths_for,
    worker_spill_path,
    write_spill,
)
from tests.conftest import GatewayFactory
from tests.test_writer_faults import InProcessStore
from tests.writer_helpers import (
    BODY_SECRET,
    HEADER_SECRET,
    folder_bytes,
    make_span,
    stopped,
    writer_process_pid,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteSpanStore]:
    the_store = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "spill.db")))
    await the_store.db.open()
    yield the_store
    await the_store.db.close()


def process_writer(store: SQLiteSpanStore) -> SpanWriter:
    writer = SpanWriter(
        store,
        PriceTable(),
        Metrics(),
        process_db=store.db.file_path,
        spill_path=spill_path_for(store.db.file_path),
    )
    writer.start()
    return writer


async def ids_stored(store: SQLiteSpanStore) -> list[str]:
    rows = await store.db.fetch("SELECT span_id FROM spans ORDER BY start_us")
    return [row[0] for row in rows]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def file_mode(path: Path) -> int | None:
    """The file's permission bits, or None if there is no such file."""
    return path.stat().st_mode & 0o777 if path.exists() else None


def append(path: str, data: bytes) -> None:
    with Path(path).open("ab") as out:
        out.write(data)


def assert_no_secret(path: Path) -> None:
    data = path.read_bytes()
    for secret in (HEADER_SECRET, BODY_SECRET):
        assert secret.encode() not in data


async def test_a_writer_stuck_on_a_locked_database_is_spilled_at_the_deadline(
    store: SQLiteSpanStore, tmp_path: Path
) -> None:
    """`close` waited for the writer without limit: a database locked by someone else
    held the shutdown for as long as the lock. Now: at the deadline the spans not
    stored go to the spill file (redacted), and the next start stores them, once."""
    writer = process_writer(store)
    spans = [make_span(i, secrets=True) for i in range(30)]
    for span in spans[:10]:
        writer.submit(span)
    await asyncio.wait_for(writer.flush(), 30)
    pid = await writer_process_pid(writer)
    lock = sqlite3.connect(tmp_path / "spill.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        for span in spans[10:]:
            writer.submit(span)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.wait_for(writer.close(deadline_s=0.5), 10)
        assert time.monotonic() - started < 3
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert not alive(pid)  # killed, not left holding the spans
    spill = Path(str(tmp_path / "spill.db") + ".spill.jsonl")
    assert file_mode(spill) == 0o600  # it exists, and only its owner reads it
    assert_no_secret(spill)
    assert await ids_stored(store) == [s.context.span_id for s in spans[:10]]
    assert await replay_spill(store, str(spill)) == 20
    assert file_mode(spill) is None
    assert await ids_stored(store) == [s.context.span_id for s in spans]
    assert await replay_spill(store, str(spill)) == 0
    stored = await store.get_span(spans[20].context.span_id)
    assert stored is not None and stored["output_text"] == "a20"
    assert stored["usage"]["total_tokens"] == 15
    raw = folder_bytes(tmp_path)  # the database, its WAL, anything else
    assert HEADER_SECRET.encode() not in raw and BODY_SECRET.encode() not in raw


async def test_abandon_ends_the_drain_at_once(store: SQLiteSpanStore, tmp_path: Path) -> None:
    """A second SIGTERM/SIGINT during the drain sets ``abandon``: no waiting out the
    deadline."""
    writer = process_writer(store)
    pid = await writer_process_pid(writer)
    abandon = asyncio.Event()
    spans = [make_span(i) for i in range(5)]
    with stopped(pid):  # a writer process that hangs
        for span in spans:
            writer.submit(span)
        closing = asyncio.create_task(writer.close(deadline_s=60, abandon=abandon))
        await asyncio.sleep(0.3)
        assert not closing.done()
        started = time.monotonic()
        abandon.set()
        await asyncio.wait_for(closing, 5)
        assert time.monotonic() - started < 2
    spill = str(tmp_path / "spill.db") + ".spill.jsonl"
    assert await replay_spill(store, spill) == 5
    assert await ids_stored(store) == [s.context.span_id for s in spans]


async def test_the_writer_in_process_spills_what_it_holds_too(tmp_path: Path) -> None:
    store = InProcessStore(str(tmp_path / "local.db"))
    await store.db.open()
    try:
        store.gate.clear()  # every insert hangs
        writer = SpanWriter(
            store,
            PriceTable(),
            Metrics(),
            batch_size=3,
            spill_path=spill_path_for(store.db.file_path),
        )
        writer.start()
        spans = [make_span(i, secrets=True) for i in range(10)]
        for span in spans:
            writer.submit(span)
        await asyncio.sleep(0.1)
        await asyncio.wait_for(writer.close(deadline_s=0.3), 10)
        spill = tmp_path / "local.db.spill.jsonl"
        assert_no_secret(spill)
        store.gate.set()
        assert await replay_spill(store, str(spill)) == 10
        assert await ids_stored(store) == [s.context.span_id for s in spans]
    finally:
        await store.db.close()


async def test_a_second_spill_adds_to_the_first_and_odd_values_survive(
    store: SQLiteSpanStore, tmp_path: Path
) -> None:
    spill = str(tmp_path / "spill.db") + ".spill.jsonl"
    first = [make_span(i) for i in range(3)]
    second = [make_span(i) for i in range(3, 5)]
    second[0].http_status = 2**70  # not JSON's, nor SQLite's: kept as its outline
    write_spill(spill, first, PriceTable())
    write_spill(spill, second, PriceTable())
    assert await replay_spill(store, spill) == 5
    assert await ids_stored(store) == [s.context.span_id for s in [*first, *second]]
    odd = await store.get_span(second[0].context.span_id)
    assert odd is not None and odd["error"]["code"] == "span_not_stored_whole"


async def test_a_spill_file_is_stored_when_the_gateway_starts(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    spans: list[Span] = [make_span(i) for i in range(4)]
    spill = tmp_path / "spanlab.db.spill.jsonl"
    write_spill(str(spill), spans, PriceTable())
    gateway = await make_gateway()
    for span in spans:
        r = await gateway.client.get(f"/spans/{span.context.span_id}")
        assert r.status_code == 200, r.text
    assert file_mode(spill) is None


async def test_a_spill_that_cannot_be_stored_now_is_kept_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spill = str(tmp_path / "local.db.spill.jsonl")
    spans = [make_span(0), make_span(1)]
    write_spill(spill, spans, PriceTable())
    append(spill, b'["a row", "with too few columns"]\n')
    store = FailingStore(str(tmp_path / "local.db"))
    await store.db.open()
    try:
        assert await replay_spill(store, spill) == 0
        assert file_mode(Path(spill)) is not None
        store.fail = False
        assert await replay_spill(store, spill) == 2
        assert file_mode(Path(spill)) is None
        assert await ids_stored(store) == [s.context.span_id for s in spans]
        assert any("line 4 is not a whole row" in r.getMessage() for r in caplog.records)
    finally:
        await store.db.close()


class FailingStore(InProcessStore):
    fail = True

    async def insert_spans(self, records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
        if self.fail:
            raise sqlite3.OperationalError("database or disk is full")
        return await super().insert_spans(records)


async def test_workers_spill_apart_and_every_spill_is_stored_at_the_next_start(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Each worker of `serve --workers` spills to a file of its own (they shut down at
    once); a start with one process (or the supervisor) stores them all."""
    db = str(tmp_path / "spanlab.db")
    spill = str(spill_path_for(db))
    assert worker_spill_path(spill, 2) == db + ".spill.w2.jsonl"
    by_worker = {worker: [make_span(10 * worker + i) for i in range(2)] for worker in (1, 2)}
    for worker, spans in by_worker.items():
        write_spill(worker_spill_path(spill, worker), spans, PriceTable())
    assert spill_paths_for(spill) == [spill, *(worker_spill_path(spill, w) for w in (1, 2))]
    gateway = await make_gateway()
    for span in [*by_worker[1], *by_worker[2]]:
        r = await gateway.client.get(f"/spans/{span.context.span_id}")
        assert r.status_code == 200, r.text
    assert spill_paths_for(spill) == [spill]  # the workers' files are gone
