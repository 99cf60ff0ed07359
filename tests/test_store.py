"""The span store, on SQLite and on PostgreSQL (the ``stores`` fixture): filters,
pagination, stats, span ids; SQLite's migrations from a blank database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span, SpanContext, finalize, new_span_id, new_trace_id, to_record
from gateway.errors import InvalidRequest
from gateway.store.database import SQLiteDatabase
from gateway.store.migrations import available_migrations
from gateway.store.spans import SpanFilter, SpanStore
from gateway.store.sqlite import SQLiteSpanStore
from gateway.store.stores import Stores

T0 = 1_700_000_000_000_000  # µs


def make_span(i: int, **fields: Any) -> dict[str, Any]:
    ctx = SpanContext(
        trace_id=fields.pop("trace_id", new_trace_id()),
        span_id=new_span_id(),
        thread_id=fields.pop("thread_id", None),
        label=fields.pop("label", None),
        project_id=fields.pop("project_id", None),
    )
    duration_us = fields.pop("duration_us", 1000 * (i + 1))
    span = Span(
        context=ctx,
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=T0 + i * 1_000_000,
        provider=fields.pop("provider", "openai"),
        request_model=fields.pop("model", "gpt-4o-mini"),
        request={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": fields.pop("text", f"question {i}")}],
        },
        response_body=b'{"model": "gpt-4o-mini", "choices": [{"message": {"role": "assistant",'
        b' "content": "answer"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10,'
        b' "completion_tokens": 5, "total_tokens": 15}}',
        http_status=200,
        status=fields.pop("status", "ok"),
    )
    span.end_us = span.start_us + duration_us
    assert not fields, fields
    finalize(span, PriceTable())
    return to_record(span)


@pytest.fixture
async def store(stores: Stores) -> SpanStore:
    return stores.spans


async def test_a_sqlite_file_is_created_with_its_folders(tmp_path: Path) -> None:
    s = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "sub" / "dir" / "test.db")))
    await s.db.open()
    try:
        await s.insert_spans([make_span(0)])
        assert await s.count_spans() == 1
    finally:
        await s.db.close()


async def test_migrations_from_a_blank_database(tmp_path: Path) -> None:
    path = tmp_path / "blank.db"
    store = SQLiteDatabase(str(path))
    await store.open()
    applied = await store.applied_migrations()
    assert applied == [m.label for m in available_migrations("sqlite")]
    assert applied[0] == "0001_spans"
    assert await store.migrate() == []  # idempotent
    await store.close()
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"spans", "projects", "schema_migrations"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_failed_migration_leaves_nothing_half_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.store import database as store_module
    from gateway.store.migrations import Migration

    good = available_migrations("sqlite")
    broken = Migration(
        9999, "broken", "CREATE TABLE half_made (x INTEGER); SELECT * FROM no_such_table;"
    )
    monkeypatch.setattr(store_module, "available_migrations", lambda dialect: [*good, broken])
    store = SQLiteDatabase(str(tmp_path / "m.db"))
    with pytest.raises(sqlite3.Error):
        await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    conn.close()
    assert "half_made" not in tables
    assert 9999 not in versions
    assert "spans" in tables  # the good ones stay applied


async def test_cursor_pagination_walks_every_span_once(store: SpanStore) -> None:
    records = [make_span(i) for i in range(23)]
    await store.insert_spans(records)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_spans(SpanFilter(), limit=5, cursor=cursor)
        seen += [s["span_id"] for s in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    newest_first = [r["span_id"] for r in sorted(records, key=lambda r: -r["start_us"])]
    assert seen == newest_first


async def test_filters(store: SpanStore) -> None:
    await store.insert_spans(
        [
            make_span(0, thread_id="t1", model="gpt-4o", label="a"),
            make_span(1, thread_id="t1", status="error", provider="local"),
            make_span(2, thread_id="t2", text="find the needle_here please"),
            make_span(3, project_id="p1"),
        ]
    )

    async def ids(**kw: Any) -> int:
        return len((await store.list_spans(SpanFilter(**kw), limit=100)).items)

    assert await ids() == 4
    assert await ids(thread="t1") == 2
    assert await ids(model="gpt-4o") == 1
    assert await ids(status="error") == 1
    assert await ids(provider="local") == 1
    assert await ids(label="a") == 1
    assert await ids(project="p1") == 1
    assert await ids(text="NEEDLE_HERE") == 1  # case-insensitive
    assert await ids(text="needle%") == 0  # LIKE wildcards are literal
    assert await ids(since_us=T0 + 1_500_000) == 2
    assert await ids(until_us=T0 + 1_500_000) == 2
    assert await ids(thread="t1", status="ok") == 1


async def test_bad_cursor_is_a_clear_error(store: SpanStore) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        await store.list_spans(SpanFilter(), limit=5, cursor="@@@")


async def test_stats_percentiles_and_threads(store: SpanStore) -> None:
    # 20 calls on one model, durations 1..20 ms; one error.
    records = [make_span(i, thread_id="th", duration_us=(i + 1) * 1000) for i in range(20)]
    records.append(make_span(20, model="other", status="error", thread_id="th2"))
    await store.insert_spans(records)
    rows = {r["group"]: r for r in await store.stats("model", SpanFilter())}
    stats = rows["gpt-4o-mini"]
    assert stats["calls"] == 20
    assert stats["errors"] == 0
    assert stats["latency_p50_ms"] == 10.0  # nearest rank: ceil(0.5 * 20) = 10th
    assert stats["latency_p95_ms"] == 19.0  # ceil(0.95 * 20) = 19th
    assert stats["total_tokens"] == 20 * 15
    assert stats["cost_usd"] == pytest.approx(20 * (10 * 0.15 + 5 * 0.6) / 1e6)
    assert rows["other"]["errors"] == 1
    hours = await store.stats("hour", SpanFilter())
    assert sum(r["calls"] for r in hours) == 21
    with pytest.raises(InvalidRequest, match="group_by"):
        await store.stats("colour", SpanFilter())
    threads = await store.list_threads(project=None, limit=10)
    assert [t["thread_id"] for t in threads] == ["th2", "th"]
    assert threads[1]["calls"] == 20
    assert threads[0]["errors"] == 1
    assert threads[1]["models"] == ["gpt-4o-mini"]


# --- span ids: never replace another span ------------------------------------------------


async def test_a_span_id_taken_by_another_span_stores_the_newcomer_under_a_new_id(
    store: SpanStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Ids are 32 bits of time and 32 random bits: two spans can draw the same one.
    `INSERT OR REPLACE` overwrote the first with the second, silently."""
    first = make_span(0, text="the first")
    second = make_span(1, text="the second")
    second["span_id"] = first["span_id"]
    await store.insert_spans([first])
    renamed = await store.insert_spans([second])
    assert list(renamed or {}) == [0]
    new_id = (renamed or {})[0]["span_id"]
    assert new_id != first["span_id"]
    kept = await store.get_span(first["span_id"])
    assert kept is not None and kept["input_preview"] == "the first"
    moved = await store.get_span(new_id)
    assert moved is not None and moved["input_preview"] == "the second"
    assert moved["attributes"] == {"spanlab.original_span_id": first["span_id"]}
    assert moved["trace_id"] == second["trace_id"]
    assert await store.count_spans() == 2
    assert any(first["span_id"] in r.getMessage() for r in caplog.records)


