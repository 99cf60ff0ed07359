"""The spans table as the writers see it: its columns, and one transaction of inserts.

Kept apart from `gateway.store.sqlite` (aiosqlite, the query side) so the writer process
(`gateway.writer.process`) imports only the standard library's `sqlite3` to store spans.
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import sqlite3
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

from gateway.capture.origin import APP, origin_from_json
from gateway.capture.span import RECORD_COLUMNS, new_span_id

logger = logging.getLogger("gateway.writer.span_writer")

SPAN_COLUMNS = RECORD_COLUMNS  # the order `capture.to_row` builds a row in
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
# A statement's parameters, its rows' values one after another, at C speed (a list
# comprehension over 64 x 38 values held the GIL the writer's other thread needs).
_chain = chain
_ORIGIN = SPAN_COLUMNS.index("origin")


def _filled(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """A record that lacks columns (a spill file written before a column existed): the
    missing ones NULL, but the origin, which is derived from the attributes."""
    row = tuple(record.get(c) for c in SPAN_COLUMNS)
    if row[_ORIGIN] is None:
        row = (*row[:_ORIGIN], origin_from_json(record.get("attributes")), *row[_ORIGIN + 1 :])
    return row


def span_rows(records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Records as rows in `SPAN_COLUMNS` order; a missing column is NULL (a missing
    origin is derived)."""
    try:
        return [_SPAN_ROW(record) for record in records]  # every column present: C speed
    except KeyError:
        return [_filled(record) for record in records]


# The facets table (migration 0003): each value a filter can take, by kind, for the
# UI's dropdowns (`GET /spans/facets`) without a scan of the spans. Every transaction
# that stores spans adds their values (INSERT OR IGNORE: a value already there costs a
# lookup in a table of a few pages, and writes nothing); a prune rebuilds the table
# (`facets_of`, over the spans left). At 1,000,000 spans `GET /spans/facets` reads it in
# 0.3 ms, where the two /stats scans it replaced took 12-20 s (`python -m
# bench.facets_bench`). The writer's share (`FacetCache`): ~6 us per transaction when
# its values are known (a data_version check and a set difference), ~0.16 us a span in
# a batch of 1,000; a statement only for new values.
FACET_KINDS = {
    "model": ("request_model", "response_model"),
    "provider": ("provider",),
    "label": ("label",),
    "operation": ("operation",),
    "origin": ("origin",),
}
_FACET_INDEXES = tuple(
    (kind, SPAN_COLUMNS.index(column))
    for kind, columns in FACET_KINDS.items()
    for column in columns
)
FACET_COLUMNS = tuple(dict.fromkeys(c for columns in FACET_KINDS.values() for c in columns))
INSERT_FACET = "INSERT OR IGNORE INTO span_facets (kind, value) VALUES (?, ?)"


def facets_of(
    rows: Sequence[Sequence[Any]], indexes: Sequence[tuple[str, int]] = _FACET_INDEXES
) -> set[tuple[str, str]]:
    """The (kind, value) facets of ``rows`` (`SPAN_COLUMNS` order unless ``indexes``
    says where each kind's columns are). A column at a time, at C speed: ~0.15 us a
    span for a batch of 1,000."""
    found: set[tuple[str, str]] = set()
    for kind, i in indexes:
        try:
            values = set(map(operator.itemgetter(i), rows))
        except TypeError:  # an unhashable value (no row the writers build has one)
            values = {row[i] for row in rows if isinstance(row[i], str)}
        found.update((kind, v) for v in values if v and isinstance(v, str))
    return found


class FacetCache:
    """The facets a connection has stored, so a batch whose values are all known sends
    no statement (the writer process's common case: a few models, seen before). Known
    values are forgotten whenever another connection has committed since (``PRAGMA
    data_version``): a prune there may have removed some."""

    def __init__(self) -> None:
        self.known: set[tuple[str, str]] = set()
        self.version: int | None = None

    def unknown(
        self, raw: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]
    ) -> set[tuple[str, str]]:
        """The facets of ``rows`` not known stored; inside the write transaction, so no
        other connection commits between the check and this one's commit."""
        version = raw.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.known.clear()
            self.version = version
        return facets_of(rows) - self.known


