"""Matrix cells claimed by gateway processes sharing one database (migration 0016).

A process claims pending cells of a run atomically: one write transaction sets them
``running`` with its claimer id (``claimed_by``) and a lease (``lease_until``, a Unix
time), which it renews while it runs them. SQLite's one write transaction serializes
the claimers; on PostgreSQL the cells are picked ``FOR UPDATE SKIP LOCKED`` (a dialect
fragment), so two processes never get the same cell. A cell whose lease passed (its
process died) goes back to pending (``takeovers`` + 1) for a live process to claim.

A run ends once, by whichever process sees it done first (`end_if_done`: the check and
the status change in one transaction, the status still ``running`` as its condition).

A claimer id is ``<host>/<pid>/<random>``: a cell claimed on this machine by a process
that no longer exists is known dead at once (its pid is gone, `claimer_alive`); one
claimed on another machine, once its lease passed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.store.experiments import RUN_COLUMNS, now_iso, run_from_row
from gateway.store.sql import SQLDatabase

logger = logging.getLogger(__name__)

INTERRUPTED_ERROR = orjson.dumps(
    {
        "type": "interrupted",
        "code": "run_interrupted",
        "message": "The gateway stopped before this cell finished.",
    }
).decode()
CLAIM_COLUMNS = (*RUN_COLUMNS, "takeovers")


@dataclass(frozen=True, slots=True)
class RunState:
    """A matrix run in progress, as every process sees it in the database."""

    id: str
    experiment_id: str
    concurrency: int
    shared: bool
    cancel_requested: bool
    pending: int
    running: int
    live: int  # running cells whose lease has not passed
    charge: str | None = None  # the key its calls are charged to (quotas)


def new_claimer() -> str:
    """This process's claimer id (a new one each time: two apps in one process, in
    tests, claim apart)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def claimer_alive(claimer: str | None, lease_until: float | None, now: float) -> bool:
    """Whether the process that claimed a cell may still run it: its lease has not
    passed and, when it is on this machine, its process exists."""
    if claimer is None or lease_until is None or lease_until < now:
        return False
    host, _, rest = claimer.partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's: only the lease tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists (another user's)
    return True


