"""The spans rollup (migration 0014, `gateway.capture.rollup`) and `/stats` answered
from it (`gateway.store.sqlite_stats`): folded in after the spans are stored (by the
writer process, the in-process writer, or a chunk at a time), the answer is the exact
scan's however far the folding has got, and it stays right through duplicates,
retention, VACUUM and the migration."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.capture import rollup
from gateway.capture.span_table import SPAN_COLUMNS, insert_rows
from gateway.store import sqlite_stats
from gateway.store.database import SQLiteDatabase
from gateway.store.migrations import available_migrations
from gateway.store.spans import SpanFilter
from gateway.store.sqlite import SQLiteSpanStore
from tests.conftest import Gateway
from tests.test_api import call

T0 = 1_700_000_000_000_000 - 1_700_000_000_000_000 % 86_400_000_000  # a UTC midnight, µs
MODELS = ["gpt-4o", "gpt-4o-mini", None]
EXACT_INTS = ("calls", "errors", "prompt_tokens", "completion_tokens", "total_tokens")
FLOATS = ("cost_usd", "latency_avg_ms", "ttft_avg_ms")


def random_rows(rng: random.Random, count: int, first: int = 0) -> list[tuple[Any, ...]]:
    """Span rows (`SPAN_COLUMNS` order) over ~3 days, with every dimension varying,
    NULLs included, durations from sub-millisecond to minutes."""
    rows = []
    for i in range(first, first + count):
        request_model = rng.choice(MODELS)
        start = T0 + rng.randrange(0, 3 * 86_400_000_000)
        values = dict.fromkeys(SPAN_COLUMNS)
        values.update(
            span_id=f"{i:016x}",
            trace_id=f"{i:032x}",
            project_id=rng.choice([None, "p1", "p2"]),
            operation=rng.choice(["chat", "embeddings"]),
            method="POST",
            path="/v1/chat/completions",
            provider=rng.choice(["openai", "anthropic", None]),
            request_model=request_model,
            response_model=rng.choice([None, f"{request_model or 'x'}-2024"]),
            stream=0,
            status=rng.choice(["ok", "ok", "ok", "error", "client_aborted"]),
            start_us=start,
            end_us=start + 1000,
            duration_ms=rng.choice([None, 0.0, rng.lognormvariate(5, 2), rng.uniform(0.01, 3)]),
            ttft_ms=rng.choice([None, rng.uniform(1, 500)]),
            prompt_tokens=rng.choice([None, rng.randrange(0, 5000)]),
            completion_tokens=rng.choice([None, rng.randrange(0, 500)]),
            total_tokens=rng.choice([None, rng.randrange(0, 6000)]),
            cost_usd=rng.choice([None, rng.uniform(0, 0.01)]),
            label=rng.choice([None, "a", "b"]),
            origin=rng.choice(["app", "app", "experiment"]),
        )
        rows.append(tuple(values[c] for c in SPAN_COLUMNS))
    return rows


def insert_in_batches(
    path: Path, rows: list[tuple[Any, ...]], rng: random.Random, *, fold: bool = False
) -> None:
    """As the writer process does: one connection, transactions of a few sizes, and
    (``fold``) a chunk of random size folded in between some of them."""
    conn = sqlite3.connect(path, isolation_level=None)
    keys = rollup.KeyCache()
    start = 0
    while start < len(rows):
        size = rng.choice([1, 2, 7, 64, 150])
        insert_rows(conn, rows[start : start + size])
        start += size
        if fold and rng.random() < 0.3:
            rollup.fold(conn, keys, limit=rng.choice([1, 5, 100, 400]))
    conn.close()


def fold_all(path: Path | str) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    keys = rollup.KeyCache()
    total = 0
    while n := rollup.fold(conn, keys):
        total += n
    conn.close()
    return total


def watermark(path: Path | str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(rollup.SELECT_WATERMARK).fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteSpanStore]:
    s = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "rollup.db")))
    await s.db.open()
    yield s
    await s.db.close()


def snapshot(path: Path | str) -> dict[str, Any]:
    """The rollup's contents by dimensions (not key ids), floats rounded."""
    conn = sqlite3.connect(path)
    dims = ", ".join(f"k.{d}" for d in rollup.DIMENSIONS)
    pieces = {
        (r[0], r[1], r[2:10]): tuple(round(v, 6) if isinstance(v, float) else v for v in r[10:])
        for r in conn.execute(
            f"SELECT r.level, r.start_us, {dims}, {', '.join(rollup.SUM_COLUMNS)},"
            " first_us, last_us FROM span_rollup r LEFT JOIN span_rollup_keys k ON k.id = r.key_id"
        )
    }
    buckets = {
        (r[0], r[1], r[2:10], r[10]): r[11]
        for r in conn.execute(
            f"SELECT r.level, r.start_us, {dims}, bucket, n"
            " FROM span_rollup_latency r LEFT JOIN span_rollup_keys k ON k.id = r.key_id"
        )
    }
    conn.close()
    return {"pieces": pieces, "buckets": buckets}


