"""The span store answers the same on PostgreSQL as on SQLite: the same random spans
(every dimension varying, NULLs included, over three days) stored in both, then every
filter, range and grouping of `/stats` (exact on both), the threads, the facets, text
search and counts compared. Where a dialect fragment differs (time buckets, GROUP_CONCAT,
case-insensitive LIKE, sums of conditions), this is where a difference would show."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.span_table import SPAN_COLUMNS
from gateway.store.database import SQLiteDatabase
from gateway.store.postgres import PostgresDatabase
from gateway.store.postgres_spans import PostgresSpanStore
from gateway.store.spans import SpanFilter
from gateway.store.sqlite import SQLiteSpanStore
from tests.test_span_rollup import FILTERS, GROUPS, T0, random_rows

Pair = tuple[SQLiteSpanStore, PostgresSpanStore]


@pytest.fixture
async def pair(tmp_path: Path, pg_url: str) -> AsyncIterator[Pair]:
    rows = random_rows(random.Random(15), 1500)
    # A few spans in threads, some with text to search, replays among them.
    records = []
    for i, row in enumerate(rows):
        record = dict(zip(SPAN_COLUMNS, row, strict=True))
        if i % 7 == 0:
            record["thread_id"] = f"th{i % 5}"
        if i % 11 == 0:
            record["output_text"] = f"The Needle_{i % 3} 100% here"
        records.append(record)
    sqlite = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "parity.db")))
    postgres = PostgresSpanStore(PostgresDatabase(pg_url))
    for store in (sqlite, postgres):
        await store.db.open()
        for start in range(0, len(records), 200):
            await store.insert_spans(records[start : start + 200])
    yield sqlite, postgres
    await sqlite.db.close()
    await postgres.db.close()


def assert_same_rows(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> None:
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            other = b[key]
            if isinstance(value, float) or isinstance(other, float):
                assert value is not None and other is not None, (key, value, other)
                assert math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-9), (key, a, b)
            else:
                assert value == other, (key, a, b)


async def test_stats_are_the_same_for_every_filter_range_and_grouping(pair: Pair) -> None:
    sqlite, postgres = pair
    ranges = [(None, None), (T0 + 7_654_321, None), (T0 + 3_600_000_000, T0 + 90_000_000_000)]
    checked = 0
    for filters in [*FILTERS, SpanFilter(thread="th1"), SpanFilter(text="needle_1")]:
        for since, until in ranges:
            f = SpanFilter(
                **{
                    **{n: getattr(filters, n) for n in filters.__dataclass_fields__},
                    "since_us": since,
                    "until_us": until,
                }
            )
            for group_by in [*GROUPS, "thread"]:
                expected = await sqlite.stats_answer(group_by, f, exact=True)
                got = await postgres.stats_answer(group_by, f)
                assert not got.approximate
                assert_same_rows(expected.rows, got.rows)
                checked += len(got.rows)
    assert checked > 500


async def test_threads_facets_search_and_pages_are_the_same(pair: Pair) -> None:
    sqlite, postgres = pair
    for project in (None, "p1"):
        expected = await sqlite.list_threads(project=project, limit=10)
        got = await postgres.list_threads(project=project, limit=10)
        assert expected
        assert_same_rows(expected, got)  # floats summed in another order: to 1e-9
    assert await postgres.facets() == await sqlite.facets()
    for text in ("NEEDLE_2", "needle_", "100%", "100_", "needle\\"):
        f = SpanFilter(text=text)
        assert await postgres.count_spans(f) == await sqlite.count_spans(f), text
    assert await postgres.count_spans(SpanFilter(text="needle_1")) > 0
    # No filter at all (TRUE), and a filter no value can meet (FALSE): SQL both take.
    assert await postgres.count_spans(SpanFilter()) == await sqlite.count_spans() == 1500
    assert await postgres.count_spans(SpanFilter(origins=())) == 0
    assert await sqlite.count_spans(SpanFilter(origins=())) == 0
    cursor_a = cursor_b = None
    for _ in range(3):
        page_a = await sqlite.list_spans(SpanFilter(provider="openai"), limit=50, cursor=cursor_a)
        page_b = await postgres.list_spans(SpanFilter(provider="openai"), limit=50, cursor=cursor_b)
        assert page_b.items == page_a.items
        cursor_a, cursor_b = page_a.next_cursor, page_b.next_cursor
        assert cursor_b == cursor_a


async def test_a_prune_leaves_the_same_spans_and_facets(pair: Pair) -> None:
    sqlite, postgres = pair
    cutoff = T0 + 86_400_000_000 + 12_345
    deleted = await sqlite.delete_spans_before(cutoff)
    assert deleted > 0
    assert await postgres.delete_spans_before(cutoff) == deleted
    assert await postgres.count_spans() == await sqlite.count_spans()
    assert await postgres.facets() == await sqlite.facets()
