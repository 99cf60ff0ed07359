"""A matrix run shared by two gateway processes on one SQLite file (in process: two
apps made by `create_app` on the same database, each with its own fake upstream that
counts the calls per cell). Cells are claimed, never run twice; a process that dies
leaves its leases, and the other runs its cells once they pass; a restarted app's
recover() leaves the live one's cells alone; a cancel sent to either stops both."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.store.cell_claims import claimer_alive, new_claimer
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import sse_events
from tests.fakes import FakeUpstream
from tests.sql_helpers import make_gateway_on_each_backend, sql_db
from tests.test_matrix import add_inputs, add_variant, answer, matrix_experiment, start

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL

LEASE_S = 1.0  # short, so that a dead app's cells are taken over quickly


class CellUpstream:
    """A fake upstream answering after ``delay`` (held calls: once ``released``),
    counting its calls per cell: (system prompt, user message) names one cell here."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.calls: Counter[tuple[str, str]] = Counter()
        self.hold = False
        self.held = 0
        self.released = asyncio.Event()  # set: held calls answer (at the test's end)
        self.fake = FakeUpstream(handler=self.handler)

    async def body(self, request: httpx.Request) -> Any:
        if self.hold:
            self.held += 1
            await self.released.wait()  # the call hangs until then
        await asyncio.sleep(self.delay)
        yield answer(request).content

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        messages = {m["role"]: m["content"] for m in body["messages"]}
        self.calls[(messages.get("system", ""), messages["user"])] += 1
        return httpx.Response(
            200, headers={"content-type": "application/json"}, content=self.body(request)
        )


async def two_apps(
    make_gateway: GatewayFactory, delay: float = 0.05
) -> tuple[Gateway, CellUpstream, Gateway, CellUpstream]:
    first, second = CellUpstream(delay), CellUpstream(delay)
    a = await make_gateway(first.fake, matrix_lease_s=LEASE_S)
    b = await make_gateway(second.fake, matrix_lease_s=LEASE_S)
    return a, first, b, second


async def experiment(gw: Gateway, variants: int, inputs: int) -> str:
    exp = await matrix_experiment(gw)
    for n in range(variants):
        await add_variant(
            gw, exp["id"], name=f"v{n}", systemPrompt=f"variant {n}", config={"model": "gpt-4o"}
        )
    await add_inputs(gw, exp["id"], [f"question {i}" for i in range(inputs)])
    return str(exp["id"])