def facet_indexes(columns: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """Where each facet kind's columns are in rows of ``columns``."""
    return tuple(
        (kind, columns.index(column)) for kind, names in FACET_KINDS.items() for column in names
    )


# Rows per INSERT statement. One statement per row (executemany) lets go of the GIL
# and takes it back for every row; while the event loop is busy each taking-back waits
# up to the interpreter's switch interval (5 ms), so under load the writer stored a
# few hundred spans a second and fell minutes behind. Many rows per statement: a few
# GIL hand-overs per batch. Only these sizes (a batch is cut greedily into them), so
# SQLite prepares and caches four statements, not one per batch size (a prepared
# 64-row statement is large). 64 x 38 parameters stays far below SQLite's limit.
INSERT_SIZES = (64, 16, 4, 1)


@functools.lru_cache(maxsize=len(INSERT_SIZES))
def _insert_sql(count: int) -> str:
    # Never OR REPLACE: a span id taken by another span must not overwrite it
    # (`_settle_conflicts` decides what a refused row is).
    row = "(" + ", ".join("?" for _ in SPAN_COLUMNS) + ")"
    return (
        f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)})"
        f" VALUES {', '.join(row for _ in range(count))}"
        " ON CONFLICT (span_id) DO NOTHING"
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
        "origin",
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
        else _storable(values.get(column)) or APP
        if column == "origin"
        else _storable(values.get(column))
        if column in OUTLINE_COLUMNS
        else None
        for column in SPAN_COLUMNS
    )


# A span sent twice (a writer process restarted before it acknowledged a batch, a
# spill file replayed after the batch was stored after all) is the same span when these
# are equal; another span that drew the same id (32 random bits within a millisecond)
# differs in them.
IDENTITY_COLUMNS = ("trace_id", "start_us", "end_us")
_ID = SPAN_COLUMNS.index("span_id")
_ATTRIBUTES = SPAN_COLUMNS.index("attributes")
_IDENTITY = operator.itemgetter(*(SPAN_COLUMNS.index(c) for c in IDENTITY_COLUMNS))
SELECT_IDENTITY = f"SELECT {', '.join(IDENTITY_COLUMNS)} FROM spans WHERE span_id = ?"
ORIGINAL_ID_ATTRIBUTE = "spanlab.original_span_id"

Renamed = dict[int, tuple[Any, ...]]


def same_span(row: tuple[Any, ...], stored: Sequence[Any] | None) -> bool:
    """Whether ``stored`` (the `SELECT_IDENTITY` of ``row``'s id) is ``row``'s span."""
    return stored is not None and tuple(stored) == _IDENTITY(row)


def renamed_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """``row`` under a fresh span id, the id it had kept in its attributes (the call's
    response header carried that one)."""
    values = list(row)
    try:
        attributes = json.loads(row[_ATTRIBUTES]) if row[_ATTRIBUTES] else {}
    except ValueError:
        attributes = {}
    if not isinstance(attributes, dict):
        attributes = {"value": attributes}
    attributes.setdefault(ORIGINAL_ID_ATTRIBUTE, row[_ID])
    values[_ATTRIBUTES] = json.dumps(attributes)
    values[_ID] = new_span_id()
    return tuple(values)


def _settle_conflicts(
    raw: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], start: int, end: int
) -> Renamed:
    """Rows ``start:end`` went in but for some whose span id was taken: a row whose
    span is the one stored under its id (itself, or an earlier copy) is done; another
    span is stored under a new id. Rare, so one query per row of the statement."""
    renamed: Renamed = {}
    for i in range(start, end):
        row = rows[i]
        found = raw.execute(SELECT_IDENTITY, (row[_ID],)).fetchone()
        if same_span(row, found):
            continue
        new = row if found is None else renamed_row(row)
        while raw.execute(_insert_sql(1), new).rowcount != 1:
            new = renamed_row(row)
        if new is row:
            continue
        logger.warning(
            "span id %s was already taken by another span; this span is stored as %s"
            " (attribute %s keeps the id its response carried)",
            row[_ID],
            new[_ID],
            ORIGINAL_ID_ATTRIBUTE,
        )
        renamed[i] = new
    return renamed


def insert_rows(
    raw: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], facets: FacetCache | None = None
) -> Renamed:
    """Store ``rows`` in one transaction (on the thread that owns ``raw``), and their
    facets (those ``facets`` does not know stored already). Returns the rows stored
    under a new span id (by index): their id was another span's."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        renamed: Renamed = {}
        start = 0
        for size in INSERT_SIZES:
            while len(rows) - start >= size:
                chunk = rows[start : start + size]
                cursor = raw.execute(_insert_sql(size), list(_chain(*chunk)))
                if cursor.rowcount != size:
                    renamed.update(_settle_conflicts(raw, rows, start, start + size))
                start += size
        new = facets_of(rows) if facets is None else facets.unknown(raw, rows)
        if new:
            raw.executemany(INSERT_FACET, new)
        raw.execute("COMMIT")
        if facets is not None:
            facets.known |= new
        return renamed
    except BaseException:
        # SQLite may have rolled back already (a full disk does): a ROLLBACK then would
        # fail with "no transaction is active" and hide the real error.
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
