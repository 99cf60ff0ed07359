"""`QuotaService`: the gateway's quotas at run time (``app.state.quotas``).

On the proxy path it costs a dict lookup and a few integer compares per call
(`admit`); nothing there waits for the database. The counts go to the store every
`FLUSH_S` seconds in one transaction, and the stored totals of the current windows
are read back right after (so several processes sharing the store see each other's
counts within that period); limits are read from the store at start, after a change
made through the API, and every `RELOAD_S` seconds (changes made with the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import Scope

from gateway.access.audit import sql_database
from gateway.access.guard import principal_of
from gateway.access.policy import EVENTS_PER_WINDOW
from gateway.access.store import AccessStore, now_iso
from gateway.capture.span import Span
from gateway.config import Settings
from gateway.errors import QuotaExceeded
from gateway.metrics import Metrics
from gateway.quotas.ledger import KEY, PROJECT, Ledger, Refusal
from gateway.quotas.limits import UNITS, Limits, format_limit
from gateway.quotas.store import DEFAULT_PROJECT, QuotaStore
from gateway.store.database import Database
from gateway.store.events import EventRecord

logger = logging.getLogger(__name__)

FLUSH_S = 1.0
RELOAD_S = 2.0
PRUNE_EVERY_S = 3600.0
QUOTA_EVENT = "quota.exceeded"
# The surfaces that answer in the Anthropic error shape.
ANTHROPIC_OPERATIONS = frozenset({"messages", "count_tokens"})


@dataclass(slots=True)
class _EventWindow:
    start: int
    count: int = 0
    unrecorded: int = 0


def charge_of(scope: Scope) -> str | None:
    """The key a request's calls are counted for (None: keys are off)."""
    principal = principal_of(scope)
    return principal.key_id if principal is not None else None


def default_limits(settings: Settings) -> Limits:
    return Limits(
        rpm=settings.quota_default_rpm or None,
        tokens_per_day=settings.quota_default_tokens_per_day or None,
        usd_per_day=settings.quota_default_usd_per_day or None,
        usd_per_month=settings.quota_default_usd_per_month or None,
    )


