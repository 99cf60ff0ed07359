"""`/stats` from the spans rollup (`gateway.capture.rollup`, migration 0014), and the
rollup's share of the store's own transactions (folding, prune, reset).

When it answers: a filter among the rollup's dimensions (project, model, provider,
status, label, operation, origin, exclude_origin) plus since/until, a ``group_by`` of
total, model, provider, status, minute, hour or day, and the range's folded pieces
holding at least ``min_spans`` spans (`ROLLUP_MIN_SPANS`): below that the exact scan is
cheap and answers. Thread, run, trace or text filters, or ``group_by=thread``: the
exact scan.

How, in one statement (one snapshot, whatever the writer folds meanwhile): [since,
until) is cut into whole days, hours and minutes (only minutes for ``group_by=minute``,
no days for ``hour``: a piece lies in one group) read from ``span_rollup``; the folded
spans in the parts of a minute at either end (a since/until not on a minute) are read
from the spans themselves, through the start index; and the spans not folded yet
(after the watermark) are read through their rowids. Both are added the way the rollup
adds them, so calls, errors, tokens, cost, averages and first/last times are exact for
any since/until. Only p50/p95 are approximate: from the latency histogram, within
`rollup.PERCENTILE_ERROR` (2.47%) of the exact nearest-rank value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import aiosqlite

from gateway.capture import rollup
from gateway.store.spans import SpanFilter, iso_from_us

ROLLUP_MIN_SPANS = 5_000
ROLLUP_GROUPS = frozenset({"total", "model", "provider", "status", "minute", "hour", "day"})
_TIME_GROUPS = frozenset({"total", "minute", "hour", "day"})
_TOP_LEVEL = {"minute": 1, "hour": 2}  # how many of rollup.LEVELS a group can use
Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
Range = tuple[int, int | None, int | None]  # level, from, to (None: open)


def _floor(us: int, width: int) -> int:
    return us - us % width


def _ceil(us: int, width: int) -> int:
    return -_floor(-us, width)


def _cut(lo: int | None, hi: int | None, levels: Sequence[int], out: list[Range]) -> None:
    """[lo, hi), both on a ``levels[0]`` boundary, as whole pieces of the coarsest
    levels that fit, into ``out``."""
    if lo is not None and hi is not None and lo >= hi:
        return
    if len(levels) == 1:
        out.append((levels[0], lo, hi))
        return
    width = levels[1] * 1_000_000
    inner_lo = None if lo is None else _ceil(lo, width)
    inner_hi = None if hi is None else _floor(hi, width)
    if inner_lo is not None and inner_hi is not None and inner_lo >= inner_hi:
        out.append((levels[0], lo, hi))
        return
    if lo is not None and inner_lo is not None and lo < inner_lo:
        out.append((levels[0], lo, inner_lo))
    _cut(inner_lo, inner_hi, levels[1:], out)
    if hi is not None and inner_hi is not None and inner_hi < hi:
        out.append((levels[0], inner_hi, hi))


def plan(
    since_us: int | None, until_us: int | None, group_by: str
) -> tuple[list[Range], list[tuple[int | None, int | None]]]:
    """The rollup ranges covering [since, until), and the edges (parts of a minute) to
    read from the spans."""
    minute = rollup.LEVELS[0] * 1_000_000
    lo = None if since_us is None else _ceil(since_us, minute)
    hi = None if until_us is None else _floor(until_us, minute)
    if lo is not None and hi is not None and lo >= hi:
        return [], [(since_us, until_us)]  # within one minute: the spans alone
    edges: list[tuple[int | None, int | None]] = []
    if since_us is not None and lo is not None and since_us < lo:
        edges.append((since_us, lo))
    if until_us is not None and hi is not None and hi < until_us:
        edges.append((hi, until_us))
    ranges: list[Range] = []
    _cut(lo, hi, rollup.LEVELS[: _TOP_LEVEL.get(group_by, len(rollup.LEVELS))], ranges)
    return ranges, edges


def _range_sql(ranges: Sequence[Range]) -> tuple[str, list[Any]]:
    terms, params = [], []
    for level, lo, hi in ranges:
        term = "(r.level = ?"
        params.append(level)
        if lo is not None:
            term += " AND r.start_us >= ?"
            params.append(lo)
        if hi is not None:
            term += " AND r.start_us < ?"
            params.append(hi)
        terms.append(term + ")")
    return (" OR ".join(terms) or "0"), params


def _percentile(histogram: dict[int, int], p: float) -> float | None:
    """Nearest rank, as the exact query: the first bucket whose running count reaches
    p * n; its middle value."""
    n = sum(histogram.values())
    if not n:
        return None
    target = p * n
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= target:
            return rollup.bucket_value(bucket)
    return None  # unreachable: seen reaches n >= p * n


class _Group:
    __slots__ = ("first", "hist", "last", "sums")

    def __init__(self) -> None:
        self.sums = [0, 0, 0, 0, 0, 0.0, 0, 0.0, 0, 0.0, 0]
        self.hist: dict[int, int] = {}
        self.first: int | None = None
        self.last: int | None = None

    def add(self, sums: Sequence[Any], first: int | None, last: int | None) -> None:
        for i, value in enumerate(sums):
            self.sums[i] += value or 0
        if first is not None and (self.first is None or first < self.first):
            self.first = first
        if last is not None and (self.last is None or last > self.last):
            self.last = last

    def row(self, group: Any) -> dict[str, Any]:
        calls, errors, prompt, completion, total, cost, cost_n, dur, dur_n, ttft, ttft_n = self.sums
        return {
            "group": group,
            "calls": calls,
            "errors": errors,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": total,
            "cost_usd": cost if cost_n else None,
            "latency_avg_ms": dur / dur_n if dur_n else None,
            "latency_p50_ms": _percentile(self.hist, 0.5),
            "latency_p95_ms": _percentile(self.hist, 0.95),
            "ttft_avg_ms": ttft / ttft_n if ttft_n else None,
            "first_time": iso_from_us(self.first),
            "last_time": iso_from_us(self.last),
        }


def usable(group_by: str, filters: SpanFilter) -> bool:
    """Whether the rollup can answer this filter and grouping."""
    return group_by in ROLLUP_GROUPS and not (
        filters.thread or filters.run or filters.trace or filters.text
    )


WATERMARK = f"({rollup.SELECT_WATERMARK})"


async def rollup_stats(
    fetch: Fetch,
    group_by: str,
    key_sql: str,
    filters: SpanFilter,
    *,
    min_spans: int | None = None,
) -> list[dict[str, Any]] | None:
    """The `/stats` rows from the rollup, or None when it cannot or need not answer
    (see the module's docstring). ``key_sql`` is the group's SQL expression (on the
    columns of ``span_rollup_keys`` and ``start_us``)."""
    if not usable(group_by, filters):
        return None
    ranges, edges = plan(filters.since_us, filters.until_us, group_by)
    dims_where, dims_params = replace(filters, since_us=None, until_us=None).where()
    times, time_params = _range_sql(ranges)
    if dims_params or dims_where != "TRUE" or group_by not in _TIME_GROUPS:
        # The keys the filter takes outside (a small table), then each key's pieces:
        # ranges of the primary key (level, key_id, start_us).
        source = (
            "FROM span_rollup_keys k CROSS JOIN span_rollup{t} r ON r.key_id = k.id"
            f" WHERE ({dims_where}) AND ({times})"
        )
        source_params = [*dims_params, *time_params]
    else:  # no filter but time: the pieces' totals over every key (key 0)
        source = f"FROM span_rollup{{t}} r WHERE r.key_id = {rollup.ALL_KEY_ID} AND ({times})"
        source_params = time_params
    folded = await fetch("SELECT SUM(r.calls) " + source.format(t=""), source_params)
    if (folded[0][0] or 0) < (ROLLUP_MIN_SPANS if min_spans is None else min_spans):
        return None  # few spans: the exact scan is cheap, and its percentiles exact

    # One statement, so one snapshot: the pieces and buckets folded in so far, the
    # spans folded in the range's partial minutes (`plan`'s edges), and every span in
    # range not folded yet (after the watermark: a range of rowids, not the start
    # index). The spans' sums are SQL's, like the pieces'; their durations come back
    # one by one and are bucketed here (`rollup.bucket_of`). Each kind of row padded to
    # the same columns.
    n_sums = len(rollup.SUM_COLUMNS)
    width = 2 + n_sums + 2
    key = key_sql.replace("start_us", "r.start_us")
    sums = ", ".join(f"SUM(r.{c})" for c in rollup.SUM_COLUMNS)
    parts = [
        f"SELECT 'p', {key} AS grp, {sums}, MIN(r.first_us), MAX(r.last_us)"
        f" {source.format(t='')} GROUP BY grp",
        f"SELECT 'b', {key} AS grp, r.bucket, SUM(r.n){_pad(width - 4)}"
        f" {source.format(t='_latency')} GROUP BY grp, r.bucket",
    ]
    params: list[Any] = [*source_params, *source_params]
    spans: list[tuple[str, list[Any]]] = []
    for lo, hi in edges:
        where, edge_params = replace(filters, since_us=lo, until_us=hi).where()
        spans.append((f"FROM spans WHERE ({where}) AND rowid <= {WATERMARK}", edge_params))
    where, tail_params = filters.where()
    spans.append((f"FROM spans NOT INDEXED WHERE rowid > {WATERMARK} AND ({where})", tail_params))
    for source_sql, source_args in spans:
        parts.append(f"SELECT 's', {key_sql} AS grp, {SPAN_SUMS} {source_sql} GROUP BY grp")
        parts.append(
            f"SELECT 'd', {key_sql} AS grp, duration_ms{_pad(width - 3)} {source_sql}"
            " AND duration_ms IS NOT NULL"
        )
        params += [*source_args, *source_args]
    rows = await fetch(" UNION ALL ".join(parts), params)

    groups: dict[Any, _Group] = {}
    for row in rows:
        kind, grp = row[0], row[1]
        group = groups.get(grp)
        if group is None:
            group = groups[grp] = _Group()
        if kind == "d":
            bucket = rollup.bucket_of(row[2])
            group.hist[bucket] = group.hist.get(bucket, 0) + 1
        elif kind == "b":
            group.hist[row[2]] = group.hist.get(row[2], 0) + row[3]
        else:  # pieces, or spans summed the same way
            group.add(row[2 : 2 + n_sums], row[2 + n_sums], row[3 + n_sums])
    out = [g.row(grp) for grp, g in groups.items() if g.sums[0]]
    out.sort(key=lambda r: (-r["calls"], r["group"] is not None, r["group"]))
    return out


# Spans summed as `rollup.aggregate` sums them into a piece (`rollup.SUM_COLUMNS`,
# then first and last start).
SPAN_SUMS = (
    "COUNT(*), SUM(status != 'ok'), TOTAL(prompt_tokens), TOTAL(completion_tokens),"
    " TOTAL(total_tokens), TOTAL(cost_usd), COUNT(cost_usd), TOTAL(duration_ms),"
    " COUNT(duration_ms), TOTAL(ttft_ms), COUNT(ttft_ms), MIN(start_us), MAX(start_us)"
)


def _pad(n: int) -> str:
    return ", NULL" * n


async def fold_rollup(conn: aiosqlite.Connection, limit: int = rollup.FOLD_CHUNK) -> int:
    """`rollup.fold` in the caller's transaction on an aiosqlite connection (the store's
    own writes: the in-process writer, tests, `compact`): up to ``limit`` spans after
    the watermark folded in; how many."""
    row = await (await conn.execute(rollup.SELECT_WATERMARK)).fetchone()
    watermark = int(row[0]) if row is not None else 0
    tail = list(await conn.execute_fetchall(rollup.SELECT_TAIL, (watermark, limit)))
    if tail:
        pieces, buckets = rollup.aggregate(tuple(r[1:]) for r in tail)
        await _store(conn, pieces, buckets)
        await conn.execute(rollup.SET_WATERMARK, (tail[-1][0],))
    return len(tail)


async def reset_rollup(conn: aiosqlite.Connection) -> None:
    """Empty the rollup and its watermark, in the caller's transaction: the writer folds
    every span in again. After a VACUUM, which may renumber the spans' rowids."""
    for table in ("span_rollup", "span_rollup_latency"):
        await conn.execute(f"DELETE FROM {table}")
    await conn.execute(rollup.SET_WATERMARK, (0,))


