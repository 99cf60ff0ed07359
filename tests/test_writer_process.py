"""The writer process (gateway/writer/process.py): the same promises as the writer in the
gateway's own process, across a process boundary and its failures."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import credential_values, redact_headers
from gateway.capture.span import (
    Span,
    finalize,
    to_record,
)
from gateway.metrics import Metrics
from gateway.store.database import SQLiteDatabase
from gateway.store.spans import span_from_row
from gateway.store.sqlite import SQLiteSpanStore
from gateway.writer.span_writer import SpanWriter
from tests.writer_helpers import make_span

SECRET = "sk-canary-0123456789abcdefXYZ"
BODY_SECRET = "body-canary-9876543210"


class Written:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.records: list[dict[str, Any]] = []

    def __call__(self, batch: Sequence[Span], records: Sequence[dict[str, Any]]) -> None:
        self.spans += batch
        self.records += records


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteSpanStore]:
    the_store = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "p.db")))
    await the_store.db.open()
    yield the_store
    await the_store.db.close()


def process_writer(store: SQLiteSpanStore, written: Written | None = None, **kw: Any) -> SpanWriter:
    db = store.db.file_path
    assert db is not None
    writer = SpanWriter(store, PriceTable(), Metrics(), on_written=written, process_db=db, **kw)
    writer.start()
    return writer


def folder_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


async def stored_ids(store: SQLiteSpanStore) -> list[str]:
    rows = await store.db.fetch("SELECT span_id FROM spans ORDER BY start_us")
    return [row[0] for row in rows]


def test_only_a_sqlite_file_gets_a_process(tmp_path: Path) -> None:
    assert SQLiteDatabase(str(tmp_path / "a.db")).file_path == str(tmp_path / "a.db")
    assert SQLiteDatabase(":memory:").file_path is None


async def test_every_span_is_stored_and_announced_with_what_the_process_derived(
    store: SQLiteSpanStore,
) -> None:
    written = Written()
    writer = process_writer(store, written, batch_size=50)
    spans = [make_span(i) for i in range(400)]
    for i, span in enumerate(spans):
        writer.submit(span)
        if i % 9 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(writer.flush(), 30)
    # flush: all of it stored and readable, nothing in flight.
    assert await stored_ids(store) == [s.context.span_id for s in spans]
    assert writer.depth == 0
    assert writer.written == 400
    assert [s.context.span_id for s in written.spans] == [s.context.span_id for s in spans]
    first = written.records[0]
    assert first["span_id"] == spans[0].context.span_id
    assert first["output_text"] == "a0"
    assert (first["prompt_tokens"], first["completion_tokens"]) == (10, 5)
    assert first["cost_usd"] is not None and first["cost_usd"] > 0
    assert "request" not in first  # the summary columns only
    # The gateway's own spans get the derived tokens and cost (for the metrics).
    assert (written.spans[0].prompt_tokens, written.spans[0].total_tokens) == (10, 15)
    assert written.spans[0].cost_usd == first["cost_usd"]
    stored = await store.get_span(spans[7].context.span_id)
    assert stored is not None and stored["output_text"] == "a7"
    assert stored["response"]["usage"]["total_tokens"] == 15
    await asyncio.wait_for(writer.close(), 30)


async def test_secrets_never_reach_the_database_or_the_announced_records(
    store: SQLiteSpanStore, tmp_path: Path
) -> None:
    written = Written()
    writer = process_writer(store, written)
    span = make_span(0)
    headers = [("authorization", f"Bearer {SECRET}")]
    span.request_headers = redact_headers(headers)
    span.secrets = credential_values(headers)
    span.request = {"model": "m", "api_key": BODY_SECRET, "prompt": f"echo {SECRET}"}
    span.response_body = f'{{"error": {{"message": "bad key {SECRET} / {BODY_SECRET}"}}}}'.encode()
    span.http_status = 401
    span.status = "error"
    writer.submit(span)
    await asyncio.wait_for(writer.close(), 30)
    raw = folder_bytes(tmp_path)  # the database, its WAL and anything else there
    assert await stored_ids(store) == [span.context.span_id]
    for secret in (SECRET, BODY_SECRET):
        assert secret.encode() not in raw
        assert secret not in repr(written.records)


async def test_a_killed_process_is_replaced_and_nothing_is_lost(store: SQLiteSpanStore) -> None:
    writer = process_writer(store, batch_size=20)
    spans = [make_span(i) for i in range(300)]
    for span in spans[:100]:
        writer.submit(span)
    await asyncio.wait_for(writer.flush(), 30)
    child = writer._child
    assert child is not None
    child.proc.kill()
    for span in spans[100:]:
        writer.submit(span)
    await asyncio.wait_for(writer.flush(), 30)
    assert writer._child is not child
    assert sorted(await stored_ids(store)) == sorted(s.context.span_id for s in spans)
    assert writer.written >= 300
    await asyncio.wait_for(writer.close(), 30)


async def _wait_for(condition: Any) -> None:
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110  (state in another process)
            await asyncio.sleep(0.01)


async def test_a_failing_transaction_is_retried_and_holds_back_new_calls(
    store: SQLiteSpanStore, tmp_path: Path
) -> None:
    # A trigger makes every insert fail until the flag row is gone (a full disk, say).
    setup = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    setup.executescript(
        "CREATE TABLE fail_flag (x);"
        "INSERT INTO fail_flag VALUES (1);"
        "CREATE TRIGGER fail_insert BEFORE INSERT ON spans"
        " WHEN EXISTS (SELECT 1 FROM fail_flag)"
        " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;"
    )
    writer = process_writer(store, queue_max=10)
    spans = [make_span(i) for i in range(30)]
    for span in spans:
        writer.submit(span)
    await _wait_for(lambda: writer.metrics.write_errors._value.get() >= 2)
    room = asyncio.create_task(writer.wait_for_room())
    await asyncio.sleep(0.05)
    assert not room.done()  # back-pressure: the unstored spans count, in flight too
    assert writer.depth == 30
    setup.execute("DELETE FROM fail_flag")
    setup.close()
    await asyncio.wait_for(room, 30)
    await asyncio.wait_for(writer.flush(), 30)
    assert await stored_ids(store) == [s.context.span_id for s in spans]
    await asyncio.wait_for(writer.close(), 30)


async def test_a_span_that_cannot_be_stored_whole_keeps_its_outline_and_holds_nothing_back(
    store: SQLiteSpanStore,
) -> None:
    spans = [make_span(i) for i in range(6)]
    # SQLite refuses an integer past 64 bits (found when the transaction runs) ...
    spans[1].http_status = 2**70
    # ... and JSON cannot encode a lone surrogate (found when the record is built).
    spans[3].request = {"model": "gpt-4o-mini", "messages": [{"content": "\ud800"}]}
    spans[3].request_model = "model-\ud800"
    writer = process_writer(store)
    for span in spans:
        writer.submit(span)
    await asyncio.wait_for(writer.flush(), 30)
    assert await stored_ids(store) == [s.context.span_id for s in spans]
    rows = await store.db.fetch(
        "SELECT span_id, http_status, request_model, request, output_text, error"
        " FROM spans ORDER BY start_us"
    )
    outlined = {row[0]: row for row in rows if row[5] and "span_not_stored_whole" in row[5]}
    assert set(outlined) == {spans[1].context.span_id, spans[3].context.span_id}
    _, status, model, request, output, _ = outlined[spans[1].context.span_id]
    assert (status, model, request, output) == (None, "gpt-4o-mini", None, None)
    _, status, model, request, _, _ = outlined[spans[3].context.span_id]
    assert (status, model, request) == (200, "model-?", None)
    # The others are whole.
    assert all(row[4] and row[5] is None for row in rows if row[0] not in outlined)
    assert writer.depth == 0
    await asyncio.wait_for(writer.close(), 30)


async def test_close_stores_everything_and_stops_the_process(store: SQLiteSpanStore) -> None:
    writer = process_writer(store, batch_size=7)
    spans = [make_span(i) for i in range(500)]
    for span in spans:
        writer.submit(span)
    child_seen: list[Any] = []
    await asyncio.sleep(0)
    await _wait_for(lambda: writer._child is not None)
    child_seen.append(writer._child)
    await asyncio.wait_for(writer.close(), 30)
    assert await stored_ids(store) == [s.context.span_id for s in spans]
    assert child_seen[0].proc.returncode == 0
    assert writer._child is None


async def test_a_span_the_gateway_finalized_already_is_stored_the_same(
    store: SQLiteSpanStore,
) -> None:
    writer = process_writer(store)
    span = make_span(3)
    expected = span_from_row(to_record(finalized(span)))
    writer.submit(span)
    await asyncio.wait_for(writer.close(), 30)
    stored = await store.get_span(span.context.span_id)
    assert stored is not None
    assert {k: stored[k] for k in expected} == expected


def finalized(span: Span) -> Span:
    finalize(span, PriceTable())
    return span


async def test_values_marshal_does_not_know_still_go_through(store: SQLiteSpanStore) -> None:
    writer = process_writer(store)
    span = make_span(0)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    span.context.attributes = {"at": when}
    writer.submit(span)
    await asyncio.wait_for(writer.close(), 30)
    stored = await store.get_span(span.context.span_id)
    assert stored is not None
    assert stored["attributes"] == {"at": "2026-01-02T03:04:05+00:00"}


async def test_two_spans_with_one_id_are_both_stored_and_a_resend_stays_one_row(
    store: SQLiteSpanStore,
) -> None:
    """Through the writer process: a different span under a taken id gets a new one
    (the live view announces the id stored), the same span sent again is one row."""
    written = Written()
    writer = process_writer(store, written)
    first, second, other = make_span(0), make_span(1), make_span(2)
    second.context.span_id = first.context.span_id
    for span in (first, other):
        writer.submit(span)
    await asyncio.wait_for(writer.flush(), 30)
    for span in (second, other):  # `other` again: a resend after a process restart
        writer.submit(span)
    await asyncio.wait_for(writer.flush(), 30)
    rows = await store.db.fetch("SELECT span_id, trace_id, attributes FROM spans")
    assert len(rows) == 3
    by_trace = {row[1]: row for row in rows}
    assert by_trace[first.context.trace_id][0] == first.context.span_id
    moved = by_trace[second.context.trace_id]
    assert moved[0] != first.context.span_id
    assert orjson.loads(moved[2]) == {"spanlab.original_span_id": first.context.span_id}
    assert by_trace[other.context.trace_id][0] == other.context.span_id
    announced = [r["span_id"] for r in written.records]
    assert announced[2] == moved[0]
    await asyncio.wait_for(writer.close(), 30)
