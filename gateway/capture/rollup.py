"""The spans rollup (migration 0014): per-minute, per-hour and per-day aggregates of
the stored spans, so `/stats` (the Traces summary strip) answers without reading every
span (`gateway.store.sqlite_stats`).

Three tables:

* ``span_rollup_keys``: one row per distinct combination of the filter dimensions
  (`DIMENSIONS`: project, provider, request and response model, status, origin,
  operation, label), a small table; never pruned (a combination costs one row).
* ``span_rollup``: per (level, start_us, key_id) piece of time (key_id 0: every key,
  `ALL`), with level the piece's width in seconds (`LEVELS`: 60, 3600, 86400, aligned
  on UTC): calls, errors, token sums, cost sum and count, duration and TTFT sums and
  counts, first and last start.
* ``span_rollup_latency``: per piece and key, a histogram of ``duration_ms`` in
  log-spaced buckets: bucket ``b`` holds ``RATIO**b <= d < RATIO**(b+1)`` with
  ``RATIO = 1.05``; a percentile is answered with the bucket's geometric middle
  ``RATIO**(b+0.5)``, within ``PERCENTILE_ERROR`` (2.47%) of the exact nearest-rank
  value. Durations <= 0 go to `ZERO_BUCKET` (answered as 0), huge ones to `TOP_BUCKET`.

A side table was chosen over an encoded column: its UPSERT is one statement per
(piece, key, bucket) that SQLite runs in C, where an encoded histogram needs a read,
a merge in Python and a write per piece, and `/stats` sums it in SQL (GROUP BY bucket)
instead of decoding every piece in Python.

**Off the insert.** Kept in the transaction that stores the spans, the rollup cost the
writer 1.1-1.6x its CPU per span (batch 1,000: 15 us a span before, 25-52 us with it),
mostly the histogram's UPSERTs. So the spans are stored as before and folded in later
(`fold`): the spans after the watermark (``span_rollup_state``, a spans rowid), a chunk
of at most `FOLD_CHUNK` per transaction, aggregated in Python first (`aggregate`), then
one UPSERT per distinct piece and histogram bucket (`statements`). The writer process
folds everything once no span has arrived for a quarter of a second, a chunk at a time,
and a step of `FOLD_STEP` spans every `FOLD_EVERY` spans under unbroken load; `/stats`
reads the spans not folded yet exactly. Storing comes first: folding between a busy
writer's transactions cost the kill -9 guarantee (an answered call lost in ~1 of 12
runs: the fold's Python holds the GIL the frame reader needs), so an app with traffic
that never pauses for a quarter of a second grows its unfolded spans (exact, slower
/stats) until it does. A fold done in SQL (its aggregation in SQLite, off the GIL)
would allow folding under load; not done.

The fold's CPU per span (`python -m bench.stats_bench`, 2-core VM under load, chunks of
2,000): 25 us with spans 1 ms apart, 45 us with spans 2.6 s apart (nearly every span its
own minute piece); storing them costs 19 us at batch 1,000 and 92 us at batch 1.
"""

from __future__ import annotations

import math
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import product
from typing import Any

DIMENSIONS = (
    "project_id",
    "provider",
    "request_model",
    "response_model",
    "status",
    "origin",
    "operation",
    "label",
)
# What a span contributes besides its dimensions, in this order after them.
MEASURES = (
    "start_us",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "duration_ms",
    "ttft_ms",
)
SOURCE_COLUMNS = DIMENSIONS + MEASURES
LEVELS = (60, 3600, 86400)  # seconds: minute, hour, day pieces
RATIO = 1.05
LN_RATIO = math.log(RATIO)  # 0.04879016416943205, written as such in migration 0005
PERCENTILE_ERROR = math.sqrt(RATIO) - 1  # 0.0247: the middle of a bucket vs any value in it
ZERO_BUCKET = -1_000_000
TOP_BUCKET = 1_000_000
HUGE_MS = 9e307  # at or above it (inf): TOP_BUCKET

_STATUS = DIMENSIONS.index("status")
_DIMS = operator.itemgetter(*range(len(DIMENSIONS)))
N_DIMS = len(DIMENSIONS)

# The piece's sums, in `span_rollup`'s column order after (level, start_us, key_id).
SUM_COLUMNS = (
    "calls",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "cost_n",
    "duration_ms",
    "duration_n",
    "ttft_ms",
    "ttft_n",
)

