"""A matrix run shared by several gateway processes on one database.

Every process runs `SharedRuns`' loop: each ``tick_s`` (at most 1 s, and a third of
the lease) it renews the leases of the cells it runs (every third of the lease), puts
back to pending the cells of processes that died (`CellClaims.reap`), and hands the
runs in progress to the engine (`MatrixService.tick`: join a run with pending cells,
stop the cells of a run being cancelled, end a run nobody is left to end). A signal
from a peer (through the app's relay: "a run started", "cancel it") wakes it at once;
the poll is the fallback when a signal is lost, or when no relay joins the processes.

Signals are dicts ``{"what": ..., "experiment_id": ..., "run_id": ...}`` under the
one name `MATRIX_SIGNAL`; the engine never imports the relay (`Signal` is the
narrow callback the app wires).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from gateway.store.cell_claims import CellClaims, RunState, new_claimer

logger = logging.getLogger(__name__)
T = TypeVar("T")

MATRIX_SIGNAL = "matrix"
# What a signal says: a run started (peers join it), a run's cancel was stored, a
# cell ended (peers' progress streams read again), a run ended (their streams end), a
# run's cells wait on a key's or project's limit, or no longer do (its progress says so).
RUN_STARTED = "run"
RUN_CANCEL = "cancel"
CELL_ENDED = "cell"
RUN_ENDED = "end"
RUN_WAITING = "waiting"
POLL_S = 1.0
STALE_WAIT_S = 5.0
Signal = Callable[[str, dict[str, Any]], None]
Tick = Callable[[list[RunState]], Awaitable[None]]


class SharedRuns:
    """This process's claimer id, its lease renewals and the poll of runs in progress."""

    def __init__(self, claims: CellClaims, lease_s: float) -> None:
        self.claims = claims
        self.claimer = new_claimer()
        self.lease_s = lease_s
        self.tick_s = min(POLL_S, lease_s / 3)
        self.signal: Signal | None = None
        self.holding: Callable[[], bool] = lambda: False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self._waits: dict[str, dict[str, Any]] = {}  # run id: what peers' cells wait on

    def send(self, what: str, experiment_id: str, run_id: str, **extra: Any) -> None:
        """Tell the peers (if any relay joins the processes)."""
        if self.signal is not None:
            data = {"what": what, "experiment_id": experiment_id, "run_id": run_id, **extra}
            self.signal(MATRIX_SIGNAL, data)

    def heard_waiting(self, data: Mapping[str, Any]) -> None:
        """A peer's cells of a run wait on a limit (``waiting``: {"limit", "until"}), or
        no longer do (None; or the run ended)."""
        waiting, run_id = data.get("waiting"), str(data.get("run_id"))
        if isinstance(waiting, dict) and data.get("what") == RUN_WAITING:
            self._waits[run_id] = dict(waiting)
        else:
            self._waits.pop(run_id, None)

    def peer_waiting(self, run_id: str) -> dict[str, Any] | None:
        """What a peer said the run's cells wait on, unless that wait is long over (its
        "no longer" was lost)."""
        waiting = self._waits.get(run_id)
        if waiting is None or float(waiting.get("until") or 0) < time.time() - STALE_WAIT_S:
            return None
        return waiting

    def wake(self) -> None:
        """Poll now (a peer's signal)."""
        self._wake.set()

    def start(self, tick: Tick) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(tick))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def renew(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._renewed >= self.lease_s / 3:
            self._renewed = now
            await self.claims.renew(self.claimer, self.lease_s)

    async def _loop(self, tick: Tick) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick_s)
            self._wake.clear()
            try:
                if self.holding():
                    await self.renew()
                runs = await self.claims.running_runs()
                if runs and await self.claims.reap():
                    runs = await self.claims.running_runs()
                if runs:
                    await tick(runs)
            except Exception:  # the next tick tries again; a run must not be left
                logger.exception("the poll of shared matrix runs failed")


async def unstoppable(work: Awaitable[T]) -> T:
    """Run ``work`` (a database write that must happen) to its end even when the caller
    is cancelled meanwhile; the cancellation is then passed on (the task is cancelled
    again, at its next await). anyio's shielded scope does not hold off a native
    ``Task.cancel()`` (a cancel arriving during a cell's start left it ``running`` and
    its run stuck), which is what `cancel` and shutdown send."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    result = task.result()
    current = asyncio.current_task()
    if cancelled and current is not None:
        current.cancel()
    return result
