"""`spanlab serve`'s background process (gateway/background/): a real gateway process
and the scripted loopback upstream. A matrix run's cells run in a child process of the
gateway at the kernel's idle CPU priority, never in the gateway's own process; their
metrics and their scoring progress show on the gateway; a background process killed
mid-run is started again and the run completes, each cell once but those it had in
flight; ``background_process = false`` keeps the cells in the gateway."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_matrix_e2e import build, post, system_and_user, wait_done
from tests.e2e.test_matrix_workers_e2e import claims
from tests.experiments_upstream import ScriptedUpstream, config_toml, serve_in_thread
from tests.postgres import run_sync
from tests.serve import GatewayProcess
from tests.upstream.server import Reply

pytestmark = pytest.mark.e2e


class Slow(ScriptedUpstream):
    """Each answer after ``wait`` seconds (a run long enough to be killed in)."""

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.wait = wait

    def __call__(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        return dataclasses.replace(super().__call__(method, target, headers, raw), wait=self.wait)


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def cells_metric(text: str) -> float:
    """The sum of ``spanlab_experiment_cells_total`` over its series."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("spanlab_experiment_cells_total")
    )


def test_cells_run_in_an_idle_priority_child_and_show_on_the_gateway(tmp_path: Path) -> None:
    upstream = ScriptedUpstream()
    with (
        serve_in_thread(upstream) as url,
        GatewayProcess(tmp_path, config_toml(url), log_level="info") as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        assert served.proc is not None
        gateway = served.proc.pid
        eid = build(http)
        run = post(http, f"/experiments/{eid}/run", {"concurrency": 4}, 202)
        progress = wait_done(http, eid)
        assert (progress["done"], progress["failed"], progress["total"]) == (30, 0, 30)
        pids = {int(pid) for _, _, pid in claims(served.db, run["run_id"]) if pid}
        assert len(pids) == 1 and gateway not in pids, pids
        background = pids.pop()
        assert parent_of(background) == gateway
        assert os.sched_getscheduler(background) == os.SCHED_IDLE
        # Its spans are the gateway's spans; its metrics on the gateway's /metrics.
        assert len(served.wait_spans(30, label="experiment")) == 30
        deadline = time.monotonic() + 10
        while cells_metric(http.get("/metrics").text) < 30:
            assert time.monotonic() < deadline, http.get("/metrics").text
            time.sleep(0.1)
        assert cells_metric(http.get("/metrics").text) == 30
    assert "background process started" in served.log()


def test_a_killed_background_process_is_replaced_and_the_run_completes(tmp_path: Path) -> None:
    upstream = Slow(0.05)
    with (
        serve_in_thread(upstream) as url,
        GatewayProcess(tmp_path, config_toml(url), log_level="info") as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        eid = build(http)
        run = post(http, f"/experiments/{eid}/run", {"repetitions": 2, "concurrency": 2}, 202)
        deadline = time.monotonic() + 30
        while True:  # the background process is running cells
            running = [c for c in claims(served.db, run["run_id"]) if c[1] == "completed"]
            if len(running) >= 5:
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
        background = int(running[0][2] or 0)
        os.kill(background, signal.SIGKILL)
        progress = wait_done(http, eid, timeout=60)
        assert (progress["done"], progress["failed"], progress["total"]) == (60, 0, 60)
        ran = Counter(system_and_user(r["body"]) for r in upstream.requests)
        assert set(ran.values()) <= {2, 3, 4}  # 2 repetitions; again: those in flight
        assert sum(ran.values()) - 60 <= 2  # at most the concurrency ran twice
        pids = {pid for _, _, pid in claims(served.db, run["run_id"])}
        assert str(background) in pids and len(pids) >= 2
    assert "the background process (pid" in served.log()


def test_background_process_off_keeps_cells_in_the_gateway(tmp_path: Path) -> None:
    upstream = ScriptedUpstream()
    with serve_in_thread(upstream) as url:
        config = config_toml(url, background_process=False)
        with (
            GatewayProcess(tmp_path, config) as served,
            httpx.Client(base_url=served.url, timeout=30) as http,
        ):
            assert served.proc is not None
            eid = build(http)
            run = post(http, f"/experiments/{eid}/run", {}, 202)
            assert wait_done(http, eid)["done"] == 30
            pids = {pid for _, _, pid in claims(served.db, run["run_id"])}
            assert pids == {str(served.proc.pid)}


async def _claimers(url: str, run_id: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT claimed_by FROM experiment_runs WHERE matrix_run_id = $1", run_id
        )
        return {str(row[0]).split("/")[1] for row in rows if row[0]}
    finally:
        await conn.close()


def test_on_postgresql_the_background_process_runs_the_cells(tmp_path: Path, pg_url: str) -> None:
    upstream = ScriptedUpstream()
    with (
        serve_in_thread(upstream) as url,
        GatewayProcess(tmp_path, config_toml(url), db=pg_url) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        assert served.proc is not None
        eid = build(http)
        run = post(http, f"/experiments/{eid}/run", {"concurrency": 4}, 202)
        progress = wait_done(http, eid)
        assert (progress["done"], progress["failed"], progress["total"]) == (30, 0, 30)
        pids = run_sync(lambda: _claimers(pg_url, run["run_id"]))
        assert len(pids) == 1 and str(served.proc.pid) not in pids, pids
        assert parent_of(int(pids.pop())) == served.proc.pid
        assert len(served.wait_spans(30, label="experiment")) == 30