async def test_colliding_ids_in_one_batch_are_both_kept(store: SpanStore) -> None:
    records = [make_span(i) for i in range(70)]  # 64 + 4 + 1 + 1: every statement size
    for i in (5, 40, 66, 69):
        records[i]["span_id"] = records[i - 1]["span_id"]
    renamed = await store.insert_spans(records)
    assert sorted(renamed or {}) == [5, 40, 66, 69]
    assert await store.count_spans() == 70
    traces = {r["trace_id"] for r in (await store.list_spans(SpanFilter(), limit=100)).items}
    assert traces == {r["trace_id"] for r in records}


async def test_the_same_span_sent_again_stays_one_row(store: SpanStore) -> None:
    """A writer process restarted before it acknowledged a batch gets it again, and a
    spill file replayed twice holds spans already stored: the same span, one row."""
    records = [make_span(i) for i in range(5)]
    assert not await store.insert_spans(records)
    assert not await store.insert_spans([records[2], records[4]])
    assert not await store.insert_spans([records[3], records[3]])
    assert await store.count_spans() == 5


async def test_span_insert_without_aiosqlites_queue_settles_collisions_too(
    store: SpanStore,
) -> None:
    """One statement of three rows, two of them taken: settled row by row."""
    first, second = make_span(0), make_span(1)
    second["span_id"] = first["span_id"]
    renamed = await store.insert_spans([first, second, first])
    assert list(renamed) == [1]
    assert await store.count_spans() == 2
