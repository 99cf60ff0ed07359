"""The counters in memory: who has used how much in the current windows, and the
admission check run on every call (`Ledger.admit`).

Why counting here is exact for requests per minute: the event loop runs one call's
admission at a time, and a call is counted in the same step that checks it, so N
concurrent calls against a limit of L pass exactly min(N, L). Tokens and cost are only
known when a call ends: a budget refuses the calls that start once it is reached, so
it can be passed by at most the calls already in flight when it is reached.

What has not reached the store yet is kept apart (``pending_*``) and handed out in
batches (`take`); totals read back from the store (`load`) replace the counts, plus
what was counted here since the batch was taken.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.quotas.limits import NO_LIMITS, WINDOW_OF, WINDOWS, Limits, window_bounds

KEY = "key"
PROJECT = "project"

# (subject kind, subject id, window kind, window start) -> (requests, tokens, cost)
WindowId = tuple[str, str, str, int]
Amounts = tuple[int, int, float]


@dataclass(slots=True)
class Window:
    kind: str
    start: int
    end: int
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0
    # counted here and not yet in the store
    pending_requests: int = 0
    pending_tokens: int = 0
    pending_cost: float = 0.0

    @classmethod
    def at(cls, kind: str, now: float) -> Window:
        start, end = window_bounds(kind, now)
        return cls(kind, start, end)

    def pending(self) -> bool:
        return bool(self.pending_requests or self.pending_tokens or self.pending_cost)


@dataclass(slots=True)
class Subject:
    """A key or a project, its limits, and its current windows."""

    kind: str
    id: str
    name: str
    limits: Limits
    minute: Window
    day: Window
    month: Window

    def windows(self) -> tuple[Window, Window, Window]:
        return self.minute, self.day, self.month

    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True, slots=True)
class Refusal:
    subject: Subject
    limit: str  # one of LIMIT_NAMES
    value: int | float
    retry_after: int  # whole seconds until the window frees (at least 1)


@dataclass(slots=True)
class Ledger:
    default_key_limits: Limits = NO_LIMITS
    subjects: dict[tuple[str, str], Subject] = field(default_factory=dict)
    # the pending counts of windows that ended before they reached the store
    retired: list[tuple[WindowId, Amounts]] = field(default_factory=list)

    def subject(self, kind: str, subject_id: str, now: float) -> Subject:
        found = self.subjects.get((kind, subject_id))
        if found is None:
            limits = self.default_key_limits if kind == KEY and subject_id != "admin" else NO_LIMITS
            found = self.subjects[(kind, subject_id)] = Subject(
                kind,
                subject_id,
                subject_id,
                limits,
                Window.at("minute", now),
                Window.at("day", now),
                Window.at("month", now),
            )
        return found

    def set_limits(self, kind: str, subject_id: str, name: str, limits: Limits, now: float) -> None:
        subject = self.subject(kind, subject_id, now)
        subject.name = name
        if limits.empty and kind == KEY and subject_id != "admin":
            limits = self.default_key_limits
        subject.limits = limits

    # --- on the request path ----------------------------------------------------------

    def admit(self, key_id: str, project_id: str, now: float) -> Refusal | None:
        """Count a call for the key and its project, or the first limit it meets
        (and count nothing)."""
        key = self.subjects.get((KEY, key_id)) or self.subject(KEY, key_id, now)
        project = self.subjects.get((PROJECT, project_id)) or self.subject(PROJECT, project_id, now)
        for subject in (key, project):
            if now >= subject.minute.end or now >= subject.day.end or now >= subject.month.end:
                self._roll(subject, now)
            limits = subject.limits
            if limits is NO_LIMITS:
                continue
            refusal = self._check(subject, limits, now)
            if refusal is not None:
                return refusal
        for subject in (key, project):
            for window in (subject.minute, subject.day, subject.month):
                window.requests += 1
                window.pending_requests += 1
        return None

    @staticmethod
    def _check(subject: Subject, limits: Limits, now: float) -> Refusal | None:
        # Budgets first: a spent budget is the longer wait, and the one to name.
        if limits.usd_per_month is not None and subject.month.cost >= limits.usd_per_month:
            return _refusal(subject, "usd_per_month", limits.usd_per_month, subject.month, now)
        if limits.usd_per_day is not None and subject.day.cost >= limits.usd_per_day:
            return _refusal(subject, "usd_per_day", limits.usd_per_day, subject.day, now)
        if limits.tokens_per_day is not None and subject.day.tokens >= limits.tokens_per_day:
            return _refusal(subject, "tokens_per_day", limits.tokens_per_day, subject.day, now)
        if limits.rpm is not None and subject.minute.requests >= limits.rpm:
            return _refusal(subject, "rpm", limits.rpm, subject.minute, now)
        return None

    # --- when a call has ended ------------------------------------------------------

    def charge(self, key_id: str, project_id: str, tokens: int, cost: float, now: float) -> None:
        """Add a finished call's tokens and cost to its key and project."""
        if not tokens and not cost:
            return
        for kind, subject_id in ((KEY, key_id), (PROJECT, project_id)):
            subject = self.subject(kind, subject_id, now)
            self._roll(subject, now)
            for window in subject.windows():
                window.tokens += tokens
                window.cost += cost
                window.pending_tokens += tokens
                window.pending_cost += cost

    def _roll(self, subject: Subject, now: float) -> None:
        for name in WINDOWS:
            window: Window = getattr(subject, name)
            if now < window.end:
                continue
            if window.pending():
                self.retired.append(
                    (
                        (subject.kind, subject.id, window.kind, window.start),
                        (window.pending_requests, window.pending_tokens, window.pending_cost),
                    )
                )
            setattr(subject, name, Window.at(name, now))

    # --- to and from the store --------------------------------------------------------

    def take(self) -> list[tuple[WindowId, Amounts]]:
        """What was counted since the last batch, and reset it (`give_back` if the
        batch could not be stored)."""
        out, self.retired = self.retired, []
        for subject in self.subjects.values():
            for window in subject.windows():
                if window.pending():
                    out.append(
                        (
                            (subject.kind, subject.id, window.kind, window.start),
                            (window.pending_requests, window.pending_tokens, window.pending_cost),
                        )
                    )
                    window.pending_requests = window.pending_tokens = 0
                    window.pending_cost = 0.0
        return out

    def give_back(self, batch: Iterable[tuple[WindowId, Amounts]]) -> None:
        for (kind, subject_id, window_kind, start), amounts in batch:
            subject = self.subjects.get((kind, subject_id))
            window = getattr(subject, window_kind) if subject is not None else None
            if window is None or window.start != start:
                self.retired.append(((kind, subject_id, window_kind, start), amounts))
                continue
            window.pending_requests += amounts[0]
            window.pending_tokens += amounts[1]
            window.pending_cost += amounts[2]

    def load(self, totals: Mapping[WindowId, Amounts], now: float) -> None:
        """The store's totals of the current windows (every process's counts) become
        the counts, plus what was counted here and is not in the store yet."""
        for kind, subject_id, _, _ in totals:
            self.subject(kind, subject_id, now)
        for subject in self.subjects.values():
            self._roll(subject, now)
            for window in subject.windows():
                stored = totals.get((subject.kind, subject.id, window.kind, window.start))
                requests, tokens, cost = stored if stored is not None else (0, 0, 0.0)
                window.requests = requests + window.pending_requests
                window.tokens = tokens + window.pending_tokens
                window.cost = cost + window.pending_cost


def _refusal(
    subject: Subject, limit: str, value: int | float, window: Window, now: float
) -> Refusal:
    assert WINDOW_OF[limit] == window.kind
    return Refusal(subject, limit, value, max(1, math.ceil(window.end - now)))
