"""Building the WHERE clause of a filtered list, the same way for every list."""

from __future__ import annotations

import re
from typing import Any

_LIKE_SPECIAL = re.compile(r"([%_\\])")


class Where:
    """Clauses joined with AND, and their parameters in order. ``like``: the operator
    of `contains_text` (``Dialect.like_nocase``: LIKE on SQLite, ILIKE on PostgreSQL).
    No clause, or none of no values, is TRUE or FALSE: SQL both dialects take."""

    def __init__(self, like: str = "LIKE") -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []
        self.like = like

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def equals(self, column: str, value: Any) -> None:
        """``column = value``, unless ``value`` is None (no filter)."""
        if value is not None:
            self.add(f"{column} = ?", value)

    def one_of(self, column: str, values: tuple[Any, ...]) -> None:
        """``column`` is one of ``values`` (none: nothing matches)."""
        if not values:
            self.add("FALSE")
        elif len(values) == 1:
            self.add(f"{column} = ?", values[0])
        else:
            self.add(f"{column} IN ({', '.join('?' for _ in values)})", *values)

    def contains_text(self, columns: tuple[str, ...], text: str | None) -> None:
        """Any of ``columns`` contains ``text``: case-insensitive (ASCII), with LIKE's
        wildcards in ``text`` taken literally."""
        if not text:
            return
        pattern = "%" + _LIKE_SPECIAL.sub(r"\\\1", text) + "%"
        like = f"{self.like} ? ESCAPE '\\'"
        self.add(
            "(" + " OR ".join(f"{c} {like}" for c in columns) + ")", *([pattern] * len(columns))
        )

    def sql(self) -> tuple[str, list[Any]]:
        return (" AND ".join(self.clauses) or "TRUE"), self.params
