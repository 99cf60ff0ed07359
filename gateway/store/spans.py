"""The span store's interface, whatever the database: `SpanStore`, the filter its
queries take, and how a stored span is presented (`span_from_row`).

`gateway.store.sqlite.SQLiteSpanStore` implements it on a `SQLiteDatabase`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from gateway.capture.origin import APP
from gateway.capture.span_table import JSON_COLUMNS
from gateway.store.pagination import Page
from gateway.store.sqlwhere import Where


@dataclass(frozen=True, slots=True)
class SpanFilter:
    project: str | None = None
    thread: str | None = None
    run: str | None = None
    trace: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    label: str | None = None
    operation: str | None = None
    text: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    # Any of these origins (gateway.capture.origin), and none of those: "not replays"
    # is ``exclude_origins=("experiment",)``.
    origins: tuple[str, ...] | None = None
    exclude_origins: tuple[str, ...] | None = None

    def where(self, *, like: str = "LIKE") -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters; ``like``: the text search's operator
        (`Dialect.like_nocase`)."""
        where = Where(like)
        where.equals("project_id", self.project)
        where.equals("thread_id", self.thread)
        where.equals("run_id", self.run)
        where.equals("trace_id", self.trace)
        where.equals("provider", self.provider)
        where.equals("status", self.status)
        where.equals("label", self.label)
        where.equals("operation", self.operation)
        if self.model is not None:
            where.add("(request_model = ? OR response_model = ?)", self.model, self.model)
        where.contains_text(("input_preview", "output_text", "request", "response"), self.text)
        if self.since_us is not None:
            where.add("start_us >= ?", self.since_us)
        if self.until_us is not None:
            where.add("start_us < ?", self.until_us)
        if self.origins is not None:
            where.one_of("origin", self.origins)
            if APP not in self.origins:
                # Implies the partial index spans_not_app's condition, so SQLite may use
                # it (it needs that term itself in the query) to find the few replays.
                where.add(f"origin <> '{APP}'")
        if self.exclude_origins:
            where.add(
                f"origin NOT IN ({', '.join('?' for _ in self.exclude_origins)})",
                *self.exclude_origins,
            )
        return where.sql()


def iso_from_us(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


class Row(Protocol):
    """A stored row by column name (`sqlite3.Row`, or a record about to be stored)."""

    def keys(self) -> Any: ...

    def __getitem__(self, key: str, /) -> Any: ...


def span_from_row(row: Row | Mapping[str, Any]) -> dict[str, Any]:
    """A stored span (a row, or a record about to be stored) as the API presents it."""
    out: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118  (sqlite3.Row is not iterable by key)
        value = row[key]
        if key in JSON_COLUMNS and value is not None:
            value = orjson.loads(value)
        out[key] = value
    out["stream"] = bool(out.get("stream"))
    out["start_time"] = iso_from_us(out.get("start_us"))
    out["end_time"] = iso_from_us(out.get("end_us"))
    out["usage"] = {
        "prompt_tokens": out.pop("prompt_tokens", None),
        "completion_tokens": out.pop("completion_tokens", None),
        "total_tokens": out.pop("total_tokens", None),
        "cached_tokens": out.pop("cached_tokens", None),
    }
    return out


@dataclass(frozen=True, slots=True)
class StatsAnswer:
    """`/stats` rows, and whether their percentiles are approximate (from the rollup's
    latency histogram: within `gateway.capture.rollup.PERCENTILE_ERROR`)."""

    rows: list[dict[str, Any]]
    approximate: bool = False


class SpanStore(ABC):
    """What the gateway needs of stored spans."""

    async def fold_rollup(self) -> int:
        """Fold a chunk of the stored spans into the `/stats` rollup, if the store keeps
        one (`gateway.capture.rollup`); how many were folded (0: caught up, or no
        rollup)."""
        return 0

    @abstractmethod
    async def insert_spans(
        self, records: Sequence[Mapping[str, Any]]
    ) -> Mapping[int, Mapping[str, Any]] | None:
        """Store the records; a record whose span id another span holds already is
        stored under a new id (returned, by index). A record already stored (the same
        span, sent again) is left as it is."""

    @abstractmethod
    async def get_span(self, span_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def list_spans(
        self, filters: SpanFilter, *, limit: int, cursor: str | None = None
    ) -> Page: ...

    @abstractmethod
    async def get_trace(self, trace_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def list_threads(
        self, *, project: str | None, limit: int, offset: int = 0
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def stats(self, group_by: str, filters: SpanFilter) -> list[dict[str, Any]]: ...

    async def stats_answer(
        self, group_by: str, filters: SpanFilter, *, exact: bool = False
    ) -> StatsAnswer:
        """`stats`, saying how it was answered; a store without a rollup scans."""
        return StatsAnswer(await self.stats(group_by, filters))

    @abstractmethod
    async def facets(self, limit: int = 1000) -> dict[str, list[str]]:
        """The values each filter can take (`span_table.FACET_KINDS`): ``{kind: values}``,
        sorted, at most ``limit`` per kind; from a small table the writers keep, so it
        costs the same at any number of spans."""

    @abstractmethod
    async def count_spans(self, filters: SpanFilter | None = None) -> int: ...

    @abstractmethod
    async def delete_spans_before(self, before_us: int) -> int:
        """Delete spans that started before ``before_us``; return how many. The facets
        are rebuilt from the spans left (a model no span names any more goes)."""
