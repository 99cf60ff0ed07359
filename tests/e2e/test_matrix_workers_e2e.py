"""A matrix run shared by the workers of ``spanlab serve --workers 2``: real worker
processes on one SQLite file, the scripted loopback upstream counting its calls per
cell. Both workers run cells, none twice; the worker that got the POST is killed
(SIGKILL) mid-run and the run completes through the other, running again only the
cells the dead one had in flight; progress streams end with ``final: true``."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.test_matrix_e2e import post, system_and_user, wait_done
from tests.e2e.test_workers_e2e import started, workers_of
from tests.experiments_upstream import ScriptedUpstream, config_toml, serve_in_thread
from tests.serve import EventsReader, GatewayProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VARIANTS = 3
INPUTS = 20  # 60 cells


def build(http: httpx.Client) -> str:
    eid: str = post(http, "/experiments", {"name": "shared"}, 201)["id"]
    for n in range(VARIANTS):
        config = {"model": "gpt-4o-mini", "stream": True}
        body = {"name": f"v{n}", "systemPrompt": f"System prompt {n}.", "config": config}
        post(http, f"/experiments/{eid}/variants", body, 201)
    inputs = [{"key": f"case_{i:02d}", "content": f"question number {i}"} for i in range(INPUTS)]
    post(http, f"/experiments/{eid}/inputs", {"inputs": inputs}, 201)
    return eid


def claims(db: Path, run_id: str) -> list[tuple[str, str, str | None]]:
    """(cell id, status, claiming pid) of the run's cells, in the order written."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, status, claimed_by FROM experiment_runs WHERE matrix_run_id = ?"
            " ORDER BY rowid",
            (run_id,),
        ).fetchall()
    return [(r[0], r[1], r[2].split("/")[1] if r[2] else None) for r in rows]


class ProgressReader(EventsReader):
    """A progress stream read in a thread; one its worker's death cuts just ends."""

    def _read(self, url: str) -> None:
        try:
            super()._read(url)
        except httpx.TransportError:
            self.broke = True

    broke = False


def run_ended_events(db: Path, eid: str, timeout: float = 10.0) -> int:
    """The ``experiment.run.completed`` events of the experiment, once there is one
    (and a moment more: a second one would show)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db) as conn:
            [[count]] = conn.execute(
                "SELECT COUNT(*) FROM events WHERE type = 'experiment.run.completed'"
                " AND subject_id = ?",
                (eid,),
            ).fetchall()
        if count or time.monotonic() > deadline:
            time.sleep(0.5)
            with sqlite3.connect(db) as conn:
                [[count]] = conn.execute(
                    "SELECT COUNT(*) FROM events WHERE type = 'experiment.run.completed'"
                    " AND subject_id = ?",
                    (eid,),
                ).fetchall()
            return int(count)
        time.sleep(0.05)


def final_progress(reader: EventsReader, timeout: float = 30.0) -> dict[str, object] | None:
    """The last progress event of a stream once it ended (None: it broke first)."""
    reader.thread.join(timeout)
    data = [orjson.loads(line[6:]) for line in reader.lines if line.startswith("data: ")]
    return data[-1] if data else None


def test_two_workers_share_a_run_and_finish_it_when_the_one_that_started_it_dies(
    tmp_path: Path,
) -> None:
    upstream = ScriptedUpstream(chunk_delay=0.03)  # streamed cells: ~0.3 s each
    with serve_in_thread(upstream) as url:
        config = config_toml(url, workers=2, matrix_lease_s=3.0, events_heartbeat_s=1.0)
        gateway = GatewayProcess(tmp_path, config, log_level="info")
        with gateway, httpx.Client(base_url=gateway.url, timeout=30) as http:
            started(gateway, 2)
            workers = workers_of(gateway, 2)
            eid = build(http)
            run = post(http, f"/experiments/{eid}/run", {"concurrency": 4}, 202)
            assert run["cells"] == 60
            # Streams on new connections: the kernel hands them to either worker.
            streams = [
                ProgressReader(f"{gateway.url}/experiments/{eid}/progress?stream=true")
                for _ in range(3)
            ]
            # Both workers run cells (the other joined at the run's signal).
            deadline = time.monotonic() + 20
            while len({pid for _, _, pid in claims(gateway.db, run["run_id"]) if pid}) < 2:
                assert time.monotonic() < deadline, claims(gateway.db, run["run_id"])
                time.sleep(0.05)
            while sum(s == "completed" for _, s, _ in claims(gateway.db, run["run_id"])) < 12:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            # No cell twice while both live.
            calls = Counter(system_and_user(r["body"]) for r in upstream.requests)
            assert set(calls.values()) == {1}, calls
            # The worker that got the POST claimed the first cells written: kill it.
            starter = int(claims(gateway.db, run["run_id"])[0][2] or 0)
            assert starter in workers
            os.kill(starter, signal.SIGKILL)
            killed_at = claims(gateway.db, run["run_id"])
            in_flight = {cell for cell, status, pid in killed_at if status == "running"
                         and pid == str(starter)}  # fmt: skip
            done_before = sum(status == "completed" for _, status, _ in killed_at)
            assert done_before < 60, "the run ended before the kill: make the cells slower"
            after_kill = ProgressReader(f"{gateway.url}/experiments/{eid}/progress?stream=true")
            progress = wait_done(http, eid, timeout=60)
            assert (progress["status"], progress["done"], progress["total"]) == (
                "completed",
                60,
                60,
            ), progress
            # Every cell ran; again only those the dead worker had in flight.
            calls = Counter(system_and_user(r["body"]) for r in upstream.requests)
            assert len(calls) == 60
            twice = [cell for cell, n in calls.items() if n > 1]
            assert max(calls.values()) <= 2 and len(twice) <= len(in_flight), (twice, in_flight)
            with sqlite3.connect(gateway.db) as conn:
                taken = conn.execute(
                    "SELECT id FROM experiment_runs WHERE matrix_run_id = ? AND retries > 0",
                    (run["run_id"],),
                ).fetchall()
            assert {row[0] for row in taken} <= in_flight
            # The end is announced (stored) just after the run's status changes.
            assert run_ended_events(gateway.db, eid) == 1  # ended once
            # The streams: the one opened after the kill ends with the run; the one
            # opened before either ends so too or broke with its worker.
            last = final_progress(after_kill)
            assert last is not None and last["final"] is True and last["done"] == 60
            for reader in streams:
                last = final_progress(reader)
                assert last is not None
                assert (last["final"] is True and last["done"] == 60) or reader.broke
            assert not after_kill.broke
            print(
                f"\nkilled worker {starter} with {len(in_flight)} cells in flight,"
                f" {done_before} of 60 done; {len(twice)} cells called twice;"
                f" {sum(not r.broke for r in streams)} of 3 streams opened before it ended final"
            )
            assert "exited with status -9; starting it again" in gateway.log()
