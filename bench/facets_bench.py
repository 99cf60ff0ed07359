"""What the Traces filters' dropdowns cost at a million spans: `GET /spans/facets`
(the `span_facets` table the writers keep) against the two `/stats` scans it replaced.

``python -m bench.facets_bench [spans]`` (default 1,000,000) builds a database of that
many spans in a temporary file, through `span_table.insert_rows` (the writer process's
transactions, facets included), 1,000 rows a transaction, 40 models over 4 providers
and 20 labels; then times, on the gateway's own store (aiosqlite):

* ``facets``: `SQLiteSpanStore.facets` (what `GET /spans/facets` runs), median of 50;
* ``stats model`` / ``stats provider``: `SQLiteSpanStore.stats` with no filter (what
  the dropdowns ran before), once each;
* ``prune``: `delete_spans_before` taking 1% of the spans (the facets rebuilt).

Measured at 1,000,000 spans (2-core VM shared with four other jobs, load average
3.5 -> 6.5 during the run): built in 47 s; ``facets`` 0.31 ms (all five kinds);
``stats model`` 20.0 s and ``stats provider`` 12.4 s (the two queries every Traces
load ran before; 109-231 ms each at 10,000 spans); a prune of 10,000 spans with the
facets rebuilt 1.5 s.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.capture.span_table import SPAN_COLUMNS, insert_rows
from gateway.store.stores import sqlite_stores

BATCH = 1000


def build(path: str, count: int) -> float:
    """``count`` spans into ``path`` (migrated already); returns the seconds it took."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    start_us = 1_700_000_000_000_000
    template = dict.fromkeys(SPAN_COLUMNS)
    template.update(
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        stream=0,
        status="ok",
        input_preview="What is the weather like today?",
        output_text="Sunny.",
        prompt_tokens=12,
        completion_tokens=3,
        total_tokens=15,
        cost_usd=0.0000041,
        origin="app",
    )
    t0 = time.perf_counter()
    for first in range(0, count, BATCH):
        rows = []
        for i in range(first, min(first + BATCH, count)):
            model = f"model-{i % 40}"
            template.update(
                span_id=f"{i:016x}",
                trace_id=f"{i:032x}",
                provider=f"provider-{i % 4}",
                request_model=model,
                response_model=f"{model}-2025",
                label=f"label-{i % 20}" if i % 3 == 0 else None,
                start_us=start_us + i * 1000,
                end_us=start_us + i * 1000 + 500,
                duration_ms=float(i % 900),
                status="error" if i % 50 == 0 else "ok",
            )
            rows.append(tuple(template[c] for c in SPAN_COLUMNS))
        insert_rows(conn, rows)
    conn.close()
    return time.perf_counter() - t0


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, Any]:
    """Median milliseconds of ``runs`` calls, and the last result."""
    times = []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


async def measure(count: int) -> dict[str, Any]:
    from gateway.store.spans import SpanFilter

    with tempfile.TemporaryDirectory(prefix="spanlab-facets-") as tmp:
        path = os.path.join(tmp, "spans.db")
        stores = sqlite_stores(path)
        await stores.database.open()  # migrates
        await stores.database.close()
        build_s = await asyncio.to_thread(build, path, count)
        stores = sqlite_stores(path)
        await stores.database.open()
        spans = stores.spans
        try:
            facets_ms, facets = await timed(spans.facets, 50)
            model_ms, models = await timed(lambda: spans.stats("model", SpanFilter()), 1)
            provider_ms, _ = await timed(lambda: spans.stats("provider", SpanFilter()), 1)
            cutoff = 1_700_000_000_000_000 + (count // 100) * 1000
            t0 = time.perf_counter()
            pruned = await spans.delete_spans_before(cutoff)
            prune_ms = (time.perf_counter() - t0) * 1000
            assert len(facets["model"]) == 80 and len(models) == 40, (facets, models)
        finally:
            await stores.database.close()
    return {
        "spans": count,
        "build_s": round(build_s, 1),
        "facets_ms": round(facets_ms, 2),
        "stats_model_ms": round(model_ms, 1),
        "stats_provider_ms": round(provider_ms, 1),
        "prune_spans": pruned,
        "prune_with_facets_rebuild_ms": round(prune_ms, 1),
    }


if __name__ == "__main__":
    print(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)))
