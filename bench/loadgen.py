"""The load generator: a worker process that runs one job at a time.

It reads one JSON job per line on stdin and answers one JSON result per line on
stdout. The HTTP client is a raw asyncio protocol on uvloop with the httptools
response parser (the same parser uvicorn uses): one keep-alive HTTP/1.1 connection
per simulated client, requests pre-encoded, nothing parsed but the status line, two
headers and (for streams) the event boundaries. That keeps its cost per request in
the tens of microseconds, so it is not what limits the figures; every result carries
the worker's CPU use during the job (``cpu_util``, 1.0 = one core) to show it.

Jobs (``kind``): ``latency`` (sequential requests on one connection), ``throughput``
(closed loop: ``concurrency`` connections, each sending its next request as soon as
the previous answer ends, for ``duration`` seconds), ``streams`` (``total`` streams,
``concurrency`` at a time: time to first event, gaps between events, events
counted), ``commit_delay`` (a throughput job with a ``GET /events`` listener: the
time from each response's end to its span's ``span`` event, which the gateway sends
right after the span's transaction commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httptools

from bench.util import run, summary

NS = 1_000_000_000


def now() -> int:
    return time.perf_counter_ns()


@dataclass(slots=True)
class Exchange:
    t_sent: int = 0
    t_first: int = 0  # first body byte, or for event streams the first whole event
    t_end: int = 0
    t_body: int = 0  # first body byte
    status: int = 0
    body_bytes: int = 0
    span_id: str | None = None
    track_events: bool = False
    event_times: list[int] = field(default_factory=list)
    events: int = 0  # data events other than [DONE]
    done: int = 0  # [DONE] events
    tail: bytes = b""
    on_event: Any = None  # callback(bytes) for each whole event (the /events listener)


class Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection, one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.waiter: asyncio.Future[Exchange] | None = None
        self.closed = False
        self.keep_alive = True

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, host, port)
        return conn

    def request(self, raw: bytes, exchange: Exchange) -> asyncio.Future[Exchange]:
        assert self.transport is not None and self.waiter is None
        self.exchange = exchange
        self.waiter = asyncio.get_running_loop().create_future()
        exchange.t_sent = now()
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # --- asyncio ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection lost: {exc or 'closed by peer'}"))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # --- httptools ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        ex = self.exchange
        if lname == b"x-spanlab-span-id" and ex is not None:
            ex.span_id = value.decode()
        elif lname == b"connection" and value.lower() == b"close":
            self.keep_alive = False

    def on_headers_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is None:
            return
        t = now()
        if not ex.t_body:
            ex.t_body = t
        if not ex.t_first and not ex.track_events:
            ex.t_first = t
        ex.body_bytes += len(body)
        if not ex.track_events:
            return
        buffer = ex.tail + body if ex.tail else body
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = buffer[start : end + 2]
            start = end + 2
            if event.startswith(b"data: [DONE]"):
                ex.done += 1
            elif event.startswith(b"data: ") or event.startswith(b"event: "):
                ex.events += 1
                if not ex.t_first:
                    ex.t_first = t
                ex.event_times.append(t)
                if ex.on_event is not None:
                    ex.on_event(event, t)
        ex.tail = buffer[start:]

    def on_message_complete(self) -> None:
        ex, waiter = self.exchange, self.waiter
        self.waiter = None
        if ex is not None:
            ex.t_end = now()
        if not self.keep_alive:
            self.close()
        if waiter is not None and not waiter.done() and ex is not None:
            waiter.set_result(ex)


def encode_request(job: dict[str, Any], host: str, port: int) -> bytes:
    method = job.get("method", "POST")
    body = job.get("body")
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    lines = [f"{method} {job['path']} HTTP/1.1", f"host: {host}:{port}"]
    for name, value in (job.get("headers") or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append("content-type: application/json")
        lines.append(f"content-length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class Client:
    """One simulated client: a connection, reopened after an error."""

    def __init__(self, host: str, port: int, raw: bytes, timeout: float) -> None:
        self.host = host
        self.port = port
        self.raw = raw
        self.timeout = timeout
        self.conn: Conn | None = None

    async def connect(self) -> None:
        self.conn = await Conn.open(self.host, self.port)

    async def exchange(self, track_events: bool = False) -> Exchange:
        if self.conn is None or self.conn.closed or not self.conn.keep_alive:
            if self.conn is not None:
                self.conn.close()
            await self.connect()
        assert self.conn is not None
        ex = Exchange(track_events=track_events)
        try:
            return await asyncio.wait_for(self.conn.request(self.raw, ex), self.timeout)
        except BaseException:
            self.conn.close()
            self.conn = None
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Errors:
    def __init__(self) -> None:
        self.count = 0
        self.samples: list[str] = []

    def add(self, what: str) -> None:
        self.count += 1
        if len(self.samples) < 5:
            self.samples.append(what)


# --- jobs --------------------------------------------------------------------------


async def job_latency(job: dict[str, Any]) -> dict[str, Any]:
    host, port = job["host"], job["port"]
    client = Client(host, port, encode_request(job, host, port), job.get("timeout", 30.0))
    errors = Errors()
    latencies: list[float] = []
    sent = 0
    try:
        await client.connect()
        for _ in range(job["n"]):
            sent += 1
            try:
                ex = await client.exchange()
            except Exception as exc:
                errors.add(repr(exc))
                continue
            if ex.status != 200:
                errors.add(f"HTTP {ex.status}")
                continue
            latencies.append((ex.t_end - ex.t_sent) / 1000.0)  # microseconds
    finally:
        client.close()
    return {
        "latency_us": summary(latencies),
        "raw_us": latencies if job.get("raw") else None,
        "errors": errors.count,
        "error_samples": errors.samples,
        "sent": sent,
    }


async def _open_clients(job: dict[str, Any], n: int) -> list[Client]:
    host, port = job["host"], job["port"]
    raw = encode_request(job, host, port)
    clients = [Client(host, port, raw, job.get("timeout", 30.0)) for _ in range(n)]
    gate = asyncio.Semaphore(128)

    async def connect(c: Client) -> None:
        async with gate:
            await c.connect()

    await asyncio.gather(*(connect(c) for c in clients))
    return clients


async def job_throughput(job: dict[str, Any], on_done: Any = None) -> dict[str, Any]:
    concurrency, duration = job["concurrency"], job["duration"]
    clients = await _open_clients(job, concurrency)
    errors = Errors()
    latencies: list[float] = []
    counted = 0
    sent = 0
    start = now()
    deadline = start + int(duration * NS)

    async def worker(client: Client) -> None:
        nonlocal counted, sent
        while now() < deadline:
            sent += 1
            try:
                ex = await client.exchange()
            except Exception as exc:
                errors.add(repr(exc))
                continue
            if ex.status != 200:
                errors.add(f"HTTP {ex.status}")
                continue
            if on_done is not None:
                on_done(ex)
            if ex.t_end <= deadline:
                counted += 1
                latencies.append((ex.t_end - ex.t_sent) / 1000.0)

    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for c in clients:
            c.close()
    return {
        "rps": counted / duration,
        "completed": counted,
        "sent": sent,
        "errors": errors.count,
        "error_samples": errors.samples,
        "latency_us": summary(latencies),
    }


async def job_streams(job: dict[str, Any]) -> dict[str, Any]:
    concurrency, total = job["concurrency"], job["total"]
    expected = job["expected_events"]
    clients = await _open_clients(job, min(concurrency, total))
    errors = Errors()
    ttft: list[float] = []
    gaps: list[float] = []
    durations: list[float] = []
    complete = 0
    events_received = 0
    sent = 0
    remaining = total
    start = now()

    stagger = job.get("stagger_s", 0.0)

    async def worker(index: int, client: Client) -> None:
        nonlocal remaining, complete, events_received, sent
        if stagger:
            await asyncio.sleep(index * stagger)
        while remaining > 0:
            remaining -= 1
            sent += 1
            try:
                ex = await client.exchange(track_events=True)
            except Exception as exc:
                errors.add(repr(exc))
                continue
            events_received += ex.events
            if ex.status != 200:
                errors.add(f"HTTP {ex.status}")
                continue
            if ex.events != expected or ex.done != 1:
                errors.add(f"stream incomplete: {ex.events} events, [DONE] x{ex.done}")
                continue
            complete += 1
            ttft.append((ex.t_first - ex.t_sent) / 1000.0)
            durations.append((ex.t_end - ex.t_sent) / 1000.0)
            times = ex.event_times
            gaps.extend((b - a) / 1000.0 for a, b in itertools.pairwise(times))

    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    finally:
        for c in clients:
            c.close()
    return {
        "sent": sent,
        "complete": complete,
        "errors": errors.count,
        "error_samples": errors.samples,
        "events_received": events_received,
        "events_expected": expected * total,
        "ttft_us": summary(ttft),
        "gap_us": summary(gaps),
        "duration_us": summary(durations),
        "wall_s": (now() - start) / NS,
    }


async def job_commit_delay(job: dict[str, Any]) -> dict[str, Any]:
    """Throughput with a live ``GET /events`` listener timing each span's commit."""
    host, port = job["host"], job["port"]
    seen: dict[str, int] = {}
    ended: dict[str, int] = {}
    pending: set[str] = set()
    all_seen = asyncio.Event()
    finished = False
    lagged = 0

    def on_event(event: bytes, t: int) -> None:
        nonlocal lagged
        if event.startswith(b"event: lagged"):
            lagged += 1
            return
        if not event.startswith(b"event: span"):
            return
        data = event.split(b"\ndata: ", 1)[1]
        span_id = json.loads(data)["span_id"]
        seen.setdefault(span_id, t)
        pending.discard(span_id)
        if finished and not pending:
            all_seen.set()

    listen = {"method": "GET", "path": job["events_path"]}
    conn = await Conn.open(host, port)
    listener = Exchange(track_events=True, on_event=on_event)
    listening = conn.request(encode_request(listen, host, port), listener)
    # The stream starts with a comment: once it is here, no span can be missed.
    while not listener.t_body and not listening.done():  # noqa: ASYNC110 (fed by a protocol)
        await asyncio.sleep(0.005)

    def on_done(ex: Exchange) -> None:
        if ex.span_id:
            ended[ex.span_id] = ex.t_end
            if ex.span_id not in seen:
                pending.add(ex.span_id)

    result = await job_throughput(job, on_done)
    finished = True
    if not pending:
        all_seen.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), job.get("settle_s", 10.0))
    conn.close()
    listening.cancel()
    delays = [(seen[s] - t) / 1000.0 for s, t in ended.items() if s in seen]
    result.update(
        {
            "commit_delay_us": summary(delays),
            "spans_tracked": len(ended),
            "spans_not_seen": sum(1 for s in ended if s not in seen),
            "lagged_events": lagged,
        }
    )
    return result


JOBS = {
    "latency": job_latency,
    "throughput": job_throughput,
    "streams": job_streams,
    "commit_delay": job_commit_delay,
}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await reader.readline()
        if not line:
            return
        job = json.loads(line)
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        try:
            result = await JOBS[job["kind"]](job)
        except Exception as exc:  # report, keep serving
            result = {"failed": repr(exc)}
        wall = time.perf_counter() - wall0
        result["cpu_util"] = (time.process_time() - cpu0) / wall if wall > 0 else None
        result["wall_s"] = result.get("wall_s", wall)
        print(json.dumps(result), flush=True)


def main() -> None:
    run(serve())


if __name__ == "__main__":
    main()
