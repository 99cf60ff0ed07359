"""Values SQLite takes and PostgreSQL would refuse must not stop the span writer: a NUL
character in text (replaced), token counts past 32 bits (BIGINT columns), and any row
PostgreSQL still refuses (text that is not UTF-8: stored as its outline, the rest of
its batch whole, as the SQLite writer process does)."""

from __future__ import annotations

import pytest

from gateway.store.postgres import PostgresDatabase
from gateway.store.postgres_spans import PostgresSpanStore
from gateway.store.spans import SpanFilter
from gateway.store.stores import Stores
from tests.test_store import make_span


async def test_nul_characters_and_large_token_counts_are_stored(stores: Stores) -> None:
    record = make_span(0, text="before\x00after")
    record["output_text"] = "a\x00b"
    record["prompt_tokens"] = 3_000_000_000  # past 32 bits, within the 2**53 taken
    record["total_tokens"] = 3_000_000_005
    assert not await stores.spans.insert_spans([record])
    span = await stores.spans.get_span(record["span_id"])
    assert span is not None
    assert span["usage"]["prompt_tokens"] == 3_000_000_000
    expected = "a\ufffdb" if stores.database.dialect == "postgresql" else "a\x00b"
    assert span["output_text"] == expected
    assert span["input_preview"].startswith("before")
    stats = await stores.spans.stats("total", SpanFilter())
    assert stats[0]["total_tokens"] == 3_000_000_005


@pytest.mark.parametrize("size", [3, 20])  # a multi-row INSERT; COPY
async def test_a_row_postgresql_refuses_is_stored_as_its_outline(pg_url: str, size: int) -> None:
    store = PostgresSpanStore(PostgresDatabase(pg_url))
    await store.db.open()
    try:
        records = [make_span(i) for i in range(size)]
        records[1]["output_text"] = "half a surrogate: \ud800"  # not encodable as UTF-8
        changed = await store.insert_spans(records)
        assert list(changed) == [1]
        assert await store.count_spans() == size
        outlined = await store.get_span(records[1]["span_id"])
        assert outlined is not None
        assert outlined["error"]["code"] == "span_not_stored_whole"
        assert outlined["output_text"] is None and outlined["request"] is None
        assert outlined["http_status"] == 200  # what identifies and times the call stays
        whole = await store.get_span(records[2]["span_id"])
        assert whole is not None and whole["error"] is None
        assert whole["output_text"] == records[2]["output_text"]
    finally:
        await store.db.close()
