"""What a limit is: `Limits` (per key or project), how they are read from a request
body or the command line, and the windows they are counted in (UTC-aligned minute,
day and month)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.errors import InvalidRequest

# The limits, in the order they are shown; each is counted in one window.
LIMIT_NAMES = ("rpm", "tokens_per_day", "usd_per_day", "usd_per_month")
WINDOW_OF = {
    "rpm": "minute",
    "tokens_per_day": "day",
    "usd_per_day": "day",
    "usd_per_month": "month",
}
WINDOWS = ("minute", "day", "month")
# How a limit reads in a refusal's message.
UNITS = {
    "rpm": "requests per minute",
    "tokens_per_day": "tokens per day",
    "usd_per_day": "USD per day",
    "usd_per_month": "USD per month",
}
MINUTE_S = 60
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Limits:
    """None: no limit of that kind."""

    rpm: int | None = None
    tokens_per_day: int | None = None
    usd_per_day: float | None = None
    usd_per_month: float | None = None

    @property
    def empty(self) -> bool:
        return (
            self.rpm is None
            and self.tokens_per_day is None
            and self.usd_per_day is None
            and self.usd_per_month is None
        )

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "rpm": self.rpm,
            "tokens_per_day": self.tokens_per_day,
            "usd_per_day": self.usd_per_day,
            "usd_per_month": self.usd_per_month,
        }

    def merged(self, changes: Mapping[str, int | float | None]) -> Limits:
        """These limits with ``changes`` applied (a None there removes that limit)."""
        values: dict[str, Any] = {**self.as_dict(), **changes}
        return Limits(**values)


NO_LIMITS = Limits()


def limit_value(name: str, value: Any) -> int | float | None:
    """One limit from JSON or the command line: a positive number, or None (or 0) for
    none. InvalidRequest (400) names a bad one."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "off"):
            return None
        try:
            value = float(text) if name.startswith("usd") else int(text)
        except ValueError:
            raise InvalidRequest(f"{name!r} must be a number.", param=name) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name!r} must be a number or null.", param=name)
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(f"{name!r} must be 0 or more (0 or null: no limit).", param=name)
    if name.startswith("usd"):
        return float(value) or None
    if value != int(value):
        raise InvalidRequest(f"{name!r} must be a whole number.", param=name)
    return int(value) or None


def limit_changes(body: Mapping[str, Any]) -> dict[str, int | float | None]:
    """The limits a request body names (``{"rpm": 60, ...}``, or the same under
    ``"limits"``); only the named ones change."""
    nested = body.get("limits")
    if nested is not None and not isinstance(nested, dict):
        raise InvalidRequest("'limits' must be an object.", param="limits")
    source = {**(nested or {}), **{k: body[k] for k in LIMIT_NAMES if k in body}}
    unknown = set(nested or {}) - set(LIMIT_NAMES)
    if unknown:
        raise InvalidRequest(
            f"unknown limit(s) {', '.join(sorted(unknown))}; limits are {', '.join(LIMIT_NAMES)}",
            param="limits",
        )
    return {name: limit_value(name, source[name]) for name in LIMIT_NAMES if name in source}


def window_bounds(kind: str, now: float) -> tuple[int, int]:
    """The (start, end) in Unix seconds of the ``kind`` window holding ``now`` (UTC)."""
    t = int(now)
    if kind == "minute":
        start = t - t % MINUTE_S
        return start, start + MINUTE_S
    if kind == "day":
        start = t - t % DAY_S
        return start, start + DAY_S
    at = datetime.fromtimestamp(t, tz=UTC)
    first = datetime(at.year, at.month, 1, tzinfo=UTC)
    following = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return int(first.timestamp()), int(following.timestamp())


def format_limit(name: str, value: int | float) -> str:
    if name.startswith("usd"):
        return f"{value:g}"
    return str(int(value))
