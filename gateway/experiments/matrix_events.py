"""What a matrix run tells the world as it goes: live progress to the progress stream's
listeners (`ProgressHub`), the ETA from the cells' pace (`RunClock`), Prometheus
metrics per cell, and the ``experiment.run.completed`` event (events table and
``GET /events``) when a run ends (`MatrixObserver`).

Kept apart from `gateway.experiments.matrix` (the engine) so the engine only says
*that* something happened; none of this is on the proxy's request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from gateway.experiments.matrix_options import seconds_between
from gateway.metrics import Metrics
from gateway.store.events import EventRecord, EventStore
from gateway.store.experiments import now_iso

logger = logging.getLogger(__name__)

RUN_COMPLETED_EVENT = "experiment.run.completed"
Publish = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class RunClock:
    """The pace of one run in this process: cells ended since it (re)started, and when.
    A resume starts a new clock, so the ETA follows the present pace, not a past one."""

    started: float = field(default_factory=time.monotonic)
    ended: int = 0

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def eta_s(self, remaining: int) -> float | None:
        """Seconds until the ``remaining`` cells end at the pace so far; None before
        the first cell ends (no pace yet), 0 when nothing remains."""
        if remaining <= 0:
            return 0.0
        if self.ended == 0:
            return None
        return round(self.elapsed_s() / self.ended * remaining, 3)


def paced(
    progress: dict[str, Any],
    run: Mapping[str, Any],
    clock: RunClock | None,
    waiting: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A run's progress with its elapsed time and ETA: from ``clock`` when this process
    runs it; from the run's start when other processes do; from its rows' times once it
    ended. ``waiting``: the limit its cells wait on, while they do."""
    remaining = progress["pending"] + progress["running"]
    if waiting is not None and run["status"] == "running":
        progress["waiting_on_limit"] = dict(waiting)
    if clock is not None:
        progress["elapsed_s"] = round(clock.elapsed_s(), 3)
        progress["eta_s"] = clock.eta_s(remaining)
    elif run["status"] == "running":
        elapsed = seconds_between(run["created_at"], now_iso()) or 0.0
        ended = progress["total"] - remaining
        progress["elapsed_s"] = elapsed
        progress["eta_s"] = round(elapsed / ended * remaining, 3) if ended else None
    else:
        progress["elapsed_s"] = seconds_between(run["created_at"], run["updated_at"])
        progress["eta_s"] = 0.0 if remaining == 0 else None
    return progress


class ProgressHub:
    """Per experiment, the progress stream's listeners, each woken (a queued flag: is
    it the run's end?) when a cell ends. A listener's queue holds one pending wake-up at
    most: a slow listener reads the newest progress, never a backlog."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[bool]]] = {}

    @asynccontextmanager
    async def listen(self, experiment_id: str) -> AsyncIterator[asyncio.Queue[bool]]:
        queue: asyncio.Queue[bool] = asyncio.Queue(maxsize=1)
        self._listeners.setdefault(experiment_id, set()).add(queue)
        try:
            yield queue
        finally:
            listeners = self._listeners.get(experiment_id, set())
            listeners.discard(queue)
            if not listeners:
                self._listeners.pop(experiment_id, None)

    def notify(self, experiment_id: str, final: bool = False) -> None:
        for queue in self._listeners.get(experiment_id, ()):
            if queue.full():
                if not final:
                    continue  # a wake-up is pending already
                queue.get_nowait()  # the end must not be lost behind a plain wake-up
            queue.put_nowait(final)

    def listeners(self, experiment_id: str) -> int:
        return len(self._listeners.get(experiment_id, ()))


@dataclass
class MatrixObserver:
    """Metrics and events of matrix runs. Attached by the app (`attach`); a service
    without one (unit tests building it alone) only runs cells."""

    metrics: Metrics | None = None
    events: EventStore | None = None
    publish: Publish | None = None

    def cell_ended(self, cell: Mapping[str, Any], duration_s: float) -> None:
        if self.metrics is None:
            return
        self.metrics.observe_cell(
            str(cell["experiment_id"]),
            str(cell["variant_id"]),
            str(cell["status"]),
            duration_s,
            int(cell.get("retries") or 0),
        )

    def waiting_on_limit(self, run_id: str, limit: str, seconds: float) -> None:
        """A cell met a key's or project's limit: the run pauses (counted, and told to
        ``/events`` listeners as ``experiment.run.waiting``)."""
        if self.metrics is not None:
            self.metrics.matrix_quota_waits.inc()
        if self.publish is not None:
            self.publish(
                "experiment.run.waiting",
                {"run_id": run_id, "limit": limit, "retry_after_s": seconds},
            )

    async def run_ended(
        self, experiment: Mapping[str, Any], run: Mapping[str, Any], progress: dict[str, Any]
    ) -> None:
        """``experiment.run.completed``: stored, then sent to ``/events`` listeners.
        Sent for every end (completed, cancelled, interrupted); ``status`` says which."""
        event = EventRecord(
            type=RUN_COMPLETED_EVENT,
            at=now_iso(),
            project_id=experiment.get("project_id"),
            subject_id=str(experiment["id"]),
            related_ids=[str(run["id"])],
            payload={"experiment_id": experiment["id"], **progress},
        )
        if self.events is not None:
            try:
                await self.events.append(event)
            except Exception:  # the cells are stored; an event log failure must not hide them
                logger.exception("could not store the %s event", RUN_COMPLETED_EVENT)
        if self.publish is not None:
            self.publish(RUN_COMPLETED_EVENT, event.as_dict())