async def wait_ended(gw: Gateway, experiment_id: str, limit_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        progress: dict[str, Any] = (
            await gw.client.get(f"/experiments/{experiment_id}/progress")
        ).json()
        if progress["status"] != "running":
            return progress
        assert time.monotonic() < deadline, progress
        await asyncio.sleep(0.05)


async def db_rows(gw: Gateway, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows read from the gateway's own database (SQLite or PostgreSQL)."""
    return [tuple(r) for r in await sql_db(gw.state.stores.database).fetch(sql, params)]


async def ended_events(gw: Gateway, experiment_id: str) -> int:
    """The run-ended events stored, once there is one (it is stored just after the
    run's status changes) and a moment more (a second one would show)."""
    sql = "SELECT COUNT(*) FROM events WHERE type = 'experiment.run.completed' AND subject_id = ?"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (await db_rows(gw, sql, experiment_id))[0][0]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return int((await db_rows(gw, sql, experiment_id))[0][0])


async def test_two_processes_share_a_run_and_no_cell_runs_twice(
    make_gateway: GatewayFactory,
) -> None:
    a, first, b, second = await two_apps(make_gateway, delay=0.1)
    eid = await experiment(a, variants=2, inputs=20)  # 40 cells, ~2 s at 2 a time alone
    started = await start(a, eid, concurrency=2)
    assert started["cells"] == 40
    # B's progress stream, though B did not get the POST: it ends with the run.
    stream = asyncio.create_task(b.client.get(f"/experiments/{eid}/progress?stream=true"))
    progress = await wait_ended(a, eid)
    assert (progress["status"], progress["done"], progress["total"]) == ("completed", 40, 40)
    both = first.calls + second.calls
    assert len(both) == 40 and set(both.values()) == {1}, both  # every cell exactly once
    assert first.calls and second.calls, (len(first.calls), len(second.calls))  # B joined
    claimers = await db_rows(
        a, "SELECT COUNT(DISTINCT claimed_by) FROM experiment_runs WHERE matrix_run_id = ?",
        started["run_id"],
    )  # fmt: skip
    assert claimers == [(2,)]
    assert await ended_events(a, eid) == 1  # the run ended once, in one of them
    events = [e for _, e in sse_events((await asyncio.wait_for(stream, 10)).text)]
    assert events[-1]["final"] is True and events[-1]["done"] == 40
    assert [e["final"] for e in events].count(True) == 1


async def test_a_dead_process_cells_are_run_by_the_other_once_its_lease_passes(
    make_gateway: GatewayFactory,
) -> None:
    a, first, b, second = await two_apps(make_gateway, delay=0.05)
    eid = await experiment(a, variants=1, inputs=12)
    first.hold = True  # A's calls never come back: A "dies" with them in flight
    started = await start(a, eid, concurrency=3)
    deadline = time.monotonic() + 10
    while first.held < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    # A dies: no more polls, no lease renewals, no cleanup (its cells stay claimed).
    await a.state.experiments.matrix.shared.close()
    claimed_by_a = await db_rows(
        a,
        "SELECT id FROM experiment_runs WHERE matrix_run_id = ? AND status = 'running'"
        " AND claimed_by = ?",
        started["run_id"],
        a.state.experiments.matrix.shared.claimer,
    )
    assert len(claimed_by_a) == 3
    progress = await wait_ended(b, eid)
    assert (progress["status"], progress["done"], progress["total"]) == ("completed", 12, 12)
    # B ran every cell once: the 9 A never claimed and the 3 A died with.
    assert len(second.calls) == 12 and set(second.calls.values()) == {1}
    assert sum(first.calls.values()) == 3  # A's calls in flight: at most those ran twice
    rows = await db_rows(
        b,
        "SELECT status, retries, claimed_by FROM experiment_runs WHERE id IN (?, ?, ?)",
        *(row[0] for row in claimed_by_a),
    )
    b_claimer = b.state.experiments.matrix.shared.claimer
    assert rows == [("completed", 1, b_claimer)] * 3  # taken over once: counted
    # A's calls come back late (it was only stalled): what it writes must not count.
    first.released.set()
    await asyncio.sleep(0.5)
    after = await db_rows(
        b, "SELECT COUNT(*) FROM experiment_runs WHERE matrix_run_id = ? AND status = 'completed'",
        started["run_id"],
    )  # fmt: skip
    assert after == [(12,)]
    assert await ended_events(b, eid) == 1


async def test_a_restarted_app_leaves_the_live_app_cells_alone(
    make_gateway: GatewayFactory,
) -> None:
    upstream = CellUpstream()
    a = await make_gateway(upstream.fake, matrix_lease_s=LEASE_S)
    eid = await experiment(a, variants=1, inputs=4)
    upstream.hold = True
    started = await start(a, eid, concurrency=4)
    deadline = time.monotonic() + 10
    while upstream.held < 4:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    # Another app starts on the same database (a restarted worker): its recover()
    # runs while A's four cells are in flight, then it polls for several leases.
    restarted = await make_gateway(CellUpstream().fake, matrix_lease_s=LEASE_S)
    await asyncio.sleep(3 * LEASE_S)
    rows = await db_rows(
        a, "SELECT status, claimed_by FROM experiment_runs WHERE matrix_run_id = ?",
        started["run_id"],
    )  # fmt: skip
    claimer = a.state.experiments.matrix.shared.claimer
    assert rows == [("running", claimer)] * 4
    progress = (await restarted.client.get(f"/experiments/{eid}/progress")).json()
    assert (progress["status"], progress["running"]) == ("running", 4)
    upstream.released.set()
    assert (await wait_ended(a, eid))["done"] == 4


async def test_a_cancel_sent_to_either_process_stops_the_cells_of_both(
    make_gateway: GatewayFactory,
) -> None:
    a, first, b, second = await two_apps(make_gateway)
    eid = await experiment(a, variants=1, inputs=20)
    first.hold = second.hold = True
    started = await start(a, eid, concurrency=2)
    deadline = time.monotonic() + 10
    while first.held < 2 or second.held < 2:  # B joined: both have calls in flight
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    began = time.monotonic()
    r = await b.client.post(f"/experiments/{eid}/cancel")
    assert r.status_code == 200, r.text
    progress = r.json()
    assert time.monotonic() - began < 3.0  # A saw it at its next poll
    assert progress["status"] == "cancelled", progress
    assert (progress["cancelled"], progress["running"], progress["pending"]) == (4, 0, 16)
    rows = await db_rows(
        a, "SELECT status FROM experiment_matrix_runs WHERE id = ?", started["run_id"]
    )
    assert rows == [("cancelled",)]
    assert await ended_events(a, eid) == 1
    # Nothing more is claimed after a cancel.
    await asyncio.sleep(1.5)
    assert sum(first.calls.values()) + sum(second.calls.values()) == 4
    first.released.set()
    second.released.set()


async def test_a_claimer_on_this_machine_is_dead_once_its_process_is_gone(
    tmp_path: Path,
) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    host = new_claimer().split("/")[0]
    now = time.time()
    assert claimer_alive(new_claimer(), now + 10, now)
    assert not claimer_alive(new_claimer(), now - 1, now)  # its lease passed
    assert not claimer_alive(f"{host}/{proc.pid}/abcd", now + 10, now)  # its pid is gone
    assert claimer_alive(f"elsewhere.example/{proc.pid}/abcd", now + 10, now)  # lease only
    assert not claimer_alive(None, None, now)  # running before claims existed


async def test_a_process_that_stops_gracefully_hands_its_cells_to_the_other(
    make_gateway: GatewayFactory,
) -> None:
    a, first, b, second = await two_apps(make_gateway, delay=0.3)
    eid = await experiment(a, variants=1, inputs=12)
    first.hold = True  # A's calls are in flight when it stops
    started = await start(a, eid, concurrency=2)
    deadline = time.monotonic() + 10
    while first.held < 2 or not second.calls:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await a.state.experiments.matrix.close()  # A's shutdown, B still running cells
    progress = await wait_ended(b, eid)
    # Not interrupted: B ran the two cells A stopped, and every other one, once each.
    assert (progress["status"], progress["done"], progress["interrupted"]) == (
        "completed",
        12,
        0,
    )
    assert len(second.calls) == 12 and set(second.calls.values()) == {1}
    handed = await db_rows(
        b, "SELECT COUNT(*) FROM experiment_runs WHERE matrix_run_id = ? AND retries = 1",
        started["run_id"],
    )  # fmt: skip
    assert handed == [(2,)]
    first.released.set()