class CellClaims:
    """The claim, lease and end SQL of matrix runs on a database."""

    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        postgresql = db.dialect == "postgresql"
        # Which pending cell first: the order they were written in.
        self._order = "started_at, id" if postgresql else "rowid"
        # PostgreSQL: concurrent claimers skip the rows another holds, rather than wait
        # for it and then find them taken. SQLite has one writer at a time anyway.
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if postgresql else ""
        # PostgreSQL: an end's check holds the run's row until it commits (several
        # transactions run at once there; SQLite's one writer serializes them anyway).
        self._lock = " FOR UPDATE" if postgresql else ""

    async def prepare(self, run_id: str, shared: bool, charge: str | None = None) -> None:
        """A run (new or resumed) about to start: whether other processes may run its
        cells, the key they are charged to, and no cancel left from before."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE experiment_matrix_runs SET shared = ?, charged_key = ?,"
                " cancel_requested = 0 WHERE id = ?",
                (int(shared), charge, run_id),
            )

    async def claim(
        self, run_id: str, claimer: str, limit: int, lease_s: float
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` pending cells of the run, now ``running`` and this claimer's
        (none once the run ended or is being cancelled), in the order they were written."""
        if limit <= 0:
            return []
        async with self.db.transaction() as conn:
            claimed = list(
                await conn.execute_fetchall(
                    "UPDATE experiment_runs SET status = 'running', claimed_by = ?,"
                    " lease_until = ?, started_at = ? WHERE id IN (SELECT id FROM"
                    " experiment_runs WHERE matrix_run_id = ? AND status = 'pending'"
                    " AND EXISTS (SELECT 1 FROM experiment_matrix_runs WHERE id = ?"
                    " AND status = 'running' AND cancel_requested = 0)"
                    f" ORDER BY {self._order} LIMIT ?{self._skip_locked}) RETURNING id",
                    (claimer, time.time() + lease_s, now_iso(), run_id, run_id, limit),
                )
            )
            if not claimed:
                return []
            ids = [row[0] for row in claimed]
            rows = await conn.execute_fetchall(
                f"SELECT {', '.join(CLAIM_COLUMNS)} FROM experiment_runs WHERE id IN"
                f" ({', '.join('?' for _ in ids)}) ORDER BY {self._order}",
                ids,
            )
        cells = []
        for row in rows:
            cell = run_from_row(row)
            cell["takeovers"] = int(row["takeovers"] or 0)
            cell["claimed_by"] = claimer  # its end is written only by this claimer
            cells.append(cell)
        return cells

    async def release(self, cell_ids: Sequence[str]) -> None:
        """Claimed cells that never began: pending again, for anyone to claim."""
        async with self.db.transaction() as conn:
            await conn.executemany(
                "UPDATE experiment_runs SET status = 'pending', claimed_by = NULL,"
                " lease_until = NULL WHERE id = ? AND status = 'running'",
                [(cell_id,) for cell_id in cell_ids],
            )

    async def renew(self, claimer: str, lease_s: float) -> int:
        """This claimer's running cells: their leases pushed ``lease_s`` from now."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE experiment_runs SET lease_until = ? WHERE claimed_by = ?"
                " AND status = 'running'",
                (time.time() + lease_s, claimer),
            )
            return int(cursor.rowcount)

    async def running_runs(self) -> list[RunState]:
        """Every matrix run in progress, with its pending, running and live cells."""
        rows = await self.db.fetch(
            "SELECT r.id, r.experiment_id, r.concurrency, r.shared, r.cancel_requested,"
            f" {_count('pending')}, {_count('running')},"
            " COALESCE(SUM(CASE WHEN c.status = 'running' AND c.lease_until >= ? THEN 1"
            " ELSE 0 END), 0), r.charged_key"
            " FROM experiment_matrix_runs r LEFT JOIN experiment_runs c"
            " ON c.matrix_run_id = r.id AND c.status IN ('pending', 'running')"
            " WHERE r.status = 'running' GROUP BY r.id, r.experiment_id, r.concurrency,"
            " r.shared, r.cancel_requested, r.charged_key",
            (time.time(),),
        )
        return [
            RunState(
                id=row[0],
                experiment_id=row[1],
                concurrency=int(row[2]),
                shared=bool(row[3]),
                cancel_requested=bool(row[4]),
                pending=int(row[5]),
                running=int(row[6]),
                live=int(row[7]),
                charge=row[8],
            )
            for row in rows
        ]

    async def reap(self) -> int:
        """Running cells of shared runs whose process died (its lease passed, or its
        pid is gone from this machine): back to pending for a live process to claim
        (``takeovers`` + 1). A read, and a write transaction only when some are dead."""
        now = time.time()
        rows = await self.db.fetch(
            "SELECT id, claimed_by, lease_until FROM experiment_runs WHERE status = 'running'"
            " AND matrix_run_id IN (SELECT id FROM experiment_matrix_runs"
            " WHERE status = 'running' AND shared = 1)"
        )
        dead = [row[0] for row in rows if not claimer_alive(row[1], row[2], now)]
        if not dead:
            return 0
        async with self.db.transaction() as conn:
            # Still running and still the dead claimer's (checked in the transaction).
            await conn.executemany(
                "UPDATE experiment_runs SET status = 'pending', claimed_by = NULL,"
                " lease_until = NULL, takeovers = takeovers + 1 WHERE id = ?"
                " AND status = 'running' AND (claimed_by = ? OR claimed_by IS NULL)",
                [(row[0], row[1]) for row in rows if row[0] in set(dead)],
            )
        logger.warning("%d matrix cell(s) of a stopped process go back to pending", len(dead))
        return len(dead)

    async def request_cancel(self, run_id: str) -> bool:
        """Store the run's cancel (every process running its cells stops them)."""
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE experiment_matrix_runs SET cancel_requested = 1 WHERE id = ?"
                " AND status = 'running'",
                (run_id,),
            )
            return bool(cursor.rowcount)

    async def end_if_done(self, run_id: str, claimer: str, closing: bool = False) -> str | None:
        """End the run if nothing is left of it: no cell running and none pending (or a
        cancel asked). ``closing``: this process stops; unless another live process
        runs cells of the run (then the cells it interrupted go back to pending for
        that one), it ends ``interrupted`` (its pending cells left for a resume), as
        one gateway's shutdown always did. The check and the change are
        one transaction, on the condition that the run is still running: it ends once.
        Returns the status it ended with, or None when it did not end it."""
        now = time.time()
        async with self.db.transaction() as conn:
            runs = list(
                await conn.execute_fetchall(
                    "SELECT cancel_requested FROM experiment_matrix_runs"
                    f" WHERE id = ? AND status = 'running'{self._lock}",
                    (run_id,),
                )
            )
            if not runs:
                return None  # ended already (by another process), or never running
            cancel = bool(runs[0][0])
            counts: dict[str, int] = {}
            for status, count in await conn.execute_fetchall(
                "SELECT status, COUNT(*) FROM experiment_runs WHERE matrix_run_id = ?"
                " GROUP BY status",
                (run_id,),
            ):
                counts[status] = int(count)
            pending, running = counts.get("pending", 0), counts.get("running", 0)
            if closing and (pending or running):
                holders = await conn.execute_fetchall(
                    "SELECT claimed_by, lease_until FROM experiment_runs"
                    " WHERE matrix_run_id = ? AND status = 'running'",
                    (run_id,),
                )
                if any(h[0] != claimer and claimer_alive(h[0], h[1], now) for h in holders):
                    # Another process carries on with it: the cells this one stopped
                    # go back to pending for it (as a dead process's would).
                    await conn.execute(
                        "UPDATE experiment_runs SET status = 'pending', error = NULL,"
                        " ended_at = NULL, claimed_by = NULL, lease_until = NULL,"
                        " takeovers = takeovers + 1 WHERE matrix_run_id = ?"
                        " AND claimed_by = ? AND status = 'interrupted'",
                        (run_id, claimer),
                    )
                    return None
                status = "interrupted"
            elif running or (pending and not cancel):
                return None
            elif cancel:
                status = "cancelled"
            else:
                status = "interrupted" if counts.get("interrupted") else "completed"
            if running:  # closing, and no live process holds these: as a restart would
                await conn.execute(
                    "UPDATE experiment_runs SET status = 'interrupted', error = ?,"
                    " ended_at = ? WHERE matrix_run_id = ? AND status = 'running'",
                    (INTERRUPTED_ERROR, now_iso(), run_id),
                )
            ended = await conn.execute(
                "UPDATE experiment_matrix_runs SET status = ?, updated_at = ?"
                " WHERE id = ? AND status = 'running'",
                (status, now_iso(), run_id),
            )
            if ended.rowcount != 1:
                return None  # another process ended it in between
        return status

    async def recover(self) -> int:
        """At startup. Cells left running by a dead process (`claimer_alive`; no lease:
        written before claims existed): back to pending when a live process runs
        cells of their (shared) run, for it to claim; else ``interrupted``. A run that
        no live process carries ends ``interrupted`` (a resume finishes it), as after
        any restart of one gateway. Cells of live processes are left alone. Returns
        the cells touched."""
        now = time.time()
        stamp = now_iso()
        async with self.db.transaction() as conn:
            cells = list(
                await conn.execute_fetchall(
                    "SELECT c.id, c.matrix_run_id, c.claimed_by, c.lease_until, r.shared"
                    " FROM experiment_runs c JOIN experiment_matrix_runs r"
                    " ON r.id = c.matrix_run_id WHERE c.status = 'running'"
                )
            )
            alive = {row[0] for row in cells if claimer_alive(row[2], row[3], now)}
            carried = {row[1] for row in cells if row[0] in alive}
            dead = [row for row in cells if row[0] not in alive]
            taken = [(row[0],) for row in dead if row[1] in carried and row[4]]
            stopped = [
                (INTERRUPTED_ERROR, stamp, row[0])
                for row in dead
                if not (row[1] in carried and row[4])
            ]
            await conn.executemany(
                "UPDATE experiment_runs SET status = 'pending', claimed_by = NULL,"
                " lease_until = NULL, takeovers = takeovers + 1 WHERE id = ?",
                taken,
            )
            await conn.executemany(
                "UPDATE experiment_runs SET status = 'interrupted', error = ?, ended_at = ?"
                " WHERE id = ?",
                stopped,
            )
            running = await conn.execute_fetchall(
                "SELECT id FROM experiment_matrix_runs WHERE status = 'running'"
            )
            await conn.executemany(
                "UPDATE experiment_matrix_runs SET status = 'interrupted', updated_at = ?"
                " WHERE id = ?",
                [(stamp, row[0]) for row in running if row[0] not in carried],
            )
        if taken:
            logger.warning("%d matrix cell(s) of a stopped process go back to pending", len(taken))
        return len(dead)


def _count(status: str) -> str:
    return f"COALESCE(SUM(CASE WHEN c.status = '{status}' THEN 1 ELSE 0 END), 0)"