_KEY_MATCH = " AND ".join(f"{d} IS ?" for d in DIMENSIONS)
SELECT_KEY = f"SELECT id FROM span_rollup_keys WHERE {_KEY_MATCH}"
INSERT_KEY = (
    f"INSERT INTO span_rollup_keys ({', '.join(DIMENSIONS)})"
    f" VALUES ({', '.join('?' for _ in DIMENSIONS)})"
)
UPSERT_PIECE = (
    "INSERT INTO span_rollup (level, start_us, key_id, "
    f"{', '.join(SUM_COLUMNS)}, first_us, last_us)"
    f" VALUES (?, ?, ?, {', '.join('?' for _ in SUM_COLUMNS)}, ?, ?)"
    " ON CONFLICT (level, key_id, start_us) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in SUM_COLUMNS)
    + ", first_us = MIN(first_us, excluded.first_us), last_us = MAX(last_us, excluded.last_us)"
)
UPSERT_BUCKET = (
    "INSERT INTO span_rollup_latency (level, start_us, key_id, bucket, n)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (level, key_id, start_us, bucket) DO UPDATE SET n = n + excluded.n"
)

# Every span is counted twice per level: under its key, and under key 0 (`ALL`), the
# piece's total over every key, so an unfiltered /stats (the strip's default) reads a
# few rows per piece instead of one per key (and one per key and bucket).
ALL: tuple[Any, ...] = ()
ALL_KEY_ID = 0

Piece = tuple[int, int, tuple[Any, ...]]  # level, start_us, dimensions
Pieces = dict[Piece, list[Any]]  # SUM_COLUMNS, then first_us, last_us
Buckets = dict[tuple[int, int, tuple[Any, ...], int], int]


def bucket_of(duration_ms: float) -> int:
    """The histogram bucket of a duration (the migration's SQL CASE computes the same)."""
    if duration_ms <= 0:
        return ZERO_BUCKET
    if duration_ms >= HUGE_MS:
        return TOP_BUCKET
    return math.floor(math.log(duration_ms) / LN_RATIO)


def bucket_value(bucket: int) -> float:
    """What a bucket answers for a percentile: its geometric middle."""
    if bucket == ZERO_BUCKET:
        return 0.0
    if bucket == TOP_BUCKET:
        return math.inf
    return float(RATIO ** (bucket + 0.5))


def _number(value: Any) -> float | int | None:
    """A measure as SQL's SUM takes it: numbers (NaN is NULL in SQLite), else NULL."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return None if value != value else value
    return None


def aggregate(
    rows: Iterable[Sequence[Any]], pieces: Pieces | None = None, buckets: Buckets | None = None
) -> tuple[Pieces, Buckets]:
    """The pieces and histogram counts of ``rows`` (`SOURCE_COLUMNS` order), added to
    ``pieces``/``buckets`` when given. One dict update per span and level."""
    pieces = {} if pieces is None else pieces
    buckets = {} if buckets is None else buckets
    widths = [(level, level * 1_000_000) for level in LEVELS]
    for row in rows:
        dims = _DIMS(row)
        start, prompt, completion, total, cost, duration, ttft = row[N_DIMS:]
        prompt, completion, total = _number(prompt), _number(completion), _number(total)
        cost, duration, ttft = _number(cost), _number(duration), _number(ttft)
        error = 0 if row[_STATUS] == "ok" else 1
        bucket = None if duration is None else bucket_of(duration)
        for (level, width), of in product(widths, (dims, ALL)):
            at = start - start % width
            key = (level, at, of)
            sums = pieces.get(key)
            if sums is None:
                sums = pieces[key] = [0, 0, 0, 0, 0, 0.0, 0, 0.0, 0, 0.0, 0, start, start]
            sums[0] += 1
            sums[1] += error
            if prompt is not None:
                sums[2] += prompt
            if completion is not None:
                sums[3] += completion
            if total is not None:
                sums[4] += total
            if cost is not None:
                sums[5] += cost
                sums[6] += 1
            if duration is not None:
                sums[7] += duration
                sums[8] += 1
            if ttft is not None:
                sums[9] += ttft
                sums[10] += 1
            if start < sums[11]:
                sums[11] = start
            if start > sums[12]:
                sums[12] = start
            if bucket is not None:
                bkey = (level, at, of, bucket)
                buckets[bkey] = buckets.get(bkey, 0) + 1
    return pieces, buckets


def statements(
    pieces: Pieces, buckets: Buckets, ids: dict[tuple[Any, ...], int]
) -> list[tuple[str, list[Sequence[Any]]]]:
    """The UPSERTs (for executemany) adding ``pieces`` and ``buckets`` to the rollup,
    given the id of each key (`KeyCache.ids`); `ALL`'s is `ALL_KEY_ID`."""
    ids = {**ids, ALL: ALL_KEY_ID}
    return [
        (
            UPSERT_PIECE,
            [(level, at, ids[dims], *sums) for (level, at, dims), sums in pieces.items()],
        ),
        (
            UPSERT_BUCKET,
            [(level, at, ids[dims], b, n) for (level, at, dims, b), n in buckets.items()],
        ),
    ]