def rebuild(path: Path | str, *, shuffle: bool = False) -> None:
    """The rollup emptied and every span folded in again in one go (``shuffle``: its
    keys under other ids than before)."""
    conn = sqlite3.connect(path, isolation_level=None)
    gap = "INSERT INTO span_rollup_keys (id) VALUES (1000);" if shuffle else ""
    conn.executescript(
        "BEGIN; DELETE FROM span_rollup; DELETE FROM span_rollup_latency;"
        f" DELETE FROM span_rollup_keys; {gap} UPDATE span_rollup_state SET watermark = 0;"
        " COMMIT;"
    )
    conn.close()
    fold_all(path)


def assert_same_stats(exact: list[dict[str, Any]], rolled: list[dict[str, Any]]) -> None:
    assert [r["group"] for r in rolled] == [r["group"] for r in exact]
    for e, r in zip(exact, rolled, strict=True):
        for name in EXACT_INTS:
            assert r[name] == e[name], (name, e, r)
        for name in FLOATS:
            assert (r[name] is None) == (e[name] is None), (name, e, r)
            if e[name] is not None:
                assert r[name] == pytest.approx(e[name], rel=1e-9, abs=1e-12), (name, e, r)
        assert (r["first_time"], r["last_time"]) == (e["first_time"], e["last_time"])
        for name in ("latency_p50_ms", "latency_p95_ms"):
            assert (r[name] is None) == (e[name] is None), (name, e, r)
            if e[name] is not None:
                bound = rollup.PERCENTILE_ERROR * e[name] * (1 + 1e-9)
                assert abs(r[name] - e[name]) <= bound, (name, e, r)


def test_bucket_bounds() -> None:
    assert math.log(rollup.RATIO) == rollup.LN_RATIO
    rng = random.Random(5)
    for _ in range(10_000):
        d = rng.lognormvariate(3, 4)
        assert abs(rollup.bucket_value(rollup.bucket_of(d)) - d) <= (
            rollup.PERCENTILE_ERROR * d * (1 + 1e-9)
        )
    assert rollup.bucket_value(rollup.bucket_of(0.0)) == 0.0
    assert pytest.approx(0.0247, abs=1e-4) == rollup.PERCENTILE_ERROR


FILTERS = [
    SpanFilter(),
    SpanFilter(model="gpt-4o"),
    SpanFilter(model="gpt-4o-mini-2024"),
    SpanFilter(provider="openai", status="error"),
    SpanFilter(label="a", operation="chat"),
    SpanFilter(project="p2"),
    SpanFilter(origins=("experiment",)),
    SpanFilter(exclude_origins=("experiment",), provider="anthropic"),
]
GROUPS = ["total", "model", "provider", "status", "minute", "hour", "day"]


