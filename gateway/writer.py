"""The background span writer: the only path from a finished call to the database.

The proxy hands a finished `Span` to `submit` (synchronous, never blocks, never drops)
and returns to its client. The writer task drains the queue: after a quiet spell it
stores a span at once; under load a batch is taken at most every ``MIN_INTERVAL_S``
(in the gateway's process) or ``FRAME_INTERVAL_S`` (to the writer process) with what
arrived meanwhile (up to ``write_batch_size``; `flush` does not wait for it).

Two ways to store, one interface:

* with ``process_db`` (the gateway on a SQLite file), a writer process
  (`gateway.writer_child`) derives the assembled response, usage and cost
  (`capture.finalize`), redacts and encodes (`capture.to_record`) and runs the
  transactions, on another core and under its own GIL. This side only encodes the
  spans' raw fields (`marshal`, a few microseconds a span) and reads back what the
  live view needs. A process that dies is restarted and its unacknowledged batches
  sent again (``INSERT OR REPLACE`` makes that harmless).
* otherwise (another `Store`, an in-memory database), here: the next batch is
  prepared, in slices that hand the loop back every millisecond, while the previous
  one commits on the store's thread.

A failed write is retried with back-off, never dropped; while the queue is above
``write_queue_max``, new calls wait at their start (`wait_for_room`) instead.
`close` drains everything before returning, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from gateway.capture import Span
from gateway.metrics import Metrics
from gateway.pricing import PriceTable
from gateway.span_table import SUMMARY_COLUMNS
from gateway.store import SQLiteStore, Store
from gateway.writer_child import (
    ACK,
    FAILED,
    HEADER,
    encode_prices,
    encode_spans,
    record_or_outline,
)

logger = logging.getLogger(__name__)

PREPARE_SLICE_S = 0.001
MIN_INTERVAL_S = 0.005
# Spans per frame to the writer process: encoding one takes ~0.5 ms of the loop.
FRAME_SPANS = 128
# Under load, a frame to the writer process at most this often (unless full, or
# someone waits in `flush`): each costs the loop pipe writes and reads and an
# announcement, and the process a transaction.
FRAME_INTERVAL_S = 0.02

WrittenCallback = Callable[[Sequence[Span], Sequence[Mapping[str, Any]]], None]


class SpanWriter:
    def __init__(
        self,
        store: Store,
        prices: PriceTable,
        metrics: Metrics,
        *,
        batch_size: int = 500,
        queue_max: int = 100_000,
        on_written: WrittenCallback | None = None,
        process_db: str | None = None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.metrics = metrics
        self.batch_size = max(1, batch_size)
        self.queue_max = max(1, queue_max)
        self.on_written = on_written
        self._queue: deque[Span] = deque()
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._last_batch = 0.0  # loop time the last batch was taken
        self.written = 0
        self.process_db = process_db
        self._child: _ChildProcess | None = None
        self._in_flight: dict[int, list[Span]] = {}  # sent to the process, not yet stored
        self._in_flight_spans = 0
        self._frame_size = min(FRAME_SPANS, self.batch_size)
        self._max_in_flight = max(2 * self.batch_size, 4 * FRAME_SPANS)
        self._acked = asyncio.Event()
        self._seq = 0
        self._flushing = 0  # callers waiting in `flush`: frames go at once
        metrics.bind_queue_depth(lambda: self.depth)

    @property
    def depth(self) -> int:
        """Spans submitted and not stored yet."""
        return len(self._queue) + self._in_flight_spans

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="spanlab-span-writer")

    def submit(self, span: Span) -> None:
        """Queue a finished span. Synchronous so it also works from a cancelled task."""
        if self._closed:
            logger.error(
                "span %s finished after the writer stopped; it is not stored",
                span.context.span_id,
            )
            return
        self._queue.append(span)
        self._idle.clear()
        if self.depth >= self.queue_max:
            self._room.clear()
        self._wakeup.set()

    async def wait_for_room(self) -> None:
        """Back-pressure: a new call waits here while the queue is full."""
        if not self._room.is_set():
            await self._room.wait()

    async def flush(self) -> None:
        """Wait until every span submitted so far is stored."""
        if self._queue or not self._idle.is_set():
            self._flushing += 1
            try:
                self._wakeup.set()
                await self._idle.wait()
            finally:
                self._flushing -= 1

    async def close(self) -> None:
        """Store everything queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._closed = True

    async def _run(self) -> None:
        if self.process_db is not None:
            await self._run_process(self.process_db)
        else:
            await self._run_local()

    async def _run_local(self) -> None:
        backoff = 0.05
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Two batches in hand: while the store commits one (on its own thread, where
            # SQLite runs without the GIL), the next is prepared here. Order is kept: a
            # batch that fails goes back to the front, ahead of the one prepared after it.
            storing: tuple[list[Span], list[dict[str, Any]], asyncio.Task[Any]] | None = None
            while self._queue or storing is not None:
                if 0 < len(self._queue) < self.batch_size:
                    # Group commit: under load, a transaction starts at most every
                    # MIN_INTERVAL_S, so spans arriving meanwhile share it (one span per
                    # transaction costs ~10x more disk work and CPU per span). A span
                    # arriving after a quiet spell is stored at once.
                    wait = self._last_batch + MIN_INTERVAL_S - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                self._last_batch = loop.time()
                batch = self._take()
                records: list[dict[str, Any]] = []
                failure: BaseException | None = None
                if batch:
                    try:
                        records = await self._prepare(batch)
                    except asyncio.CancelledError:
                        self._requeue(batch, *([storing[0]] if storing else []))
                        raise
                    except Exception as exc:
                        failure = exc
                if storing is not None:
                    stored_batch, stored_records, task = storing
                    storing = None
                    try:
                        await task
                    except asyncio.CancelledError:
                        self._requeue(batch, stored_batch)
                        raise
                    except Exception as exc:
                        self._requeue(batch, stored_batch)
                        backoff = await self._retry_after(exc, len(stored_batch), backoff)
                        continue
                    self._stored(stored_batch, stored_records)
                    backoff = 0.05
                if failure is not None:
                    self._requeue(batch)
                    backoff = await self._retry_after(failure, len(batch), backoff)
                    continue
                if batch:
                    storing = (
                        batch,
                        records,
                        asyncio.create_task(self.store.insert_spans(records)),
                    )
            self._idle.set()
            if self._closing and not self._queue:
                # Closed from here on, in this same step: a span submitted before
                # `close` resumes would otherwise sit in the queue unreported.
                self._closed = True
                return

    def _take(self) -> list[Span]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]

    def _requeue(self, *batches: list[Span]) -> None:
        """Put batches back at the front, the last one given first in line."""
        for batch in batches:
            self._queue.extendleft(reversed(batch))

    async def _retry_after(self, exc: BaseException, count: int, backoff: float) -> float:
        self.metrics.write_errors.inc()
        logger.error("storing %d spans failed; retrying in %.2fs", count, backoff, exc_info=exc)
        await asyncio.sleep(backoff)
        return min(backoff * 2, 5.0)

    def _stored(self, batch: list[Span], records: Sequence[Mapping[str, Any]]) -> None:
        self.written += len(batch)
        self.metrics.spans_written.inc(len(batch))
        if self.depth < self.queue_max:
            self._room.set()
        if self.on_written is not None:
            try:
                self.on_written(batch, records)
            except Exception:
                logger.exception("span written callback failed")

    async def _prepare(self, batch: list[Span]) -> list[dict[str, Any]]:
        """Finalize and encode a batch, handing the loop back every millisecond or so:
        a batch of 500 takes ~10 ms, which every call in flight would otherwise wait
        (its next stream event, its response) in one block."""
        records = []
        clock = time.perf_counter
        resume = clock() + PREPARE_SLICE_S
        for span in batch:
            records.append(record_or_outline(span, self.prices))
            if clock() > resume:
                await asyncio.sleep(0)
                resume = clock() + PREPARE_SLICE_S
        return records

    # --- the writer process --------------------------------------------------------

    async def _run_process(self, db: str) -> None:
        backoff = 0.05
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                clock = time.perf_counter
                resume = clock() + PREPARE_SLICE_S
                while self._queue or self._in_flight:
                    child = self._child
                    if child is None or child.exited:
                        if child is not None:
                            backoff = await self._child_lost(child, backoff)
                        try:
                            self._child = await _ChildProcess.start(self, db)
                        except Exception as exc:
                            backoff = await self._retry_after(exc, self.depth, backoff)
                        continue
                    if not self._queue or not self._may_send():
                        # Batches form while the process stores the ones it has.
                        self._acked.clear()
                        await self._acked.wait()
                        backoff = 0.05 if not child.exited else backoff
                        continue
                    if not self._in_flight and len(self._queue) < self._frame_size:
                        # Group commit, as in `_run_local`: one frame per MIN_INTERVAL_S
                        # under load, so the costs of a frame (its encoding, two pipe
                        # writes and reads, the announcement) are shared by its spans.
                        wait = self._last_batch + FRAME_INTERVAL_S - loop.time()
                        if wait > 0 and not (self._flushing or self._closing):
                            await asyncio.sleep(wait)
                            continue
                    self._last_batch = loop.time()
                    try:
                        self._send(child)
                    except Exception as exc:
                        backoff = await self._retry_after(exc, self._frame_size, backoff)
                        continue
                    if clock() > resume:
                        await asyncio.sleep(0)
                        resume = clock() + PREPARE_SLICE_S
                self._idle.set()
                if self._closing and not self._queue:
                    self._closed = True
                    return
        finally:
            if self._child is not None:
                await self._child.stop()
                if self._in_flight:  # only when cancelled: what it had is stored or not
                    logger.error(
                        "%d spans sent to the writer process unconfirmed", self._in_flight_spans
                    )
                self._child = None

    def _may_send(self) -> bool:
        if not self._in_flight:
            return True
        # Under load, keep the process fed with full frames (it prepares the next while
        # it stores one); otherwise let a batch form while it stores.
        return self._in_flight_spans < self._max_in_flight and len(self._queue) >= self._frame_size

    def _send(self, child: _ChildProcess) -> None:
        """Send a frame. Raises (the spans back in the queue) if they cannot be encoded."""
        queue = self._queue
        size = min(self._frame_size, len(queue))
        batch = [queue.popleft() for _ in range(size)]
        self._seq += 1
        try:
            data = encode_spans(self._seq, batch)
        except Exception:
            self._requeue(batch)
            raise
        self._in_flight[self._seq] = batch
        self._in_flight_spans += len(batch)
        try:
            child.send(data)
        except Exception:  # a process gone: its reader notices, and the frame is resent
            logger.debug("writing to the writer process failed", exc_info=True)

    def _on_ack(self, seq: int, derived: list[tuple[Any, ...]], summaries: bytes) -> None:
        batch = self._in_flight.pop(seq)
        self._in_flight_spans -= len(batch)
        for span, values in zip(batch, derived, strict=True):
            (
                span.prompt_tokens,
                span.completion_tokens,
                span.total_tokens,
                span.cached_tokens,
                span.cost_usd,
            ) = values
        self._stored(batch, SummaryRecords(summaries, len(batch)))
        self._acked.set()

    def _on_failed(self, message: str) -> None:
        self.metrics.write_errors.inc()
        logger.error("the writer process failed to store spans (retrying): %s", message)

    async def _child_lost(self, child: _ChildProcess, backoff: float) -> float:
        """The process ended with spans unconfirmed: send them again to a new one."""
        self._child = None
        batches = [self._in_flight[seq] for seq in sorted(self._in_flight, reverse=True)]
        self._in_flight.clear()
        self._in_flight_spans = 0
        self._requeue(*batches)
        exc = RuntimeError(f"the span writer process exited (code {child.returncode})")
        return await self._retry_after(exc, sum(len(b) for b in batches), backoff)


