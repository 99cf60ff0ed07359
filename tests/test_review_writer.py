"""Review finding on the span writer: a span must never vanish without a word."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span, SpanContext, new_span_id, new_trace_id, now_us
from gateway.metrics import Metrics
from gateway.store.database import SQLiteDatabase
from gateway.store.sqlite import SQLiteSpanStore
from gateway.writer.span_writer import SpanWriter


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