async def check_every_question(
    store: SQLiteSpanStore, rng: random.Random, filters_tried: list[SpanFilter] = FILTERS
) -> int:
    """Every filter, range and grouping: the rollup's answer against the exact scan's."""
    ranges = [(None, None), (T0 + 7_654_321, None), (None, T0 + 86_400_000_000 + 1)]
    for _ in range(3):
        lo = T0 + rng.randrange(0, 2 * 86_400_000_000)
        ranges.append((lo, lo + rng.randrange(1, 86_400_000_000)))
    ranges.append((T0 + 3_600_000_000, T0 + 3_600_000_000 + 30_000_000))  # inside a minute
    checked = 0
    for filters in filters_tried:
        for since, until in ranges:
            f = SpanFilter(**{**_fields(filters), "since_us": since, "until_us": until})
            for group_by in GROUPS:
                exact = await store.stats_answer(group_by, f, exact=True)
                assert not exact.approximate
                rolled = await sqlite_stats.rollup_stats(
                    store.db.fetch, group_by, _key(group_by), f, min_spans=0
                )
                assert rolled is not None
                assert_same_stats(exact.rows, rolled)
                checked += len(exact.rows)
    return checked


async def test_rollup_answers_equal_the_exact_scan_however_far_it_has_folded(
    store: SQLiteSpanStore,
) -> None:
    rng = random.Random(11)
    rows = random_rows(rng, 3000)
    path = Path(store.db.path)
    # Half through the writer process's transactions, half through the store's own.
    insert_in_batches(path, rows[:1500], rng)
    await store.insert_spans([dict(zip(SPAN_COLUMNS, r, strict=True)) for r in rows[1500:2200]])
    await store.insert_spans([dict(zip(SPAN_COLUMNS, r, strict=True)) for r in rows[2200:]])
    assert watermark(path) == 0  # nothing folded: every span is read one by one
    assert await check_every_question(store, rng, FILTERS[::3]) > 300
    conn = sqlite3.connect(path, isolation_level=None)
    assert rollup.fold(conn, rollup.KeyCache(), limit=1234) == 1234
    conn.close()
    assert await check_every_question(store, rng, FILTERS[1::3]) > 300  # a part folded
    assert fold_all(path) == 3000 - 1234
    assert await check_every_question(store, rng) > 1000  # all folded


def _fields(f: SpanFilter) -> dict[str, Any]:
    return {name: getattr(f, name) for name in f.__dataclass_fields__}


def _key(group_by: str) -> str:
    from gateway.store.sqlite import STATS_GROUPS

    return STATS_GROUPS[group_by]


async def test_folding_in_chunks_equals_folding_at_once_and_retention_keeps_it(
    store: SQLiteSpanStore,
) -> None:
    rng = random.Random(3)
    path = Path(store.db.path)
    insert_in_batches(path, random_rows(rng, 2000), rng, fold=True)
    assert watermark(path) > 0
    fold_all(path)
    incremental = snapshot(path)
    assert len(incremental["pieces"]) > 100 and len(incremental["buckets"]) > 100
    rebuild(path, shuffle=True)  # other key ids, the same contents
    assert snapshot(path) == incremental
    # Retention, with spans not folded yet: cut-offs on no boundary, a minute, a day.
    more = random_rows(rng, 600, first=2000)
    for cutoff in (T0 + 12_345_678_901, T0 + 60_000_000 * 1000, T0 + 86_400_000_000):
        insert_in_batches(path, more[:200], rng, fold=True)
        more = more[200:]
        assert await store.delete_spans_before(cutoff) > 0
        f = SpanFilter()
        exact = await store.stats_answer("total", f, exact=True)
        rolled = await sqlite_stats.rollup_stats(store.db.fetch, "total", "NULL", f, min_spans=0)
        assert rolled is not None
        assert_same_stats(exact.rows, rolled)
        fold_all(path)
        pruned = snapshot(path)
        rebuild(path)
        assert snapshot(path) == pruned
        assert min(at for (_, at, _) in pruned["pieces"]) >= cutoff - cutoff % 86_400_000_000