# Where `gateway` is imported from: the process imports the same code.
_SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)


class SummaryRecords(Sequence[Mapping[str, Any]]):
    """The stored summary columns of a batch, decoded on first use: most batches are
    announced to no one."""

    def __init__(self, encoded: bytes, count: int) -> None:
        self._encoded = encoded
        self._count = count
        self._records: list[dict[str, Any]] | None = None

    def _decoded(self) -> list[dict[str, Any]]:
        if self._records is None:
            rows = marshal.loads(self._encoded)
            self._records = [dict(zip(SUMMARY_COLUMNS, row, strict=True)) for row in rows]
        return self._records

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        return self._decoded()[index]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return self._count


class _ChildProcess:
    """The running writer process (`gateway.writer_child`) and the task reading its answers."""

    def __init__(self, writer: SpanWriter, proc: asyncio.subprocess.Process) -> None:
        self.writer = writer
        self.proc = proc
        self.exited = False
        self.returncode: int | None = None
        self.reader = asyncio.create_task(self._read(), name="spanlab-writer-process")

    @classmethod
    async def start(cls, writer: SpanWriter, db: str) -> _ChildProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            # Not `-m gateway.writer_child`: a module run as __main__ is compiled at
            # every start, an imported one comes from its cached bytecode.
            "-c",
            "import sys; from gateway.writer_child import main; main(sys.argv[1:])",
            db,
            str(writer.batch_size),
            logging.getLevelName(logging.getLogger(__name__).getEffectiveLevel()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            # Its own session: a Ctrl-C at the terminal stops the gateway, which then
            # drains the writer; the process ends when its input does.
            start_new_session=True,
        )
        child = cls(writer, proc)
        child.send(encode_prices(writer.prices))
        return child

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while True:
                head = await stdout.readexactly(HEADER.size)
                length, kind = HEADER.unpack(head)
                payload = await stdout.readexactly(length)
                if kind == ACK:
                    self.writer._on_ack(*marshal.loads(payload))
                elif kind == FAILED:
                    self.writer._on_failed(marshal.loads(payload))
        except asyncio.IncompleteReadError:
            pass  # the process ended
        except Exception:
            logger.exception("reading from the writer process failed")
            self.proc.kill()
        finally:
            self.returncode = await self.proc.wait()
            self.exited = True
            self.writer._acked.set()

    async def stop(self) -> None:
        """End its input: it stores what it has read, answers, and exits."""
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        await asyncio.shield(self.reader)


def writer_process_db(store: Store) -> str | None:
    """The database file a writer process can store into for ``store``, if any."""
    if type(store) is SQLiteStore and store.path != ":memory:":
        return store.path
    return None
