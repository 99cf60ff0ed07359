"""The spans table as the writers see it: its columns, and one transaction of inserts.

Kept apart from `gateway.store` (aiosqlite, the query side) so the writer process
(`gateway.writer_child`) imports only the standard library's `sqlite3` to store spans.
"""

from __future__ import annotations

import functools
import json
import operator
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

SPAN_COLUMNS = (
    "span_id",
    "trace_id",
    "parent_span_id",
    "project_id",
    "thread_id",
    "run_id",
    "label",
    "tags",
    "operation",
    "method",
    "path",
    "provider",
    "request_model",
    "response_model",
    "stream",
    "status",
    "http_status",
    "start_us",
    "end_us",
    "duration_ms",
    "ttft_ms",
    "request",
    "request_headers",
    "query",
    "response",
    "response_headers",
    "input_preview",
    "output_text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cost_usd",
    "error",
    "attributes",
    "links",
)
JSON_COLUMNS = frozenset(
    {
        "tags",
        "request",
        "request_headers",
        "response",
        "response_headers",
        "error",
        "attributes",
        "links",
    }
)
# Columns a span list returns: everything but the bodies and headers.
SUMMARY_COLUMNS = tuple(
    c
    for c in SPAN_COLUMNS
    if c not in {"request", "request_headers", "response", "response_headers", "query"}
)

_SPAN_ROW = operator.itemgetter(*SPAN_COLUMNS)


def span_rows(records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Records as rows in `SPAN_COLUMNS` order; a missing column is NULL."""
    try:
        return [_SPAN_ROW(record) for record in records]  # every column present: C speed
    except KeyError:
        return [tuple(record.get(c) for c in SPAN_COLUMNS) for record in records]


# Rows per INSERT statement. One statement per row (executemany) lets go of the GIL
# and takes it back for every row; while the event loop is busy each taking-back waits
# up to the interpreter's switch interval (5 ms), so under load the writer stored a
# few hundred spans a second and fell minutes behind. Many rows per statement: a few
# GIL hand-overs per batch. Only these sizes (a batch is cut greedily into them), so
# SQLite prepares and caches four statements, not one per batch size (a prepared
# 64-row statement is large). 64 x 37 parameters stays far below SQLite's limit.
INSERT_SIZES = (64, 16, 4, 1)


@functools.lru_cache(maxsize=len(INSERT_SIZES))
def _insert_sql(count: int) -> str:
    row = "(" + ", ".join("?" for _ in SPAN_COLUMNS) + ")"
    return (
        f"INSERT OR REPLACE INTO spans ({', '.join(SPAN_COLUMNS)})"
        f" VALUES {', '.join(row for _ in range(count))}"
    )


def insert_sql(count: int) -> str:
    """The INSERT statement for ``count`` rows."""
    return _insert_sql(count)


# What is kept of a span that cannot be stored whole (see `outline_row`): what
# identifies, places and times the call. The bodies, headers and derived values go.
OUTLINE_COLUMNS = frozenset(
    {
        "span_id",
        "trace_id",
        "parent_span_id",
        "project_id",
        "thread_id",
        "run_id",
        "label",
        "operation",
        "method",
        "path",
        "provider",
        "request_model",
        "stream",
        "status",
        "http_status",
        "start_us",
        "end_us",
        "duration_ms",
        "ttft_ms",
    }
)


def _storable(value: Any) -> Any:
    """``value`` as SQLite takes it, or None: text made valid UTF-8, integers in range."""
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return None


def outline_row(values: Mapping[str, Any], reason: str) -> tuple[Any, ...]:
    """A row for a span whose whole record could not be built or stored: its
    `OUTLINE_COLUMNS`, made storable, and an error saying why the rest is missing."""
    error = {"type": "capture_error", "code": "span_not_stored_whole", "message": reason}
    return tuple(
        json.dumps(error)
        if column == "error"
        else _storable(values.get(column))
        if column in OUTLINE_COLUMNS
        else None
        for column in SPAN_COLUMNS
    )


def insert_rows(raw: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Store ``rows`` in one transaction (on the thread that owns ``raw``)."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        start = 0
        for size in INSERT_SIZES:
            while len(rows) - start >= size:
                chunk = rows[start : start + size]
                raw.execute(_insert_sql(size), [v for row in chunk for v in row])
                start += size
        raw.execute("COMMIT")
    except BaseException:
        raw.execute("ROLLBACK")
        raise