async def test_after_retention_deletes_every_span_new_spans_are_folded(
    store: SQLiteSpanStore,
) -> None:
    """The spans' rowids start again after the largest is deleted: the watermark comes
    down with it, or the new spans would count as folded."""
    rng = random.Random(13)
    path = Path(store.db.path)
    insert_in_batches(path, random_rows(rng, 100), rng)
    fold_all(path)
    assert watermark(path) >= 100
    assert await store.delete_spans_before(T0 + 10 * 86_400_000_000) == 100
    assert watermark(path) == 0
    insert_in_batches(path, random_rows(rng, 30, first=100), rng)
    [total] = (await store.stats_answer("total", SpanFilter(), exact=True)).rows
    rolled = await sqlite_stats.rollup_stats(
        store.db.fetch, "total", "NULL", SpanFilter(), min_spans=0
    )
    assert rolled is not None and rolled[0]["calls"] == total["calls"] == 30
    fold_all(path)
    before = snapshot(path)
    rebuild(path)
    assert snapshot(path) == before


async def test_compact_starts_the_rollup_again(store: SQLiteSpanStore) -> None:
    """VACUUM may renumber the spans' rowids: the rollup is emptied and refolded."""
    rng = random.Random(17)
    path = Path(store.db.path)
    insert_in_batches(path, random_rows(rng, 400), rng)
    fold_all(path)
    before = snapshot(path)
    await store.db.compact()
    assert watermark(path) == 0 and not snapshot(path)["pieces"]
    assert await store.fold_rollup() == 400
    assert snapshot(path) == before


async def test_the_writer_process_folds_what_it_stored(tmp_path: Path) -> None:
    from bench.writer_bench import make_span
    from gateway.capture.pricing import PriceTable
    from gateway.metrics import Metrics
    from gateway.store.stores import sqlite_stores
    from gateway.writer.span_writer import SpanWriter

    stores = sqlite_stores(str(tmp_path / "w.db"))
    await stores.open()
    writer = SpanWriter(stores.spans, PriceTable(), Metrics(), process_db=stores.database.file_path)
    writer.start()
    try:
        for _ in range(250):
            writer.submit(make_span())
        await asyncio.wait_for(writer.flush(), 30)
        async with asyncio.timeout(20):  # idle now: it folds within FOLD_INTERVAL_S
            while watermark(tmp_path / "w.db") < 250:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await writer.close()
        await stores.close()
    rows = (
        sqlite3.connect(tmp_path / "w.db")
        .execute("SELECT SUM(calls) FROM span_rollup WHERE key_id = 0 AND level = 86400")
        .fetchone()
    )
    assert rows[0] == 250


