"""Spans per second through the background writer alone.

`SpanWriter` on a SQLite span store in a temporary file, with its writer process as in
production (``--in-process``: the writer in this process, as for other stores):
``count`` finished spans (a chat call as the proxy leaves it: parsed request, raw
response bytes, headers, a client credential to scrub) are submitted at once, then
``flush`` waits until every one is committed. The time covers what the writer does in
production: encoding the spans for the process, `finalize` (parse the response, usage,
cost), `to_record` (redaction, JSON encoding) and the SQLite transactions,
``batch_size`` spans per transaction. The process starts before the clock does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from typing import Any

from bench.mock_upstream import COMPLETION
from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import credential_values, redact_headers
from gateway.capture.span import Span, SpanContext, now_us
from gateway.metrics import Metrics
from gateway.store.stores import sqlite_stores
from gateway.writer.span_writer import SpanWriter

REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
        {"role": "user", "content": "Write one sentence about foxes and dogs, please."},
    ],
    "temperature": 0.2,
}
HEADERS = [
    ("host", "127.0.0.1:8080"),
    ("content-type", "application/json"),
    ("authorization", "Bearer sk-bench-0123456789abcdef"),
    ("user-agent", "spanlab-bench"),
]


def make_span() -> Span:
    start = now_us()
    span = Span(
        context=SpanContext.from_headers(dict(HEADERS)),
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=start,
    )
    span.provider = "mock"
    span.request_model = "gpt-4o-mini"
    span.request = dict(REQUEST)
    span.request_headers = redact_headers(HEADERS)
    span.secrets = credential_values(HEADERS)
    span.http_status = 200
    span.response_headers = {"content-type": "application/json"}
    span.response_body = COMPLETION
    span.end_us = start + 1000
    return span


async def measure(batch_size: int, count: int, *, process: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="spanlab-writer-") as tmp:
        stores = sqlite_stores(os.path.join(tmp, "spans.db"))
        await stores.database.open()
        store = stores.spans
        writer = SpanWriter(
            store,
            PriceTable(),
            Metrics(),
            batch_size=batch_size,
            queue_max=count + 1,
            process_db=stores.database.file_path if process else None,
        )
        spans = [make_span() for _ in range(count)]
        writer.start()
        try:
            # Not timed: the writer process starting (once per gateway).
            writer.submit(make_span())
            await writer.flush()
            t0 = time.perf_counter()
            for span in spans:
                writer.submit(span)
            await writer.flush()
            elapsed = time.perf_counter() - t0
            stored = await store.count_spans() - 1
        finally:
            await writer.close()
            await stores.database.close()
    return {
        "batch_size": batch_size,
        "spans": count,
        "stored": stored,
        "seconds": elapsed,
        "spans_per_s": count / elapsed,
    }


def run_writer_bench(counts: dict[int, int], *, process: bool = True) -> list[dict[str, Any]]:
    """``{batch_size: span count}`` -> one result per batch size."""
    return [asyncio.run(measure(size, n, process=process)) for size, n in counts.items()]


if __name__ == "__main__":
    in_process = "--in-process" in sys.argv[1:]
    for result in run_writer_bench({1: 2000, 100: 20000, 1000: 20000}, process=not in_process):
        print(result)
