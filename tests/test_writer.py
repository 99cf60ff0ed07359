"""The background writer: every span submitted is stored once, in order, whatever fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span, SpanContext, new_span_id, new_trace_id, now_us
from gateway.metrics import Metrics
from gateway.store.database import SQLiteDatabase
from gateway.store.sqlite import SQLiteSpanStore
from gateway.writer.span_writer import SpanWriter


def make_span(i: int) -> Span:
    span = Span(
        context=SpanContext(trace_id=new_trace_id(), span_id=new_span_id()),
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=now_us() + i,  # submit order = start order
        request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
        response_body=b'{"choices": [{"message": {"content": "a"}}]}',
        http_status=200,
    )
    span.end_us = span.start_us + 1000
    return span


class FlakyStore(SQLiteSpanStore):
    """Fails the insert calls whose number is in ``fail``; records each batch stored."""

    def __init__(self, path: str, fail: set[int], delay: float = 0.0) -> None:
        super().__init__(SQLiteDatabase(path))
        self.fail = fail
        self.delay = delay
        self.calls = 0
        self.batches: list[list[str]] = []

    async def insert_spans(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls in self.fail:
            raise OSError("disk on fire")
        await super().insert_spans(records)
        self.batches.append([r["span_id"] for r in records])


async def stored_ids(store: SQLiteSpanStore) -> list[str]:
    rows = await store.db.fetch("SELECT span_id FROM spans ORDER BY start_us")
    return [row[0] for row in rows]


async def run_writer(
    tmp_path: Path, spans: list[Span], *, fail: set[int], batch_size: int, delay: float = 0.0
) -> tuple[FlakyStore, SpanWriter]:
    store = FlakyStore(str(tmp_path / "w.db"), fail, delay)
    await store.db.open()
    writer = SpanWriter(store, PriceTable(), Metrics(), batch_size=batch_size)
    writer.start()
    for i, span in enumerate(spans):
        writer.submit(span)
        if i % 7 == 0:
            await asyncio.sleep(0)  # let batches form while spans keep coming
    await asyncio.wait_for(writer.flush(), 30)
    await writer.close()
    return store, writer


async def test_every_span_is_stored_once_in_order_through_failures(tmp_path: Path) -> None:
    spans = [make_span(i) for i in range(300)]
    store, writer = await run_writer(tmp_path, spans, fail={2, 3, 6}, batch_size=16, delay=0.001)
    try:
        want = [s.context.span_id for s in spans]
        assert await stored_ids(store) == want
        # Batches were committed in submit order, each span exactly once.
        assert [i for batch in store.batches for i in batch] == want
        assert writer.written == len(spans)
        assert all(len(b) <= 16 for b in store.batches)
        assert writer.metrics.write_errors._value.get() == 3
    finally:
        await store.db.close()


async def test_a_lone_span_is_stored_at_once(tmp_path: Path) -> None:
    span = make_span(0)
    store, writer = await run_writer(tmp_path, [span], fail=set(), batch_size=500)
    try:
        assert store.batches == [[span.context.span_id]]
        assert writer.written == 1
    finally:
        await store.db.close()


async def test_close_stores_what_is_still_queued(tmp_path: Path) -> None:
    store = FlakyStore(str(tmp_path / "w.db"), {1}, delay=0.001)
    await store.db.open()
    writer = SpanWriter(store, PriceTable(), Metrics(), batch_size=10)
    writer.start()
    spans = [make_span(i) for i in range(55)]
    for span in spans:
        writer.submit(span)
    await asyncio.wait_for(writer.close(), 30)
    try:
        assert await stored_ids(store) == [s.context.span_id for s in spans]
    finally:
        await store.db.close()


async def test_a_span_whose_record_cannot_be_built_is_stored_as_its_outline(
    tmp_path: Path,
) -> None:
    """The in-process path (a store other than a plain SQLite file): a value JSON cannot
    encode (a lone surrogate) costs that span its bodies, not the writer its progress."""
    spans = [make_span(i) for i in range(3)]
    spans[1].request = {"model": "gpt-4o-mini", "messages": [{"content": "\ud800"}]}
    store, writer = await run_writer(tmp_path, spans, fail=set(), batch_size=16)
    try:
        assert await stored_ids(store) == [s.context.span_id for s in spans]
        assert writer.written == 3
        rows = await store.db.fetch("SELECT span_id, request, error FROM spans ORDER BY start_us")
        assert [row[2] is not None and "span_not_stored_whole" in row[2] for row in rows] == [
            False,
            True,
            False,
        ]
        assert rows[1][1] is None and rows[0][1] is not None
    finally:
        await store.db.close()


async def test_two_spans_with_one_id_are_both_stored_and_a_resend_stays_one_row(
    tmp_path: Path,
) -> None:
    """In the gateway's process: a different span under a taken id gets a new one, the
    same span sent again is one row."""
    first, second, other = make_span(0), make_span(1), make_span(2)
    second.context.span_id = first.context.span_id
    store, writer = await run_writer(
        tmp_path, [first, other, second, other], fail=set(), batch_size=1
    )
    try:
        rows = await store.db.fetch("SELECT span_id, trace_id, attributes FROM spans")
        assert len(rows) == 3
        by_trace = {row[1]: row for row in rows}
        assert by_trace[first.context.trace_id][0] == first.context.span_id
        moved = by_trace[second.context.trace_id]
        assert moved[0] != first.context.span_id
        assert orjson.loads(moved[2]) == {"spanlab.original_span_id": first.context.span_id}
        assert by_trace[other.context.trace_id][0] == other.context.span_id
        assert writer.written == 4
    finally:
        await store.db.close()


async def test_a_span_submitted_as_the_writer_stops_is_not_lost_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Between the writer task's last look at the queue and `close` marking the writer
    closed, other tasks run (a call cut at shutdown records its span then): a span
    submitted there stayed in the queue forever, neither stored nor reported."""
    store = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "writer.db")))
    await store.db.open()
    writer = SpanWriter(store, PriceTable(), Metrics())
    writer.start()
    span = Span(
        context=SpanContext(trace_id=new_trace_id(), span_id=new_span_id()),
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=now_us(),
    )
    span.end_us = now_us()
    assert writer._task is not None
    # Runs right after the task ends, before `close` resumes.
    writer._task.add_done_callback(lambda task: writer.submit(span))
    with caplog.at_level(logging.ERROR, logger="gateway.writer.span_writer"):
        await writer.close()
    stored = await store.get_span(span.context.span_id)
    await store.db.close()
    reported = any(span.context.span_id in r.getMessage() for r in caplog.records)
    assert stored is not None or reported
