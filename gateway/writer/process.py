"""The span writer process: finished spans in, stored rows out, off the gateway's GIL.

`SpanWriter` (gateway/writer/span_writer.py) starts it (`main`, with the database path) and is
its only client. Everything a span costs after the call (parsing the response, usage
and cost: `capture.finalize`; redaction and JSON encoding: `capture.to_row`, the row
as a tuple, no record dict; the SQLite transaction) runs here, on another core,
instead of on the gateway's event loop, where it took a fifth of a saturated
gateway's CPU and its thread fought the loop for the GIL. The gateway's part is
`encode_spans`: the spans' fields as tuples, `marshal`led (a few microseconds a span).

The protocol, on the child's stdin and stdout, is frames: a 4-byte little-endian
length, a kind byte, a payload.

* parent -> child: ``INIT`` (the price table), then ``BATCH`` frames (a sequence
  number and encoded spans; ``BATCH_PICKLED`` when a value is not marshallable).
* child -> parent: ``ACK`` once a transaction is committed, for each batch it stored:
  its sequence number, for each span its `DERIVED_FIELDS` (tokens and cost, for the
  metrics) and, marshalled apart, the stored values of `SUMMARY_COLUMNS` (redacted; for
  the live view, which decodes them only when someone is watching); ``FAILED`` when a
  transaction failed (it is retried here, with back-off; nothing is dropped);
  ``EXPORTED``, about once a second while spans are exported over OTLP: the
  exporter's counts (exported, dropped, failed) since the last one.

Frames prepared while a transaction runs are stored together in the next one, up to
``batch_size`` spans (group commit; the gateway hands spans over as they finish, a
frame per turn of its event loop, so the process holds them if the gateway dies). On
end of input the child stores what it has read and exits: closing its stdin is how the
gateway stops it, and a gateway killed with SIGKILL closes it too. It runs in its own
session and ignores SIGINT and SIGTERM, so a signal to the gateway's process group
(Ctrl-C, a service manager) does not cut it short: it ends when its input does. If the
gateway is gone its answers have nowhere to go; it keeps storing. Between transactions
it folds the stored spans into the `/stats` rollup (`_fold`, `gateway.capture.rollup`).
Only the standard library, `gateway.capture` and `gateway.export.process` are imported,
so it starts in a few tens of milliseconds.

With OTLP export on (a fourth argument: `ExportConfig` as JSON), each committed
transaction's rows are also offered to a `gateway.export.process.ExportPipe` (a
bounded queue: a reference appended, or the rows counted as dropped), whose thread
passes them, marshalled, to the export process, which maps and sends them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import logging
import marshal
import operator
import os
import pickle
import queue
import select
import signal
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from gateway.capture import rollup
from gateway.capture.origin import span_origin
from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span, SpanContext, finalize, to_row
from gateway.capture.span_table import (
    OUTLINE_COLUMNS,
    SPAN_COLUMNS,
    SUMMARY_COLUMNS,
    FacetCache,
    insert_rows,
    insert_sql,
    outline_row,
)
from gateway.config import Price
from gateway.export.otlp import ExportConfig
from gateway.export.process import ExportPipe

logger = logging.getLogger("gateway.writer.span_writer")

HEADER = struct.Struct("<IB")
# Failed attempts at a transaction before its rows are probed one by one for a span
# that cannot be stored (`ChildWriter._outline_poison`).
ISOLATE_AFTER = 3
INIT, BATCH, BATCH_PICKLED, ACK, FAILED, EXPORTED = range(6)
# Read ahead of the transactions at most this much (spans; frame bytes): what is read is
# safe from a gateway that dies, but it is memory here. Past it the pipe fills and the
# gateway holds the rest (where back-pressure acts).
HOLD_SPANS_PER_BATCH = 4
HOLD_BYTES = 64 * 1024 * 1024
PIPE_BYTES = 1 << 20
# The rollup (`gateway.capture.rollup`) is folded in outside the transactions, and
# only when no span has arrived for FOLD_IDLE_S (then every span stored so far, a chunk
# at a time while none arrives), or a step every `rollup.FOLD_EVERY` spans under
# unbroken load. Folding between the transactions of a busy writer (steps of 250 spans
# four times a second) made the kill -9 test lose an answered call in 1 of ~12 runs
# (0 of 12 without it): the fold's Python holds the GIL the frame reader needs, and
# frames the gateway cannot hand over are lost with it.
FOLD_IDLE_S = 0.25

_CONTEXT_FIELDS = tuple(f.name for f in dataclasses.fields(SpanContext))
# What the proxy recorded, sent to the process, in the order `Span.__init__` takes it
# (`decode_spans` passes them by position after the context). A new field of `Span`
# goes here or in `NOT_SENT_FIELDS`: tests/test_store_seams.py checks both lists.
RAW_SPAN_FIELDS = (
    "operation",
    "method",
    "path",
    "start_us",
    "provider",
    "request_model",
    "stream",
    "request",
    "request_headers",
    "query",
    "end_us",
    "first_token_us",
    "status",
    "http_status",
    "response_headers",
    "response_body",
    "stream_format",
    "stream_events",
    "error",
    "secrets",  # never stored: the process scrubs them from what it derives
)
# Not sent as raw fields: the context goes as its own tuple (`_CONTEXT_FIELDS`); the
# derived ones `finalize` fills here (again, if the gateway did already: it derives the
# same values from the same raw fields).
NOT_SENT_FIELDS = (
    "context",
    "response",
    "response_model",
    "output_text",
    "input_preview",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cost_usd",
    "finalized",
    "charge",  # the quotas' concern, in the gateway: not stored
)
_context_values = operator.attrgetter(*_CONTEXT_FIELDS)
_span_values = operator.attrgetter(*RAW_SPAN_FIELDS)
_summary_of_row = operator.itemgetter(*(SPAN_COLUMNS.index(c) for c in SUMMARY_COLUMNS))
# Derived values the gateway sets on its own `Span` when the batch is stored.
DERIVED_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cost_usd",
)
_derived_values = operator.attrgetter(*DERIVED_FIELDS)


class RawIO(Protocol):
    def write(self, data: memoryview, /) -> int | None: ...


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


def encode_spans(seq: int, spans: Iterable[Span]) -> bytes:
    """One ``BATCH`` frame. C speed: attribute getters and `marshal` (pickle would
    spend ~20 us a span on a dataclass with slots; tuples of plain values ~1 us)."""
    values = [(_context_values(s.context), _span_values(s)) for s in spans]
    try:
        return frame(BATCH, marshal.dumps((seq, values)))
    except ValueError:  # a value of a type marshal does not know (not from JSON)
        return frame(BATCH_PICKLED, pickle.dumps((seq, values), pickle.HIGHEST_PROTOCOL))


def decode_spans(kind: int, payload: bytes) -> tuple[int, list[Span]]:
    seq, values = marshal.loads(payload) if kind == BATCH else pickle.loads(payload)
    return seq, [Span(SpanContext(*context), *rest) for context, rest in values]


def encode_prices(prices: PriceTable) -> bytes:
    table = {name: (p.input, p.output, p.cached_input) for name, p in prices.entries().items()}
    return frame(INIT, marshal.dumps(table))


def decode_prices(payload: bytes) -> PriceTable:
    table = marshal.loads(payload)
    return PriceTable({name: Price(*values) for name, values in table.items()})


class FrameReader:
    """Frames from a pipe, without blocking when asked whether one is ready."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False

    def _complete(self) -> bool:
        if len(self.buffer) < HEADER.size:
            return False
        length: int = HEADER.unpack_from(self.buffer)[0]
        return len(self.buffer) >= HEADER.size + length

    def _fill(self, timeout: float | None) -> None:
        if timeout is not None:
            ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
            if not ready:
                return
        data = os.read(self.fd, 1 << 20)
        if data:
            self.buffer += data
        else:
            self.eof = True

    def next(self, timeout: float | None = None) -> tuple[int, bytes] | None:
        """The next frame; None at end of input or when ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._complete():
            if self.eof:
                return None
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._fill(left)
        length, kind = HEADER.unpack_from(self.buffer)
        end = HEADER.size + length
        payload = bytes(self.buffer[HEADER.size : end])
        del self.buffer[:end]
        return kind, payload


def record_or_outline(span: Span, prices: PriceTable) -> dict[str, Any]:
    """`row_or_outline` as a record (a dict by column)."""
    return dict(zip(SPAN_COLUMNS, row_or_outline(span, prices), strict=True))


def row_or_outline(span: Span, prices: PriceTable) -> tuple[Any, ...]:
    """The span's row (`finalize`, then `to_row`), or, if it cannot be built (a value
    that does not encode), its outline with an error saying so: such a span would
    otherwise stop the writer at every retry, and every span behind it."""
    try:
        finalize(span, prices)
        return to_row(span)
    except Exception as exc:
        reason = f"the call's record could not be built ({type(exc).__name__})"
        logger.error("span %s: %s; storing its outline", span.context.span_id, reason)
        values = {c: getattr(span.context, c, None) for c in OUTLINE_COLUMNS}
        values.update((c, getattr(span, c)) for c in OUTLINE_COLUMNS if hasattr(span, c))
        values["origin"] = span_origin(span.context.attributes)
        return outline_row(values, reason)


class ChildWriter:
    """Two threads: this one reads frames and prepares rows (Python: the GIL), the
    store thread runs the transactions (SQLite: mostly without the GIL), so a batch is
    prepared while the one before it commits."""

    def __init__(
        self,
        db: str,
        reader: FrameReader,
        out: RawIO,
        batch_size: int,
        export: ExportConfig | None = None,
    ) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.reader = reader
        self.out = out  # unbuffered: `_flush` writes a transaction's answers at once
        self.out_open = True
        self.outbox: list[bytes] = []
        self.batch_size = batch_size
        self.facets = FacetCache()  # the facets this connection has stored
        self.rollup_keys = rollup.KeyCache()  # the rollup's keys this connection knows
        self.unfolded = True  # spans may wait to be folded (at start: after a migration)
        self.stored_since_fold = 0
        self.prices = PriceTable()
        # Prepared frames waiting for the store thread, bounded in spans and bytes (see
        # HOLD_SPANS_PER_BATCH): a slow disk holds frames in the pipe and the gateway.
        self.prepared: queue.SimpleQueue[_Prepared | None] = queue.SimpleQueue()
        self.hold_spans = HOLD_SPANS_PER_BATCH * batch_size
        self.held = threading.Condition()
        self.held_spans = 0
        self.held_bytes = 0
        # Answers are written by the store thread and the export thread's counts.
        self.out_lock = threading.Lock()
        self.exporter: ExportPipe | None = None
        if export is not None:
            try:
                self.exporter = ExportPipe(export, self._exported)
            except Exception:  # storing goes on: export is the lesser duty
                logger.exception("the OTLP export process could not start; not exporting")

    def run(self) -> None:
        store = threading.Thread(target=self._store_loop, name="spanlab-store")
        store.start()
        try:
            while (item := self.reader.next()) is not None:
                kind, payload = item
                if kind == INIT:
                    self.prices = decode_prices(payload)
                    continue
                seq, spans = decode_spans(kind, payload)
                prices = self.prices
                rows = [row_or_outline(span, prices) for span in spans]
                # Encoded apart: the gateway decodes them only if someone reads them.
                summaries = marshal.dumps(list(map(_summary_of_row, rows)))
                derived = list(map(_derived_values, spans))
                prepared = _Prepared(seq, rows, derived, summaries, len(payload))
                with self.held:
                    while self.held_spans >= self.hold_spans or self.held_bytes >= HOLD_BYTES:
                        if not store.is_alive():
                            raise RuntimeError("the store thread ended")
                        self.held.wait(0.5)
                    self.held_spans += len(prepared.rows)
                    self.held_bytes += prepared.size
                self.prepared.put(prepared)
        finally:
            self.prepared.put(None)
            store.join()
            if self.exporter is not None:
                self.exporter.close()  # what is queued, within a few seconds

    def _store_loop(self) -> None:
        while True:
            try:
                first = self.prepared.get(timeout=FOLD_IDLE_S if self.unfolded else None)
            except queue.Empty:  # nothing to store for a while: fold what waits
                while self.unfolded and self.prepared.empty():
                    self._fold(rollup.FOLD_STEP)  # small: a span arriving waits a few ms
                continue
            if first is None:
                return
            group = [first]
            count = len(first.rows)
            end = False
            # Frames prepared while the last transaction ran share the next one (group
            # commit). No waiting for more: a span alone is stored at once.
            while count < self.batch_size:
                try:
                    more = self.prepared.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    end = True
                    break
                group.append(more)
                count += len(more.rows)
            self._commit(group)
            with self.held:
                self.held_spans -= count
                self.held_bytes -= sum(item.size for item in group)
                self.held.notify()
            if end:
                return
            self.unfolded = True
            self.stored_since_fold += count
            # Storing comes first: under unbroken load, a small step every FOLD_EVERY.
            if self.stored_since_fold >= rollup.FOLD_EVERY:
                self._fold(rollup.FOLD_STEP)

    def _fold(self, limit: int) -> None:
        """Up to ``limit`` spans after the rollup's watermark folded in (between two
        transactions of spans, never in one). A failure (the database locked by a long
        maintenance command) is logged and tried again later; storing spans goes on."""
        self.stored_since_fold = 0
        try:
            folded = rollup.fold(self.conn, self.rollup_keys, limit)
        except Exception as exc:
            logger.warning("folding spans into the rollup failed (tried again later): %s", exc)
            return
        if folded < limit:
            self.unfolded = False

    def _commit(self, group: Sequence[_Prepared]) -> None:
        rows = [row for item in group for row in item.rows]
        backoff = 0.05
        failures = 0
        while True:
            try:
                renamed = insert_rows(self.conn, rows, self.facets)
                break
            except Exception as exc:  # retried, never dropped; the gateway logs it
                self._send(FAILED, marshal.dumps(f"{type(exc).__name__}: {exc}"))
                self._flush()
                failures += 1
                if failures % ISOLATE_AFTER == 0:
                    rows = self._outline_poison(rows)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        acks = []
        start = 0
        for item in group:
            end = start + len(item.rows)
            summaries = item.summaries
            if renamed and any(start <= i < end for i in renamed):
                # Stored under a new id: the live view shows what was stored.
                summaries = marshal.dumps(
                    [_summary_of_row(renamed.get(i, rows[i])) for i in range(start, end)]
                )
            acks.append((item.seq, item.derived, summaries))
            start = end
        self._send(ACK, marshal.dumps(acks))  # one answer per transaction
        self._flush()
        if self.exporter is not None:  # the rows as stored; the export thread maps them
            self.exporter.offer(
                [renamed.get(i, row) for i, row in enumerate(rows)] if renamed else rows
            )

    def _outline_poison(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows that SQLite refuses alone while their outline goes in (a value it cannot
        take: text that is not UTF-8, an integer past 64 bits) are replaced by their
        outline, so one bad span does not hold back the rest for ever. A failure that is
        not the rows' (a full disk, a lock: their outlines fail too) changes nothing:
        the batch is retried whole, as before. Probed in a transaction rolled back."""
        conn = self.conn
        replaced: dict[int, tuple[Any, ...]] = {}
        one = insert_sql(1)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for i, row in enumerate(rows):
                conn.execute("SAVEPOINT probe")
                try:
                    conn.execute(one, row)
                except Exception as exc:
                    values = dict(zip(SPAN_COLUMNS, row, strict=True))
                    outline = outline_row(
                        values,
                        f"the call could not be stored whole ({type(exc).__name__})",
                    )
                    conn.execute("ROLLBACK TO probe")
                    try:
                        conn.execute(one, outline)
                        replaced[i] = outline
                    except Exception:
                        pass  # not this row's fault: left as it is
                conn.execute("ROLLBACK TO probe")
                conn.execute("RELEASE probe")
        except Exception:
            # The probe itself failed (SQLite may have ended the transaction, on a full
            # disk): it proves nothing, the rows stay as they are.
            return rows
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        for i in replaced:
            logger.error("span %s could not be stored whole; storing its outline", rows[i][0])
        return [replaced.get(i, row) for i, row in enumerate(rows)]

    def _send(self, kind: int, payload: bytes) -> None:
        if self.out_open:
            self.outbox.append(frame(kind, payload))

    def _flush(self) -> None:
        """Write the answers gathered: one write for a transaction's answers."""
        if not self.outbox:
            return
        data = b"".join(self.outbox)
        self.outbox.clear()
        self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        with self.out_lock:
            if not self.out_open:
                return
            try:
                while view:
                    view = view[self.out.write(view) or 0 :]
            except OSError:
                self._gateway_gone()

    def _exported(self, exported: int, dropped: int, failed: int) -> None:
        """The exporter's counts (from its thread), for the gateway's /metrics."""
        self._write(frame(EXPORTED, marshal.dumps((exported, dropped, failed))))

    def _gateway_gone(self) -> None:
        """The gateway no longer reads (it died): answers are dropped, storing goes on
        until the end of the input."""
        self.out_open = False
        logger.warning("the gateway is gone; storing the spans received, then exiting")


@dataclasses.dataclass(slots=True)
class _Prepared:
    seq: int
    rows: list[tuple[Any, ...]]
    derived: list[tuple[Any, ...]]
    summaries: bytes
    size: int  # the frame's bytes


def main(argv: Sequence[str]) -> None:
    db, batch_size, level = argv[0], int(argv[1]), argv[2]
    export = ExportConfig.from_json(argv[3]) if len(argv) > 3 and argv[3] else None
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Few objects here outlive a batch, and spans make no cycles: a rare collection
    # instead of one every few hundred spans rescanning the batch in hand.
    gc.set_threshold(100_000, 50, 100)
    # Stopped by the end of its input only (see the module's docstring).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        # A larger pipe: more of what the gateway sent is out of its memory at once.
        fcntl.fcntl(0, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    # The store thread takes the GIL back after each statement: without a short switch
    # interval it would wait up to 5 ms for this thread each time.
    sys.setswitchinterval(0.0005)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print must not corrupt the frames
    ChildWriter(db, FrameReader(0), out, batch_size, export).run()


if __name__ == "__main__":
    main(sys.argv[1:])