async def test_the_migration_leaves_earlier_spans_to_the_fold(tmp_path: Path) -> None:
    rng = random.Random(21)
    rows = random_rows(rng, 1500)
    # A database migrated to just before the rollup, its spans stored, then opened.
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    conn.execute(
        "CREATE TABLE schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for m in available_migrations("sqlite"):
        if m.name != "span_rollup":
            conn.executescript(m.sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 'x')", (m.version, m.name))
    marks = ", ".join("?" for _ in SPAN_COLUMNS)
    conn.executemany(f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({marks})", rows)
    conn.close()
    store = SQLiteSpanStore(SQLiteDatabase(str(old)))
    await store.db.open()
    try:
        assert "0014_span_rollup" in await store.db.applied_migrations()
        assert watermark(old) == 0
        total = (await store.stats_answer("total", SpanFilter(), exact=True)).rows
        rolled = await sqlite_stats.rollup_stats(
            store.db.fetch, "total", "NULL", SpanFilter(), min_spans=0
        )
        assert rolled is not None
        assert_same_stats(total, rolled)
        assert fold_all(old) == 1500
    finally:
        await store.db.close()


async def test_the_strips_queries_do_not_scan_the_spans(store: SQLiteSpanStore) -> None:
    rng = random.Random(4)
    path = Path(store.db.path)
    insert_in_batches(path, random_rows(rng, 500), rng)
    conn = sqlite3.connect(path, isolation_level=None)
    rollup.fold(conn, rollup.KeyCache(), limit=300)  # and 200 spans not folded yet
    conn.close()
    seen: list[tuple[str, list[Any]]] = []

    async def fetch(sql: str, params: Any) -> list[Any]:
        seen.append((sql, list(params)))
        return await store.db.fetch(sql, params)

    since = T0 + 86_400_000_000 + 12_345_678  # not on a minute: the edge reads spans
    for group_by, f in [
        ("total", SpanFilter()),
        ("day", SpanFilter()),
        ("total", SpanFilter(since_us=since, provider="openai", exclude_origins=("x",))),
        ("minute", SpanFilter(since_us=since, until_us=since + 3_600_000_000, model="gpt-4o")),
        ("hour", SpanFilter(since_us=since, status="error", label="a")),
    ]:
        seen.clear()
        rows = await sqlite_stats.rollup_stats(fetch, group_by, _key(group_by), f, min_spans=0)
        assert rows is not None and seen
        for sql, params in seen:
            plan = " | ".join(
                r[3] for r in await store.db.fetch(f"EXPLAIN QUERY PLAN {sql}", params)
            )
            assert "SCAN spans" not in plan and "SCAN s " not in plan, plan
            if "FROM spans" in sql:  # the spans not folded: a range of rowids
                assert "SEARCH spans USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
            if "rowid <=" in sql:  # an edge: a range of the start index
                assert "spans_by_start" in plan, plan
    conn = sqlite3.connect(store.db.path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM span_rollup_keys WHERE "
        + " AND ".join(f"{d} IS ?" for d in rollup.DIMENSIONS),
        [None] * len(rollup.DIMENSIONS),
    ).fetchall()
    conn.close()
    assert "span_rollup_keys_dims" in str(plan)  # the writer's key lookup: an index


async def test_stats_says_when_it_answers_from_the_rollup(
    store: SQLiteSpanStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(9)
    insert_in_batches(Path(store.db.path), random_rows(rng, 300), rng)
    fold_all(store.db.path)
    small = await store.stats_answer("total", SpanFilter())
    assert not small.approximate  # under ROLLUP_MIN_SPANS: the exact scan
    monkeypatch.setattr(sqlite_stats, "ROLLUP_MIN_SPANS", 100)
    big = await store.stats_answer("total", SpanFilter())
    assert big.approximate and big.rows[0]["calls"] == 300
    assert not (await store.stats_answer("total", SpanFilter(), exact=True)).approximate
    assert not (await store.stats_answer("thread", SpanFilter())).approximate
    assert not (await store.stats_answer("total", SpanFilter(text="x"))).approximate
    assert math.isfinite(big.rows[0]["latency_p95_ms"])


async def test_stats_endpoint_reports_the_source(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        await call(gateway)
    await gateway.flush()
    client: httpx.AsyncClient = gateway.client
    exact = (await client.get("/stats?group_by=model")).json()
    assert exact["data"][0]["calls"] == 3
    answer = (await client.get("/stats?group_by=total")).json()
    assert answer["approximate_percentiles"] is False and answer["percentile_error"] == 0.0
    monkeypatch.setattr(sqlite_stats, "ROLLUP_MIN_SPANS", 0)
    answer = (await client.get("/stats?group_by=model")).json()
    assert answer["approximate_percentiles"] is True
    assert [(r["group"], r["calls"], r["total_tokens"]) for r in answer["data"]] == [
        (r["group"], r["calls"], r["total_tokens"]) for r in exact["data"]
    ]
    assert answer["percentile_error"] == pytest.approx(rollup.PERCENTILE_ERROR)
    forced = (await client.get("/stats?group_by=total&exact=true")).json()
    assert forced["approximate_percentiles"] is False
    bad = await client.get("/stats?exact=maybe")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "exact"
