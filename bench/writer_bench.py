"""Spans per second through the background writer alone.

`SpanWriter` on a SQLite span store in a temporary file, with its writer process as in
production (``--in-process``: the writer in this process, as for other stores):
``count`` finished spans (a chat call as the proxy leaves it: parsed request, raw
response bytes, headers, a client credential to scrub) are submitted at once, then
``flush`` waits until every one is committed. The time covers what the writer does in
production: encoding the spans for the process, `finalize` (parse the response, usage,
cost), `to_record` (redaction, JSON encoding) and the SQLite transactions,
``batch_size`` spans per transaction. The process starts before the clock does.

``--store postgresql``: the same into PostgreSQL (a throwaway cluster,
`bench.postgres.PostgresServer`, ``synchronous_commit = off``: the promise of SQLite's
``synchronous = NORMAL``), a fresh database per batch size; the writer runs in the
gateway's process there (a server database has no file for a writer process), storing
each batch with COPY (`gateway.store.postgres_spans`).

``--otlp``: the same with OTLP export on (gateway/export/), to a receiver in a process of
its own that reads each request and answers 200 (what a collector costs the writer is
the mapping, the protobuf encoding and the sending, not the receiver's work); the
spans exported and dropped are reported beside the throughput.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.mock_upstream import COMPLETION
from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import credential_values, redact_headers
from gateway.capture.span import Span, SpanContext, now_us
from gateway.export.otlp import ExportConfig
from gateway.metrics import Metrics
from gateway.store.stores import sqlite_stores, stores_for
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


# A minimal OTLP/HTTP receiver: reads each request, answers 200 with an empty body.
RECEIVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1/traces"


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` (0 without one), from /proc."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _new_pg_database(server_dsn: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server_dsn.rsplit("/", 1)[0] + "/" + name


async def measure(
    batch_size: int,
    count: int,
    *,
    process: bool = True,
    otlp: str | None = None,
    pg_dsn: str | None = None,
) -> dict[str, Any]:
    export = None
    if otlp is not None:
        export = ExportConfig(otlp, "spanlab-bench", False, 20_000, {"mock": "openai"}, "bench")
    metrics = Metrics()
    with tempfile.TemporaryDirectory(prefix="spanlab-writer-") as tmp:
        if pg_dsn is not None:
            url = await _new_pg_database(pg_dsn, f"writer_bench_{batch_size}")
            stores = stores_for(url)
        else:
            stores = sqlite_stores(os.path.join(tmp, "spans.db"))
        await stores.database.open()
        store = stores.spans
        writer = SpanWriter(
            store,
            PriceTable(),
            metrics,
            batch_size=batch_size,
            queue_max=count + 1,
            process_db=stores.database.file_path if process else None,
            export=export,
        )
        spans = [make_span() for _ in range(count)]
        writer.start()
        try:
            # Not timed: the writer process starting (once per gateway).
            writer.submit(make_span())
            await writer.flush()
            child = writer._child.proc.pid if writer._child is not None else None
            t0 = time.perf_counter()
            cpu0, child0 = time.process_time(), _cpu_seconds(child)
            for span in spans:
                writer.submit(span)
            await writer.flush()
            elapsed = time.perf_counter() - t0
            cpu, child_cpu = time.process_time() - cpu0, _cpu_seconds(child) - child0
            stored = await store.count_spans() - 1
        finally:
            await writer.close()
            await stores.database.close()
    result = {
        "store": stores.database.dialect,
        "batch_size": batch_size,
        "spans": count,
        "stored": stored,
        "seconds": elapsed,
        "spans_per_s": count / elapsed,
        # CPU per span on each side, which the machine's load distorts much less than
        # the rate: this process's (the gateway's share) and the writer process's.
        "gateway_cpu_us": cpu / count * 1e6,
        "writer_cpu_us": child_cpu / count * 1e6,
    }
    if export is not None:  # counted until the writer closed (its exporter drains first)
        sample = metrics.registry.get_sample_value
        result["otlp_exported"] = sample("spanlab_otlp_spans_exported_total")
        result["otlp_dropped"] = sum(
            sample("spanlab_otlp_spans_dropped_total", {"reason": r}) or 0
            for r in ("queue_full", "export_failed")
        )
    return result


def run_writer_bench(
    counts: dict[int, int], *, process: bool = True, otlp: bool = False, postgres: bool = False
) -> list[dict[str, Any]]:
    """``{batch_size: span count}`` -> one result per batch size."""
    receiver, url = start_receiver() if otlp else (None, None)
    server = None
    if postgres:
        from bench.postgres import PostgresServer

        server = PostgresServer({"synchronous_commit": "off"}).start()
    try:
        return [
            asyncio.run(
                measure(
                    size,
                    n,
                    process=process and server is None,
                    otlp=url,
                    pg_dsn=server.dsn if server is not None else None,
                )
            )
            for size, n in counts.items()
        ]
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    in_process = "--in-process" in sys.argv[1:]
    otlp = "--otlp" in sys.argv[1:]
    args = sys.argv[1:]
    postgres = "--store" in args and args[args.index("--store") + 1] == "postgresql"
    counts = {1: 2000, 100: 20000, 1000: 20000}
    for result in run_writer_bench(counts, process=not in_process, otlp=otlp, postgres=postgres):
        print(result)
