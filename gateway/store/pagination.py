"""Keyset (cursor) pagination, newest first, for every list the store serves.

A page is read with ``ORDER BY k1 DESC, k2 DESC`` and the cursor is the last row's
``(k1, k2)``: the next page is the rows strictly below it. Unlike OFFSET, a page stays
right while rows are added at the top (a live list), and costs the same at any depth.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SortKey:
    """A sort column: the SQL expression ordered on, and the row field it reads back."""

    sql: str
    field: str
    default: Any = None  # stands in for NULL in the cursor (matches a COALESCE in sql)
    # The type a cursor's value must have (None: any a sort key can have). PostgreSQL
    # refuses a parameter of another type than its column's (an int for TEXT) where
    # SQLite compares anything: a cursor of the wrong types is refused here, a 400.
    kind: type | None = None


def encode_cursor(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def _sort_value(value: Any) -> bool:
    """Whether ``value`` can be a sort key's value: what both dialects bind (an int in
    64 bits, a float, text, NULL), as `encode_cursor` writes them."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return value is None or isinstance(value, float | str)


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != size or not all(map(_sort_value, key)):
        shown = cursor if len(cursor) <= 100 else cursor[:100] + "..."
        raise InvalidRequest(f"Invalid cursor {shown!r}", param="cursor")
    return key


Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]


async def keyset_page(
    fetch: Fetch,
    select: str,
    where: str,
    params: Sequence[Any],
    keys: tuple[SortKey, SortKey],
    *,
    limit: int,
    cursor: str | None,
    convert: Callable[[Any], dict[str, Any]],
) -> Page:
    """Rows of ``select ... WHERE where`` newest first by ``keys``, ``limit`` of them
    after ``cursor``."""
    args = list(params)
    if cursor:
        after = decode_cursor(cursor, 2)
        for key, value in zip(keys, after, strict=True):
            if key.kind is not None and not isinstance(value, key.kind):
                shown = cursor if len(cursor) <= 100 else cursor[:100] + "..."
                raise InvalidRequest(f"Invalid cursor {shown!r}", param="cursor")
        where += f" AND ({keys[0].sql}, {keys[1].sql}) < (?, ?)"
        args += after
    rows = await fetch(
        f"{select} WHERE {where} ORDER BY {keys[0].sql} DESC, {keys[1].sql} DESC LIMIT ?",
        (*args, limit + 1),
    )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(
            [last[k.field] if last[k.field] is not None else k.default for k in keys]
        )
    return Page([convert(row) for row in rows[:limit]], next_cursor)
