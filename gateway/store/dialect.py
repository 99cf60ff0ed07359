"""The few SQL fragments that differ between SQLite and PostgreSQL, so a store writes
its statements once (``?`` placeholders, portable SQL) and takes only these from here.

Portable already, so not here: ``INSERT ... ON CONFLICT (...) DO NOTHING`` / ``DO UPDATE``
(SQLite >= 3.24), ``COUNT(*) FILTER (WHERE ...)`` (SQLite >= 3.30), ``COALESCE``, window
functions, row-value comparisons, ``TRUE``/``FALSE`` (SQLite >= 3.23). Not portable, and
so avoided in shared statements: ``SUM(<boolean>)`` (`count_if`), ``TOTAL(x)``
(``COALESCE(SUM(x), 0)``), ``IFNULL`` (``COALESCE``), ``INSERT OR IGNORE``
(`insert_ignore`), ``rowid``, ``WHERE 1`` (``TRUE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# strftime (SQLite) and to_char (PostgreSQL) patterns of the time buckets, from
# microseconds since the epoch, UTC.
_BUCKETS = {
    "minute": ("%Y-%m-%dT%H:%M:00Z", 'YYYY-MM-DD"T"HH24:MI:00"Z"'),
    "hour": ("%Y-%m-%dT%H:00:00Z", 'YYYY-MM-DD"T"HH24:00:00"Z"'),
    "day": ("%Y-%m-%d", "YYYY-MM-DD"),
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """One dialect's fragments. ``dialect_for(db.dialect)`` gives a database's."""

    name: str

    @property
    def postgres(self) -> bool:
        return self.name == POSTGRESQL

    def time_bucket(self, unit: str, us_column: str) -> str:
        """The UTC minute, hour or day (ISO text, as SQLite's strftime writes it) of a
        column of microseconds since the epoch."""
        sqlite_format, pg_format = _BUCKETS[unit]
        if self.postgres:
            return f"to_char(to_timestamp({us_column} / 1000000) AT TIME ZONE 'UTC', '{pg_format}')"
        return f"strftime('{sqlite_format}', {us_column} / 1000000, 'unixepoch')"

    def group_concat(self, expression: str, *, distinct: bool = False) -> str:
        """The values of ``expression`` joined with commas (order unspecified)."""
        inner = f"DISTINCT {expression}" if distinct else expression
        if self.postgres:
            return f"string_agg({inner}, ',')"
        return f"GROUP_CONCAT({inner})"

    def json_text(self, column: str, key: str) -> str:
        """A top-level field of a JSON object held as text, as text (NULL if absent).
        ``key`` is a constant of the code, never user input (it is inlined)."""
        if "'" in key or '"' in key:
            raise ValueError(f"unsupported JSON key {key!r}")
        if self.postgres:
            return f"(({column})::jsonb ->> '{key}')"
        return f"json_extract({column}, '$.\"{key}\"')"

    @property
    def like_nocase(self) -> str:
        """Case-insensitive LIKE (ASCII): SQLite's LIKE is; PostgreSQL's is ILIKE."""
        return "ILIKE" if self.postgres else "LIKE"

    @property
    def now_iso(self) -> str:
        """Now, UTC, as ISO 8601 text with milliseconds and a Z."""
        if self.postgres:
            return "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        return "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

    @staticmethod
    def count_if(condition: str) -> str:
        """How many rows satisfy ``condition`` (SUM of a boolean is SQLite's only)."""
        return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"

    @staticmethod
    def total(expression: str) -> str:
        """SQLite's TOTAL: the sum, 0 when there is none (a float on SQLite)."""
        return f"COALESCE(SUM({expression}), 0)"

    @staticmethod
    def insert_ignore(table: str, columns: Sequence[str]) -> str:
        """An INSERT of one row that does nothing when it would break a unique index."""
        return (
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT DO NOTHING"
        )


_DIALECTS = {SQLITE: Dialect(SQLITE), POSTGRESQL: Dialect(POSTGRESQL)}


def dialect_for(name: str) -> Dialect:
    """The fragments of a database's ``dialect`` ("sqlite" or "postgresql")."""
    try:
        return _DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r}") from None
