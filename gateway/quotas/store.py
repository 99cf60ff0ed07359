"""Limits and usage in the database: the limit columns of ``access_keys`` and
``projects``, and the ``quota_usage`` counters (migration ``0015_quotas.sql``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import NotFound
from gateway.quotas.ledger import KEY, PROJECT, Amounts, WindowId
from gateway.quotas.limits import LIMIT_NAMES, WINDOWS, Limits, window_bounds
from gateway.store.sql import SQLDatabase, SQLRow

DEFAULT_PROJECT = "default"
DEFAULT_PROJECT_NAME = "Default project"
# How long rows of ended windows are kept (for a look back), per window kind.
KEEP_S = {"minute": 3600, "day": 62 * 86_400, "month": 400 * 86_400}
# The upsert that adds (SQLite and PostgreSQL alike): several processes add up.
ADD = (
    "INSERT INTO quota_usage AS t"
    " (subject_kind, subject_id, window_kind, window_start, requests, tokens, cost_usd)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (subject_kind, subject_id, window_kind, window_start) DO UPDATE SET"
    " requests = t.requests + excluded.requests,"
    " tokens = t.tokens + excluded.tokens,"
    " cost_usd = t.cost_usd + excluded.cost_usd"
)


@dataclass(frozen=True, slots=True)
class SubjectLimits:
    kind: str
    id: str
    name: str
    limits: Limits


def _limits(row: SQLRow) -> Limits:
    return Limits(
        rpm=row["rpm"],
        tokens_per_day=row["tokens_per_day"],
        usd_per_day=row["usd_per_day"],
        usd_per_month=row["usd_per_month"],
    )


@dataclass(slots=True)
class QuotaStore:
    db: SQLDatabase  # SQLite's or PostgreSQL's (the statements are portable)

    async def all_limits(self) -> list[SubjectLimits]:
        """The limits of every active key and of every project (with or without)."""
        columns = ", ".join(LIMIT_NAMES)
        keys = await self.db.fetch(
            f"SELECT id, name, {columns} FROM access_keys WHERE revoked_at IS NULL"
        )
        projects = await self.db.fetch(f"SELECT id, name, {columns} FROM projects")
        return [SubjectLimits(KEY, r["id"], r["name"], _limits(r)) for r in keys] + [
            SubjectLimits(PROJECT, r["id"], r["name"], _limits(r)) for r in projects
        ]

    async def limits_of(self, kind: str, subject_id: str) -> Limits:
        table = "access_keys" if kind == KEY else "projects"
        rows = await self.db.fetch(
            f"SELECT {', '.join(LIMIT_NAMES)} FROM {table} WHERE id = ?", (subject_id,)
        )
        if not rows:
            if kind == PROJECT and subject_id == DEFAULT_PROJECT:
                return Limits()
            raise NotFound(f"No {kind} {subject_id!r}.", code=f"{kind}_not_found")
        return _limits(rows[0])

    async def set_limits(self, kind: str, subject_id: str, limits: Limits) -> None:
        table = "access_keys" if kind == KEY else "projects"
        async with self.db.transaction() as conn:
            if kind == PROJECT and subject_id == DEFAULT_PROJECT:
                # Not a row until something names it (migration 0013).
                await conn.execute(
                    "INSERT INTO projects (id, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (DEFAULT_PROJECT, DEFAULT_PROJECT_NAME),
                )
            cursor = await conn.execute(
                f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in LIMIT_NAMES)} WHERE id = ?",
                (
                    limits.rpm,
                    limits.tokens_per_day,
                    limits.usd_per_day,
                    limits.usd_per_month,
                    subject_id,
                ),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"No {kind} {subject_id!r}.", code=f"{kind}_not_found")

    async def add(self, batch: Iterable[tuple[WindowId, Amounts]]) -> None:
        """Add counts to the stored ones, in one transaction."""
        rows = [(*window, *amounts) for window, amounts in batch]
        if not rows:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(ADD, rows)

    async def current(self, now: float) -> dict[WindowId, Amounts]:
        """The stored totals of the windows that hold ``now``."""
        starts = [window_bounds(kind, now)[0] for kind in WINDOWS]
        rows = await self.db.fetch(
            "SELECT subject_kind, subject_id, window_kind, window_start, requests, tokens,"
            " cost_usd FROM quota_usage WHERE (window_kind = 'minute' AND window_start = ?)"
            " OR (window_kind = 'day' AND window_start = ?)"
            " OR (window_kind = 'month' AND window_start = ?)",
            starts,
        )
        return {
            (r["subject_kind"], r["subject_id"], r["window_kind"], r["window_start"]): (
                r["requests"],
                r["tokens"],
                r["cost_usd"],
            )
            for r in rows
        }

    async def delete_ended(self, now: float) -> int:
        """Rows of windows that ended more than `KEEP_S` ago."""
        deleted = 0
        async with self.db.transaction() as conn:
            for kind, keep in KEEP_S.items():
                cursor = await conn.execute(
                    "DELETE FROM quota_usage WHERE window_kind = ? AND window_start < ?",
                    (kind, int(now) - keep),
                )
                deleted += max(cursor.rowcount, 0)
        return deleted