class QuotaService:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.ledger = Ledger(default_key_limits=default_limits(settings))
        self.store: QuotaStore | None = None
        self.metrics: Metrics | None = None
        self._access: AccessStore | None = None
        self._events: list[EventRecord] = []
        self._event_windows: dict[tuple[str, str], _EventWindow] = {}
        self._task: asyncio.Task[None] | None = None
        self._pruned_at: float | None = None  # not yet (monotonic time starts at boot)
        self._lock = asyncio.Lock()

    # --- life -------------------------------------------------------------------------

    async def open(self, database: Database, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        sql = sql_database(database)
        if sql is None:
            logger.warning("quotas need a SQL database; limits are not applied")
            return
        self.store = QuotaStore(sql)
        self._access = AccessStore(sql)
        await self.reload()
        self._task = asyncio.get_running_loop().create_task(self._keep())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            logger.exception("could not store the last quota counts")

    async def reload(self) -> None:
        """Limits (after a change, and periodically) and the stored counts."""
        if self.store is None:
            return
        now = self.clock()
        for found in await self.store.all_limits():
            self.ledger.set_limits(found.kind, found.id, found.name, found.limits, now)
        await self.flush()

    async def _keep(self) -> None:
        reloaded = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                if time.monotonic() - reloaded >= RELOAD_S:
                    reloaded = time.monotonic()
                    await self.reload()
                else:
                    await self.flush()
            except Exception:
                logger.exception("storing quota counts failed; retrying")

    async def flush(self) -> None:
        """Add the counts gathered since the last flush to the store, read the current
        windows' totals back, and write the refusals' events."""
        if self.store is None:
            return
        async with self._lock:
            batch = self.ledger.take()
            if not batch and not self.ledger.subjects and not self._events:
                return  # no key has been seen (keys off): nothing to store or read
            try:
                await self.store.add(batch)
            except BaseException:
                self.ledger.give_back(batch)
                raise
            now = self.clock()
            self.ledger.load(await self.store.current(now), now)
            events, self._events = self._events, []
            if events and self._access is not None:
                await self._access.append_events(events)
            pruned = self._pruned_at
            if pruned is None or time.monotonic() - pruned >= PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                await self.store.delete_ended(now)

    # --- the request path -------------------------------------------------------------

    def charge_of(self, scope: Scope) -> str | None:
        return charge_of(scope)

    def admit(self, key_id: str, project_id: str | None, operation: str) -> None:
        """Count one call of ``key_id`` in ``project_id``, or raise `QuotaExceeded`."""
        refusal = self.ledger.admit(key_id, project_id or DEFAULT_PROJECT, self.clock())
        if refusal is not None:
            raise self._refused(refusal, key_id, operation)

    def _refused(self, refusal: Refusal, key_id: str, operation: str) -> QuotaExceeded:
        subject = refusal.subject
        code = "rate_limit_exceeded" if refusal.limit == "rpm" else "quota_exceeded"
        message = (
            f"{subject.label()} reached its limit of"
            f" {format_limit(refusal.limit, refusal.value)} {UNITS[refusal.limit]};"
            f" retry in {refusal.retry_after} s"
        )
        if self.metrics is not None:
            self.metrics.quota_refusals.labels(refusal.limit).inc()
        self._record(refusal, key_id, operation)
        return QuotaExceeded(
            message,
            retry_after=refusal.retry_after,
            limit=refusal.limit,
            code=code,
            anthropic=operation in ANTHROPIC_OPERATIONS,
        )

    def _record(self, refusal: Refusal, key_id: str, operation: str) -> None:
        """An audit entry per refusal, at most `EVENTS_PER_WINDOW` per subject and
        minute (a client hammering a spent budget must not fill the disk); the next
        minute's first entry carries how many were left out."""
        subject = refusal.subject
        minute = subject.minute.start
        slot = self._event_windows.get((subject.kind, subject.id))
        unrecorded = 0
        if slot is None or slot.start != minute:
            unrecorded = slot.unrecorded if slot is not None else 0
            slot = self._event_windows[(subject.kind, subject.id)] = _EventWindow(minute)
            if len(self._event_windows) > 10_000:  # forget the oldest windows' counts
                for stale in [k for k, w in self._event_windows.items() if w.start != minute]:
                    del self._event_windows[stale]
        slot.count += 1
        if slot.count > EVENTS_PER_WINDOW or len(self._events) >= 10_000:
            slot.unrecorded += 1
            return
        payload: dict[str, Any] = {
            "reason": refusal.limit,
            "limit": refusal.limit,
            "value": refusal.value,
            "subject_kind": subject.kind,
            "subject_id": subject.id,
            "key_id": key_id,
            "operation": operation,
            "retry_after": refusal.retry_after,
        }
        if unrecorded:
            payload["unrecorded_before"] = unrecorded
        self._events.append(
            EventRecord(
                type=QUOTA_EVENT,
                at=now_iso(),
                project_id=subject.id if subject.kind == PROJECT else None,
                subject_id=key_id,
                payload=payload,
            )
        )

    # --- when calls have ended (the writer stored their spans) ------------------------

    def charge_spans(self, spans: Sequence[Span]) -> None:
        """Add the tokens and cost of finished calls (their spans, once the writer has
        derived usage and cost) to their key and project."""
        now = self.clock()
        for span in spans:
            key_id = span.charge
            if key_id is None:
                continue
            tokens = span.total_tokens
            if tokens is None:
                tokens = (span.prompt_tokens or 0) + (span.completion_tokens or 0)
            self.ledger.charge(
                key_id,
                span.context.project_id or DEFAULT_PROJECT,
                tokens,
                span.cost_usd or 0.0,
                now,
            )

    # --- what the API shows -----------------------------------------------------------

    def usage(self, kind: str, subject_id: str) -> dict[str, Any]:
        """Current usage and the limits in force (a key's own, or the default)."""
        now = self.clock()
        subject = self.ledger.subjects.get((kind, subject_id))
        if subject is None:
            limits = self.ledger.default_key_limits if kind == KEY else Limits()
            return {"limits_in_force": limits.as_dict(), **_empty_usage()}
        # A window that has ended reads 0 (it is rolled at the subject's next call).
        live = {
            "requests_this_minute": subject.minute.requests if now < subject.minute.end else 0,
            "requests_today": subject.day.requests if now < subject.day.end else 0,
            "tokens_today": subject.day.tokens if now < subject.day.end else 0,
            "usd_today": subject.day.cost if now < subject.day.end else 0.0,
            "usd_this_month": subject.month.cost if now < subject.month.end else 0.0,
        }
        return {"limits_in_force": subject.limits.as_dict(), **live}


def _empty_usage() -> dict[str, Any]:
    return {
        "requests_this_minute": 0,
        "requests_today": 0,
        "tokens_today": 0,
        "usd_today": 0.0,
        "usd_this_month": 0.0,
    }