def dimensions(pieces: Pieces) -> set[tuple[Any, ...]]:
    """The keys of ``pieces`` (not `ALL`)."""
    return {dims for (_, _, dims) in pieces if dims != ALL}


class KeyCache:
    """The ids of the keys a connection has seen, so a batch of known keys looks none
    up (the writer process's common case). Forgotten whenever another connection has
    committed since (``PRAGMA data_version``), as `span_table.FacetCache`; keys found or
    added in a transaction are kept only once it commits (`commit`)."""

    def __init__(self) -> None:
        self.known: dict[tuple[Any, ...], int] = {}
        self.pending: dict[tuple[Any, ...], int] = {}
        self.version: int | None = None

    def ids(
        self, raw: sqlite3.Connection, keys: set[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], int]:
        """Each key's id, the missing keys added; inside the write transaction."""
        version = raw.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.known.clear()
            self.version = version
        self.pending = {}
        for dims in keys - self.known.keys():
            found = raw.execute(SELECT_KEY, dims).fetchone()
            self.pending[dims] = (
                found[0] if found else int(raw.execute(INSERT_KEY, dims).lastrowid or 0)
            )
        return self.known | self.pending if self.pending else self.known

    def commit(self) -> None:
        self.known.update(self.pending)
        self.pending = {}


def apply(raw: sqlite3.Connection, rows: Iterable[Sequence[Any]], keys: KeyCache) -> None:
    """Add ``rows`` (`SOURCE_COLUMNS` order) to the rollup, inside the caller's
    transaction on ``raw``; the caller calls ``keys.commit()`` once it commits."""
    pieces, buckets = aggregate(rows)
    if pieces:
        ids = keys.ids(raw, dimensions(pieces))
        for sql, params in statements(pieces, buckets, ids):
            raw.executemany(sql, params)


# The spans after the watermark, oldest first: a chunk for `fold` when the writer is
# idle, a step (a few ms) under unbroken load.
FOLD_CHUNK = 2_000
FOLD_STEP = 250
# A writer never idle (saturated) folds a step every this many spans stored: next to
# nothing of the fold's cost, so the spans not folded grow (and /stats reads them one
# by one: still exact, slower) until the load drops and the writer catches up.
FOLD_EVERY = 50_000
SELECT_TAIL = (
    f"SELECT rowid, {', '.join(SOURCE_COLUMNS)} FROM spans WHERE rowid > ? ORDER BY rowid LIMIT ?"
)
SELECT_WATERMARK = "SELECT watermark FROM span_rollup_state WHERE id = 1"
SET_WATERMARK = "UPDATE span_rollup_state SET watermark = ? WHERE id = 1"


def fold(raw: sqlite3.Connection, keys: KeyCache, limit: int = FOLD_CHUNK) -> int:
    """Fold up to ``limit`` spans after the watermark into the rollup, in one
    transaction on ``raw`` (autocommit mode), and move the watermark past them. Returns
    how many were folded (0: the rollup has caught up)."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        row = raw.execute(SELECT_WATERMARK).fetchone()
        watermark = int(row[0]) if row is not None else 0
        tail = raw.execute(SELECT_TAIL, (watermark, limit)).fetchall()
        if tail:
            apply(raw, (tuple(r[1:]) for r in tail), keys)
            raw.execute(SET_WATERMARK, (tail[-1][0],))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        keys.pending = {}
        raise
    keys.commit()
    return len(tail)
