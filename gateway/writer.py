"""The background span writer: the only path from a finished call to the database.

The proxy hands a finished `Span` to `submit` (synchronous, never blocks, never drops)
and returns to its client. The writer task drains the queue: after a quiet spell it
stores a span at once; under load a transaction starts at most every
``MIN_INTERVAL_S`` and takes what arrived meanwhile (up to ``write_batch_size``), and
the next batch is prepared while the previous one commits. Deriving the assembled
response, usage, cost and redaction (`capture.finalize` / `capture.to_record`) happens
here too, off the request path, in slices that hand the loop back every millisecond.

A failed write is retried with back-off, never dropped; while the queue is above
``write_queue_max``, new calls wait at their start (`wait_for_room`) instead.
`close` drains everything before returning, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway.capture import Span, finalize, to_record
from gateway.metrics import Metrics
from gateway.pricing import PriceTable
from gateway.store import Store

logger = logging.getLogger(__name__)

PREPARE_SLICE_S = 0.001
MIN_INTERVAL_S = 0.005

WrittenCallback = Callable[[Sequence[Span], Sequence[dict[str, Any]]], None]


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
        metrics.bind_queue_depth(lambda: len(self._queue))

    @property
    def depth(self) -> int:
        return len(self._queue)

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
        if len(self._queue) >= self.queue_max:
            self._room.clear()
        self._wakeup.set()

    async def wait_for_room(self) -> None:
        """Back-pressure: a new call waits here while the queue is full."""
        if not self._room.is_set():
            await self._room.wait()

    async def flush(self) -> None:
        """Wait until every span submitted so far is stored."""
        if self._queue or not self._idle.is_set():
            self._wakeup.set()
            await self._idle.wait()

    async def close(self) -> None:
        """Store everything queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._closed = True

    async def _run(self) -> None:
        backoff = 0.05
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # Two batches in hand: while the store commits one (on its own thread, where
            # SQLite runs without the GIL), the next is prepared here. Order is kept: a
            # batch that fails goes back to the front, ahead of the one prepared after it.
            storing: tuple[list[Span], list[dict[str, Any]], asyncio.Task[None]] | None = None
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

    def _stored(self, batch: list[Span], records: list[dict[str, Any]]) -> None:
        self.written += len(batch)
        self.metrics.spans_written.inc(len(batch))
        if len(self._queue) < self.queue_max:
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
            finalize(span, self.prices)
            records.append(to_record(span))
            if clock() > resume:
                await asyncio.sleep(0)
                resume = clock() + PREPARE_SLICE_S
        return records
