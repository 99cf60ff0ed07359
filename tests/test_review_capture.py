"""Review findings on capture and storage: each test pins a defect that was fixed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span, SpanContext, finalize, new_span_id, new_trace_id, to_record
from gateway.store.database import SQLiteDatabase
from gateway.store.spans import SpanFilter
from gateway.store.sqlite import SQLiteSpanStore

T0 = 1_700_000_000_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteSpanStore]:
    s = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "review.db")))
    await s.db.open()
    yield s
    await s.db.close()


def chat_span(response: dict[str, object], request: dict[str, object] | None = None) -> Span:
    span = Span(
        context=SpanContext(trace_id=new_trace_id(), span_id=new_span_id()),
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=T0,
        request_model="gpt-4o-mini",
        request=request or {"model": "gpt-4o-mini", "messages": []},
        response_body=orjson.dumps(response),
        http_status=200,
    )
    span.end_us = T0 + 1000
    return span


async def test_usage_counts_out_of_range_do_not_fail_the_write(store: SQLiteSpanStore) -> None:
    """An upstream's usage of 1e300 became a 1000-digit int that SQLite cannot bind: the
    insert failed, and the writer retried that batch forever (no span stored after it,
    then every call blocked on the full queue, and shutdown never finished)."""
    span = chat_span({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1e300}})
    finalize(span, PriceTable())
    await store.insert_spans([to_record(span)])
    stored = await store.get_span(span.context.span_id)
    assert stored is not None
    assert stored["usage"]["prompt_tokens"] is None


def test_a_message_content_that_is_not_text_or_parts_does_not_break_finalize() -> None:
    """`input_preview` iterated any non-string content: a request with "content": 5
    raised in `finalize` (the writer logged a failed write, and the span was stored on
    the retry without its cost)."""
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    span = chat_span({"model": "gpt-4o-mini", "usage": usage}, request)
    finalize(span, PriceTable())
    assert span.input_preview is None
    assert span.cost_usd == pytest.approx((10 * 0.15 + 5 * 0.6) / 1e6)


async def test_percentiles_ignore_spans_without_a_duration(store: SQLiteSpanStore) -> None:
    """ROW_NUMBER() ordered by duration_ms put NULLs first, so they took the low ranks
    while `n` counted only durations: p50 and p95 came out as the smallest value."""
    records = []
    for i in range(20):
        span = chat_span({"model": "gpt-4o-mini"})
        span.start_us = T0 + i
        span.end_us = span.start_us + (i + 1) * 1000 if i < 10 else None  # 1..10 ms
        finalize(span, PriceTable())
        records.append(to_record(span))
    await store.insert_spans(records)
    [row] = await store.stats("model", SpanFilter())
    assert row["calls"] == 20
    assert row["latency_p50_ms"] == 5.0  # nearest rank: ceil(0.5 * 10) = 5th
    assert row["latency_p95_ms"] == 10.0