async def _store(
    conn: aiosqlite.Connection, pieces: rollup.Pieces, buckets: rollup.Buckets
) -> None:
    """The UPSERTs of `rollup.apply`, each key's id looked up (or added) first."""
    if not pieces:
        return
    ids: dict[tuple[Any, ...], int] = {}
    for dims in rollup.dimensions(pieces):
        found = await (await conn.execute(rollup.SELECT_KEY, dims)).fetchone()
        if found is not None:
            ids[dims] = int(found[0])
        else:
            ids[dims] = int((await conn.execute(rollup.INSERT_KEY, dims)).lastrowid or 0)
    for sql, params in rollup.statements(pieces, buckets, ids):
        await conn.executemany(sql, params)


async def prune_rollup(conn: aiosqlite.Connection, before_us: int) -> None:
    """After the spans before ``before_us`` are deleted, in the same transaction: the
    pieces wholly before it go; the pieces holding it are recomputed from the spans
    left (they are all in the day piece holding it, read through the start index); the
    watermark comes down to the largest rowid left, so the next span stored (which
    takes the rowid after the largest) is after it."""
    await conn.execute(
        "UPDATE span_rollup_state SET watermark ="
        " MIN(watermark, (SELECT ifnull(MAX(rowid), 0) FROM spans)) WHERE id = 1"
    )
    recompute: set[tuple[int, int]] = set()
    for level in rollup.LEVELS:
        start = _floor(before_us, level * 1_000_000)
        for table in ("span_rollup", "span_rollup_latency"):
            await conn.execute(
                f"DELETE FROM {table} WHERE level = ? AND start_us < ?", (level, start)
            )
        if start < before_us:
            recompute.add((level, start))
            for table in ("span_rollup", "span_rollup_latency"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE level = ? AND start_us = ?", (level, start)
                )
    if not recompute:
        return
    lo = min(start for _, start in recompute)
    hi = max(start + level * 1_000_000 for level, start in recompute)
    # Only the spans folded in already: the others are not in the rollup yet.
    rows = await conn.execute_fetchall(
        f"SELECT {', '.join(rollup.SOURCE_COLUMNS)} FROM spans"
        f" WHERE start_us >= ? AND start_us < ? AND rowid <= {WATERMARK}",
        (lo, hi),
    )
    pieces, buckets = rollup.aggregate(tuple(r) for r in rows)
    pieces = {k: v for k, v in pieces.items() if (k[0], k[1]) in recompute}
    buckets = {k: v for k, v in buckets.items() if (k[0], k[1]) in recompute}
    await _store(conn, pieces, buckets)
