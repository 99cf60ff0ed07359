"""The background span writer: the only path from a finished call to the database.

The proxy hands a finished `Span` to `submit` (synchronous, never blocks, never drops)
and returns to its client. Two ways to store, one interface:

* with ``process_db`` (the gateway on a SQLite file), a writer process
  (`gateway.writer.process`) derives the assembled response, usage and cost
  (`capture.finalize`), redacts and encodes (`capture.to_record`) and runs the
  transactions, on another core and under its own GIL. This side only encodes the
  spans' raw fields (`marshal`, a few microseconds a span) and reads back what the
  live view needs. Spans are handed over at once: the first span finished in a turn
  of the event loop is written to the process's pipe there and then, the others of
  that turn in one frame by a callback queued behind it, which runs before any of
  their responses leave (the server sends a turn's responses from callbacks queued
  after it). So a span is in the process (which outlives a gateway killed with
  SIGKILL, and stores what it has read when its input closes) before the client has
  its answer; under load the pipe writes stay about one per loop turn. A process that
  dies is restarted and its unacknowledged batches sent again (a span stored twice is
  recognised, `span_table.insert_rows`).
* otherwise (no database file for a process: in memory, or injected stores), here,
  through the `SpanStore`: after a quiet spell a span is stored at once; under load a
  batch is taken at most every ``MIN_INTERVAL_S`` with what arrived meanwhile (up to
  ``write_batch_size``). The next batch is prepared, in slices that hand the loop back
  every millisecond, while the previous one commits on the store's thread.

A failed write is retried with back-off, never dropped, and logged once per episode
(and once when it works again); `health` reports it. While the queue is above
``write_queue_max`` spans or ``write_queue_max_bytes`` (estimated: the bodies' sizes),
new calls wait at their start (`wait_for_room`) instead. `flush` waits, within a
bound, for what was submitted before it. `close` drains within a deadline; what is
left then is saved, redacted, to a spill file beside the database and stored at the
next start (`gateway.writer.spill`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from gateway.capture.pricing import PriceTable
from gateway.capture.rollup import FOLD_CHUNK
from gateway.capture.span import Span
from gateway.capture.span_table import SUMMARY_COLUMNS, span_rows
from gateway.errors import ServiceUnavailable
from gateway.export.otlp import ExportConfig
from gateway.export.process import ExportPipe
from gateway.metrics import Metrics
from gateway.store.spans import SpanStore
from gateway.writer.process import (
    ACK,
    EXPORTED,
    FAILED,
    HEADER,
    encode_prices,
    encode_spans,
    record_or_outline,
)
from gateway.writer.spill import write_spill

logger = logging.getLogger(__name__)

PREPARE_SLICE_S = 0.001
MIN_INTERVAL_S = 0.005
# Spans per frame to the writer process: encoding one takes ~0.5 ms of the loop.
FRAME_SPANS = 128
# Sent to the writer process and not acknowledged yet, at most (beyond, spans wait
# here): the process reads ahead only so far, and the rest would sit in the pipe's
# buffer in this process's memory, where a kill loses it just the same.
IN_FLIGHT_BATCHES = 4
IN_FLIGHT_BYTES = 64 * 1024 * 1024
# A span's size beyond its bodies, for the queue's byte bound: ids, headers, objects.
SPAN_BASE_BYTES = 2048
STREAM_EVENT_BYTES = 256  # an event already parsed (a dict): its size is not known
# `health` says degraded from this fraction of the queue's bounds.
DEGRADED_FRACTION = 0.1

WrittenCallback = Callable[[Sequence[Span], Sequence[Mapping[str, Any]]], None]


@dataclass(slots=True)
class _Batch:
    """Spans taken from the queue together, with their estimated sizes."""

    spans: list[Span]
    sizes: list[int]
    nbytes: int


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """What `/healthz` reports of the writer."""

    queue_depth: int
    queue_bytes: int
    failing: bool
    last_error: str | None
    last_error_at: float | None  # Unix time
    problems: list[str] = field(default_factory=list)


class SpanWriter:
    def __init__(
        self,
        store: SpanStore,
        prices: PriceTable,
        metrics: Metrics,
        *,
        batch_size: int = 500,
        queue_max: int = 100_000,
        queue_max_bytes: int = 256 * 1024 * 1024,
        on_written: WrittenCallback | None = None,
        process_db: str | None = None,
        spill_path: str | None = None,
        stall_s: float = 5.0,
        export: ExportConfig | None = None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.metrics = metrics
        self.batch_size = max(1, batch_size)
        self.queue_max = max(1, queue_max)
        self.queue_max_bytes = max(1, queue_max_bytes)
        self.on_written = on_written
        self.spill_path = spill_path
        self.stall_s = stall_s
        self._queue: deque[Span] = deque()
        self._sizes: deque[int] = deque()  # each queued span's estimated bytes
        self._queue_bytes = 0
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._progress = asyncio.Event()  # set at every stored batch (for `flush`)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._closed = False
        self._abandoned = False  # the drain's deadline passed: the rest goes to the spill
        self._last_batch = 0.0  # loop time the last batch was taken
        self._last_progress = time.monotonic()
        self.written = 0
        # The current failure episode: logged when it starts and when it ends.
        self.failing = False
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._failures = 0
        self.process_db = process_db
        self._child: _ChildProcess | None = None
        self._in_flight: dict[int, _Batch] = {}  # sent to the process, not yet stored
        self._held: list[_Batch] = []  # in this process: taken, not yet stored
        # Spans taken from the queue and not stored yet (either way), and their bytes.
        self._in_flight_spans = 0
        self._in_flight_bytes = 0
        self._frame_size = min(FRAME_SPANS, self.batch_size)
        self._max_in_flight = max(IN_FLIGHT_BATCHES * self.batch_size, 4 * FRAME_SPANS)
        self._send_queued = False  # a `_send_later` is in the loop's ready queue
        self._send_error: BaseException | None = None
        self._seq = 0
        self._flushing = 0  # callers waiting in `flush`: no group-commit wait
        self._unfolded = True  # stored spans may wait to be folded into the rollup
        metrics.bind_queue_depth(lambda: self.depth)
        # OTLP export: in the writer process when there is one (it gets the config),
        # else here, fed in `_stored` (off the request path all the same).
        self.export = export
        self._exporter: ExportPipe | None = None
        if export is not None and process_db is None:
            self._exporter = ExportPipe(export, metrics.observe_export)

        metrics.bind_writer_lag(lambda: self.lag_seconds)

    @property
    def lag_seconds(self) -> float:
        """How long spans have waited for the writer without any being stored: since the
        queue stopped being empty, or since the last batch was stored; 0 when nothing
        waits. Read at scrape time only (no work per call)."""
        if not self.depth:
            return 0.0
        return max(0.0, time.monotonic() - self._last_progress)

    @property
    def depth(self) -> int:
        """Spans submitted and not stored yet."""
        return len(self._queue) + self._in_flight_spans

    @property
    def depth_bytes(self) -> int:
        """Their estimated size."""
        return self._queue_bytes + self._in_flight_bytes

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name="spanlab-span-writer")

    def submit(self, span: Span, size: int = 0) -> None:
        """Queue a finished span; ``size``: bytes the caller knows of (its request
        body). Synchronous so it also works from a cancelled task."""
        if self._closed:
            logger.error(
                "span %s finished after the writer stopped; it is not stored",
                span.context.span_id,
            )
            return
        # The size, cheaply: the bodies' lengths (a stream's events are bytes).
        size += SPAN_BASE_BYTES
        body = span.response_body
        if body:
            size += len(body)
        events = span.stream_events
        if events:
            if type(events[0]) is bytes:
                size += sum(map(len, events))
            else:
                size += STREAM_EVENT_BYTES * len(events)
        queue = self._queue
        if not queue and not self._in_flight_spans:
            self._last_progress = time.monotonic()  # waiting starts now
        queue.append(span)
        self._sizes.append(size)
        self._queue_bytes += size
        if (
            len(queue) + self._in_flight_spans >= self.queue_max
            or self._queue_bytes + self._in_flight_bytes >= self.queue_max_bytes
        ):
            self._room.clear()
        if self.process_db is None:
            self._wakeup.set()
        elif not self._send_queued and self._loop is not None:
            # The first span of this loop turn goes to the process now; the callback
            # queued here sends the rest of the turn's in one frame (module docstring).
            self._send_queued = True
            self._loop.call_soon(self._send_later)
            self._send_now()

    async def wait_for_room(self) -> None:
        """Back-pressure: a new call waits here while the queue is full."""
        if not self._room.is_set():
            await self._room.wait()

    async def flush(self, within: float | None = None) -> None:
        """Wait until every span submitted so far is stored. Past ``within`` seconds,
        `ServiceUnavailable` (the writer is behind or failing)."""
        # Spans are stored in the order submitted, so those submitted so far are stored
        # once `written` has grown by what is waiting now.
        target = self.written + self.depth
        if self.written >= target:
            return
        self._flushing += 1
        self._wakeup.set()
        try:
            async with asyncio.timeout(within):
                while self.written < target:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            detail = f"; last error: {self.last_error}" if self.failing else ""
            raise ServiceUnavailable(
                f"Recent calls are not stored yet: the span writer did not catch up within"
                f" {within:g} s ({self.depth} spans waiting{detail}). Try again shortly.",
                code="span_writer_behind",
                headers={"retry-after": "5"},
            ) from None
        finally:
            self._flushing -= 1

    async def close(
        self, deadline_s: float | None = None, abandon: asyncio.Event | None = None
    ) -> None:
        """Store everything queued, then stop. If that takes longer than
        ``deadline_s`` or ``abandon`` is set, what is not stored goes to the spill
        file (`write_spill`) instead."""
        self._closing = True
        self._wakeup.set()
        task = self._task
        if task is not None:
            if self.depth:
                logger.info(
                    "storing the %d spans still queued (up to %s; a second SIGTERM or"
                    " SIGINT saves them to disk at once)",
                    self.depth,
                    "no limit" if deadline_s is None else f"{deadline_s:g} s",
                )
            if not await _finished_within(task, deadline_s, abandon):
                self._abandoned = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._spill_unstored()
            else:
                task.result()
            self._task = None
        self._closed = True
        if self._exporter is not None:
            await asyncio.to_thread(self._exporter.close)

    def health(self) -> WriterHealth:
        problems = []
        if self.failing:
            problems.append(f"storing spans fails: {self.last_error}")
        depth, nbytes = self.depth, self.depth_bytes
        if depth and time.monotonic() - self._last_progress > self.stall_s:
            problems.append(f"no span stored for more than {self.stall_s:g} s")
        if (
            depth >= self.queue_max * DEGRADED_FRACTION
            or nbytes >= self.queue_max_bytes * DEGRADED_FRACTION
        ):
            problems.append(f"{depth} spans ({nbytes} bytes) waiting to be stored")
        return WriterHealth(
            queue_depth=depth,
            queue_bytes=nbytes,
            failing=self.failing,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            problems=problems,
        )

    async def _run(self) -> None:
        if self.process_db is not None:
            await self._run_process(self.process_db)
        else:
            await self._run_local()

    # --- failures, progress -------------------------------------------------------------

    def _write_failed(self, message: str, exc: BaseException | None = None) -> None:
        """A write failed (it is retried): logged when an episode of failures starts."""
        self.metrics.write_errors.inc()
        self.last_error = message
        self.last_error_at = time.time()
        self._failures += 1
        if not self.failing:
            self.failing = True
            logger.error(
                "storing spans failed: %s (%d waiting); retrying until it works (logged"
                " again then)",
                message,
                self.depth,
                exc_info=exc,
            )
        else:
            logger.debug("storing spans failed again: %s", message)

    async def _retry_after(self, exc: BaseException, backoff: float) -> float:
        self._write_failed(f"{type(exc).__name__}: {exc}", exc)
        await asyncio.sleep(backoff)
        return min(backoff * 2, 5.0)

    async def _fold_local(self) -> None:
        """Caught up: fold the stored spans into the store's rollup (what the writer
        process does between its transactions), chunk by chunk while nothing waits."""
        self._unfolded = False
        try:
            while await self.store.fold_rollup() >= FOLD_CHUNK and not self._queue:
                pass
        except Exception as exc:
            logger.warning("folding spans into the rollup failed (tried again later): %s", exc)

    def _stored(self, batch: _Batch, records: Sequence[Mapping[str, Any]]) -> None:
        if self.failing:
            self.failing = False
            logger.warning(
                "storing spans works again, after %d failed attempts (the last: %s)",
                self._failures,
                self.last_error,
            )
            self._failures = 0
        count = len(batch.spans)
        self._unfolded = True
        self.written += count
        self._last_progress = time.monotonic()
        self._progress.set()
        self.metrics.spans_written.inc(count)
        if self.depth < self.queue_max and self.depth_bytes < self.queue_max_bytes:
            self._room.set()
        if self._exporter is not None:
            self._exporter.offer(span_rows(records))
        if self.on_written is not None:
            try:
                self.on_written(batch.spans, records)
            except Exception:
                logger.exception("span written callback failed")

    # --- the queue ----------------------------------------------------------------------

    def _take(self, limit: int) -> _Batch:
        queue, sizes = self._queue, self._sizes
        count = min(limit, len(queue))
        if count == 1:  # the usual frame to the writer process: one span
            size = sizes.popleft()
            batch = _Batch([queue.popleft()], [size], size)
        else:
            taken = [sizes.popleft() for _ in range(count)]
            batch = _Batch([queue.popleft() for _ in range(count)], taken, sum(taken))
        self._queue_bytes -= batch.nbytes
        return batch

    def _requeue(self, *batches: _Batch) -> None:
        """Put batches back at the front, the last one given first in line."""
        for batch in batches:
            self._queue.extendleft(reversed(batch.spans))
            self._sizes.extendleft(reversed(batch.sizes))
            self._queue_bytes += batch.nbytes

    def _spill_unstored(self) -> None:
        """At a shutdown that could not wait: what is not stored goes to the spill file."""
        batches = [self._in_flight[seq] for seq in sorted(self._in_flight)]
        self._in_flight.clear()
        self._in_flight_spans = self._in_flight_bytes = 0
        spans = [span for batch in batches for span in batch.spans]
        spans += self._queue
        self._queue.clear()
        self._sizes.clear()
        self._queue_bytes = 0
        if not spans:
            return
        if self.spill_path is None:
            logger.error(
                "%d spans were not stored before the shutdown deadline and are lost: this"
                " store has no file to save them beside",
                len(spans),
            )
            return
        try:
            write_spill(self.spill_path, spans, self.prices)
        except Exception:
            logger.exception(
                "%d spans could not be saved to %s and are lost", len(spans), self.spill_path
            )
            return
        logger.error(
            "the span writer did not finish in time: %d spans saved (redacted) to %s;"
            " they are stored at the next start",
            len(spans),
            self.spill_path,
        )

    # --- in this process --------------------------------------------------------------

    async def _run_local(self) -> None:
        backoff = 0.05
        loop = asyncio.get_running_loop()
        storing: tuple[_Batch, list[dict[str, Any]], asyncio.Task[Any]] | None = None
        try:
            while True:
                if self._unfolded and not self._queue:
                    await self._fold_local()
                await self._wakeup.wait()
                self._wakeup.clear()
                # Two batches in hand: while the store commits one (on its own thread,
                # where SQLite runs without the GIL), the next is prepared here. Order is
                # kept: on a failure both go back to the front of the queue, in order.
                storing = None
                while self._queue or storing is not None:
                    if 0 < len(self._queue) < self.batch_size and not self._flushing:
                        # Group commit: under load, a transaction starts at most every
                        # MIN_INTERVAL_S, so spans arriving meanwhile share it (one span
                        # per transaction costs ~10x more disk work and CPU per span). A
                        # span arriving after a quiet spell is stored at once.
                        wait = self._last_batch + MIN_INTERVAL_S - loop.time()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    self._last_batch = loop.time()
                    batch = self._hold(self.batch_size)
                    records: list[dict[str, Any]] = []
                    failure: BaseException | None = None
                    if batch.spans:
                        try:
                            records = await self._prepare(batch.spans)
                        except Exception as exc:
                            failure = exc
                    if storing is not None:
                        stored_batch, stored_records, task = storing
                        storing = None
                        try:
                            renamed = await task
                        except Exception as exc:
                            self._give_back()
                            backoff = await self._retry_after(exc, backoff)
                            continue
                        if renamed:  # stored under new ids: announce what was stored
                            stored_records = list(stored_records)
                            for i, record in renamed.items():
                                stored_records[i] = dict(record)
                        self._release(stored_batch)
                        self._stored(stored_batch, stored_records)
                        backoff = 0.05
                    if failure is not None:
                        self._give_back()
                        backoff = await self._retry_after(failure, backoff)
                        continue
                    if batch.spans:
                        storing = (
                            batch,
                            records,
                            asyncio.create_task(self.store.insert_spans(records)),
                        )
                if self._closing and not self._queue:
                    # Closed from here on, in this same step: a span submitted before
                    # `close` resumes would otherwise sit in the queue unreported.
                    self._closed = True
                    return
        except asyncio.CancelledError:
            if storing is not None:
                storing[2].cancel()  # a transaction under way is rolled back (shielded)
            self._give_back()  # for the spill (that transaction may store some too)
            raise

    def _hold(self, limit: int) -> _Batch:
        """A batch taken from the queue, counted as waiting until released."""
        batch = self._take(limit)
        if batch.spans:
            self._held.append(batch)
            self._in_flight_spans += len(batch.spans)
            self._in_flight_bytes += batch.nbytes
        return batch

    def _release(self, batch: _Batch) -> None:
        self._held.remove(batch)
        self._in_flight_spans -= len(batch.spans)
        self._in_flight_bytes -= batch.nbytes

    def _give_back(self) -> None:
        """Every batch held back to the front of the queue, in order."""
        held = list(self._held)
        for batch in held:
            self._release(batch)
        self._requeue(*reversed(held))

    async def _prepare(self, spans: list[Span]) -> list[dict[str, Any]]:
        """Finalize and encode a batch, handing the loop back every millisecond or so:
        a batch of 500 takes ~10 ms, which every call in flight would otherwise wait
        (its next stream event, its response) in one block."""
        records = []
        clock = time.perf_counter
        resume = clock() + PREPARE_SLICE_S
        for span in spans:
            records.append(record_or_outline(span, self.prices))
            if clock() > resume:
                await asyncio.sleep(0)
                resume = clock() + PREPARE_SLICE_S
        return records

    # --- the writer process --------------------------------------------------------

    async def _run_process(self, db: str) -> None:
        backoff = 0.05
        try:
            while True:
                child = self._child
                if child is None or child.exited:
                    if child is not None:
                        backoff = await self._child_lost(child, backoff)
                    if self._closing and not self._queue:
                        self._closed = True
                        return
                    try:
                        self._child = await _ChildProcess.start(self, db)
                    except Exception as exc:
                        backoff = await self._retry_after(exc, backoff)
                    continue
                if self._send_error is not None:
                    error, self._send_error = self._send_error, None
                    backoff = await self._retry_after(error, backoff)
                    continue
                # What `submit` could not send (the process was starting, the in-flight
                # bound was reached): in slices that hand the loop back.
                while self._queue and self._send_now():  # noqa: ASYNC110 (a yield, no poll)
                    await asyncio.sleep(0)
                if child.exited or self._send_error is not None:
                    continue
                if self._closing and not self._queue and not self._in_flight:
                    self._closed = True
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
        finally:
            child, self._child = self._child, None
            if child is not None:
                if self._abandoned:
                    child.kill()  # it may hang (a stopped process, a locked database)
                await child.stop()
                if self._in_flight and not self._abandoned:  # cancelled otherwise
                    logger.error(
                        "%d spans sent to the writer process unconfirmed", self._in_flight_spans
                    )

    def _send_later(self) -> None:
        self._send_queued = False
        self._send_now()

    def _send_now(self) -> bool:
        """Send what is queued to the process, up to the in-flight bound, for about
        ``PREPARE_SLICE_S``. True if there is more it could send now. Never raises:
        it runs inside `submit`."""
        child = self._child
        if child is None or child.exited or self._send_error is not None:
            self._wakeup.set()
            return False
        clock = time.perf_counter
        resume = clock() + PREPARE_SLICE_S
        try:
            while self._queue:
                if (
                    self._in_flight_spans >= self._max_in_flight
                    or self._in_flight_bytes >= IN_FLIGHT_BYTES
                ):
                    return False  # an acknowledgement wakes the task
                self._send(child)
                if clock() > resume:
                    self._wakeup.set()
                    return True
        except Exception as exc:
            self._send_error = exc
            self._wakeup.set()
        return False

    def _send(self, child: _ChildProcess) -> None:
        """Send a frame. Raises (the spans back in the queue) if they cannot be encoded."""
        batch = self._take(self._frame_size)
        self._seq += 1
        try:
            data = encode_spans(self._seq, batch.spans)
        except Exception:
            self._requeue(batch)
            raise
        self._in_flight[self._seq] = batch
        self._in_flight_spans += len(batch.spans)
        self._in_flight_bytes += batch.nbytes
        try:
            child.send(data)
        except Exception:  # a process gone: its reader notices, and the frame is resent
            logger.debug("writing to the writer process failed", exc_info=True)

    def _on_ack(self, seq: int, derived: list[tuple[Any, ...]], summaries: bytes) -> None:
        batch = self._in_flight.pop(seq)
        self._in_flight_spans -= len(batch.spans)
        self._in_flight_bytes -= batch.nbytes
        for span, values in zip(batch.spans, derived, strict=True):
            (
                span.prompt_tokens,
                span.completion_tokens,
                span.total_tokens,
                span.cached_tokens,
                span.cost_usd,
            ) = values
        self._stored(batch, SummaryRecords(summaries, len(batch.spans)))
        if self._queue or self._closing:  # room for what waits here, or the end
            self._wakeup.set()

    def _on_failed(self, message: str) -> None:
        self._write_failed(f"the writer process could not store spans: {message}")

    async def _child_lost(self, child: _ChildProcess, backoff: float) -> float:
        """The process ended with spans unconfirmed: send them again to a new one."""
        self._child = None
        batches = [self._in_flight[seq] for seq in sorted(self._in_flight, reverse=True)]
        self._in_flight.clear()
        self._in_flight_spans = self._in_flight_bytes = 0
        self._requeue(*batches)
        if child.returncode == 0 and not batches:
            return backoff  # it ended its work (its input closed)
        exc = RuntimeError(f"the span writer process exited (code {child.returncode})")
        return await self._retry_after(exc, backoff)


async def _finished_within(
    task: asyncio.Task[None], seconds: float | None, abandon: asyncio.Event | None
) -> bool:
    """Wait for ``task`` up to ``seconds`` or until ``abandon`` is set."""
    waits: set[asyncio.Future[Any]] = {task}
    stop = asyncio.ensure_future(abandon.wait()) if abandon is not None else None
    if stop is not None:
        waits.add(stop)
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stop is not None:
            stop.cancel()
    return task.done()


# Where `gateway` is imported from: the process imports the same code.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


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
    """The running writer process (`gateway.writer.process`) and the task reading its answers."""

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
            # Not `-m gateway.writer.process`: a module run as __main__ is compiled at
            # every start, an imported one comes from its cached bytecode.
            "-c",
            "import sys; from gateway.writer.process import main; main(sys.argv[1:])",
            db,
            str(writer.batch_size),
            logging.getLevelName(logging.getLogger(__name__).getEffectiveLevel()),
            writer.export.to_json() if writer.export is not None else "",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            # Its own session: a signal to the gateway's process group (Ctrl-C at the
            # terminal, a service manager) does not reach it; the gateway drains it,
            # or dies, and the process ends when its input does.
            start_new_session=True,
        )
        child = cls(writer, proc)
        child.send(encode_prices(writer.prices))
        return child

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while True:
                head = await stdout.readexactly(HEADER.size)
                length, kind = HEADER.unpack(head)
                payload = await stdout.readexactly(length)
                if kind == ACK:
                    for ack in marshal.loads(payload):
                        self.writer._on_ack(*ack)
                elif kind == FAILED:
                    self.writer._on_failed(marshal.loads(payload))
                elif kind == EXPORTED:
                    self.writer.metrics.observe_export(*marshal.loads(payload))
        except asyncio.IncompleteReadError:
            pass  # the process ended
        except Exception:
            logger.exception("reading from the writer process failed")
            self.kill()
        finally:
            self.returncode = await self.proc.wait()
            self.exited = True
            self.writer._wakeup.set()

    async def stop(self) -> None:
        """End its input: it stores what it has read, answers, and exits."""
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        await asyncio.shield(self.reader)
