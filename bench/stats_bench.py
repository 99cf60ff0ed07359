"""What the Traces summary strip's two `/stats` queries cost at a million spans, exact
(the scan) against the rollup (migration 0014), and what the rollup costs the writer.

``python -m bench.stats_bench [spans]`` (default 1,000,000):

* ``writer``: CPU time per span of `span_table.insert_rows` (the writer process's
  transaction: spans and facets; the rollup is not in it) at batch 1 and 1,000, and of
  `rollup.fold` (folding the stored spans in, a chunk of `rollup.FOLD_CHUNK` per
  transaction, as the writer process does after its transactions) on spans one
  millisecond apart (``dense``) and 2.6 s apart (``spread``);
* ``strip``: two databases of ``spans`` spans built through `insert_rows` (1,000 a
  transaction, 40 models over 4 providers, 20 labels, 2% errors), folded but for the
  last 5,000 (more than a writer that is not saturated leaves unfolded):
  ``dense`` one span a millisecond (17 minutes: the rollup's worst case, every minute
  full of keys and buckets) and ``spread`` one span every 2.6 s (30 days). On each, the
  strip's two queries (``group_by=total``, then the chart's minute/hour/day as the UI
  picks it) for all time, for the last 24 h from an instant not on a minute, and the
  latter with ``provider`` and ``model`` filters; each ``exact`` (``exact=true``: the
  scan) once and ``rollup`` (median of 5).

Figures: `gateway.capture.rollup`'s docstring and the closing note of the change.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from typing import Any

from gateway.capture import rollup
from gateway.capture.span_table import SPAN_COLUMNS, insert_rows

BATCH = 1000
START_US = 1_700_000_000_000_000


def rows_of(first: int, count: int, gap_us: int) -> list[tuple[Any, ...]]:
    template = dict.fromkeys(SPAN_COLUMNS)
    template.update(
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        stream=0,
        input_preview="What is the weather like today?",
        output_text="Sunny.",
        prompt_tokens=12,
        completion_tokens=3,
        total_tokens=15,
        cost_usd=0.0000041,
        origin="app",
    )
    rows = []
    for i in range(first, first + count):
        model = f"model-{i % 40}"
        start = START_US + i * gap_us
        template.update(
            span_id=f"{i:016x}",
            trace_id=f"{i:032x}",
            provider=f"provider-{i % 4}",
            request_model=model,
            response_model=f"{model}-2025",
            label=f"label-{i % 20}" if i % 3 == 0 else None,
            start_us=start,
            end_us=start + 500,
            duration_ms=float(i * 7919 % 9000) / 10 + 1,
            ttft_ms=float(i % 300),
            status="error" if i % 50 == 0 else "ok",
        )
        rows.append(tuple(template[c] for c in SPAN_COLUMNS))
    return rows


def fresh_db(path: str) -> sqlite3.Connection:
    from gateway.store.stores import sqlite_stores

    async def migrate() -> None:
        stores = sqlite_stores(path)
        await stores.database.open()
        await stores.database.close()

    asyncio.run(migrate())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def writer_cost(batch: int, count: int) -> float:
    """CPU microseconds per span of `insert_rows` at ``batch`` spans a transaction."""
    with tempfile.TemporaryDirectory(prefix="spanlab-stats-") as tmp:
        conn = fresh_db(os.path.join(tmp, "w.db"))
        rows = rows_of(0, count, 2_600_000)
        insert_rows(conn, rows[:batch])  # warm: statements prepared
        t0 = time.process_time()
        for first in range(batch, count, batch):
            insert_rows(conn, rows[first : first + batch])
        spent = time.process_time() - t0
        conn.close()
    return spent / (count - batch) * 1e6


def fold_all(conn: sqlite3.Connection) -> int:
    keys = rollup.KeyCache()
    total = 0
    while folded := rollup.fold(conn, keys):
        total += folded
    return total


def fold_cost(count: int, gap_us: int) -> float:
    """CPU microseconds per span of folding ``count`` stored spans into the rollup."""
    with tempfile.TemporaryDirectory(prefix="spanlab-stats-") as tmp:
        conn = fresh_db(os.path.join(tmp, "f.db"))
        for first in range(0, count, BATCH):
            insert_rows(conn, rows_of(first, min(BATCH, count - first), gap_us))
        t0 = time.process_time()
        folded = fold_all(conn)
        spent = time.process_time() - t0
        conn.close()
    return spent / folded * 1e6


def build(path: str, count: int, gap_us: int) -> float:
    """The spans stored, all folded but the last 5,000."""
    conn = fresh_db(path)
    t0 = time.perf_counter()
    tail = min(5_000, count)
    for first in range(0, count - tail, BATCH):
        insert_rows(conn, rows_of(first, min(BATCH, count - tail - first), gap_us))
    fold_all(conn)
    for first in range(count - tail, count, BATCH):
        insert_rows(conn, rows_of(first, min(BATCH, count - first), gap_us))
    conn.close()
    return time.perf_counter() - t0


def bucket_for(span_us: int) -> str:
    # ui/src/lib/charts.ts pickBucket
    if span_us <= 3 * 3_600_000_000:
        return "minute"
    return "hour" if span_us <= 8 * 86_400_000_000 else "day"


async def strip(path: str, count: int, gap_us: int) -> dict[str, Any]:
    from gateway.store.spans import SpanFilter
    from gateway.store.stores import sqlite_stores

    stores = sqlite_stores(path)
    await stores.database.open()
    spans = stores.spans
    last = START_US + (count - 1) * gap_us
    since = last - 86_400_000_000 + 12_345_678  # "last 24 h", not on a minute
    cases = {
        "all_time": (SpanFilter(), bucket_for(last - START_US)),
        "last_24h": (SpanFilter(since_us=since), bucket_for(last - since)),
        "last_24h_provider_model": (
            SpanFilter(since_us=since, provider="provider-1", model="model-5"),
            bucket_for(last - since),
        ),
    }
    out: dict[str, Any] = {}
    try:
        for name, (filters, bucket) in cases.items():
            for group_by in ("total", bucket):
                t0 = time.perf_counter()
                exact = await spans.stats_answer(group_by, filters, exact=True)
                exact_ms = (time.perf_counter() - t0) * 1000
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    rolled = await spans.stats_answer(group_by, filters)
                    times.append((time.perf_counter() - t0) * 1000)
                assert not exact.approximate
                assert [r["calls"] for r in rolled.rows] == [r["calls"] for r in exact.rows]
                out[f"{name} {group_by}"] = {
                    "exact_ms": round(exact_ms, 1),
                    "rollup_ms": round(statistics.median(times), 1),
                    "groups": len(exact.rows),
                    "answered_by": "rollup" if rolled.approximate else "exact (few spans)",
                }
        conn = sqlite3.connect(path)
        out["rollup_rows"] = conn.execute("SELECT COUNT(*) FROM span_rollup").fetchone()[0]
        out["histogram_rows"] = conn.execute("SELECT COUNT(*) FROM span_rollup_latency").fetchone()[
            0
        ]
        conn.close()
    finally:
        await stores.database.close()
    return out


def main(count: int) -> None:
    for batch, n in ((1, 3000), (1000, 30_000)):
        print({"writer_batch": batch, "cpu_us_per_span": round(writer_cost(batch, n), 1)})
    for name, gap_us in (("dense", 1000), ("spread", 2_600_000)):
        print({"fold": name, "cpu_us_per_span": round(fold_cost(30_000, gap_us), 1)})
    if "--writer-only" in sys.argv:
        return
    for name, gap_us in (("dense", 1000), ("spread", 2_600_000)):
        with tempfile.TemporaryDirectory(prefix="spanlab-stats-") as tmp:
            path = os.path.join(tmp, "spans.db")
            built = build(path, count, gap_us)
            print({"db": name, "spans": count, "build_s": round(built, 1)})
            print({"db": name, **asyncio.run(strip(path, count, gap_us))})


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 1_000_000)
