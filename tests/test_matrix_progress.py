"""A matrix run as it goes: the progress stream (server-sent events), the ETA, the
``experiment.run.completed`` event (events table and ``/events``), in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import sse_events
from tests.fakes import FakeUpstream
from tests.test_matrix import add_inputs, add_variant, answer, finish, matrix_experiment, start


class SlowFor:
    """Answers at once, except for a user message in `held`, which waits for `open`."""

    def __init__(self, *held: str) -> None:
        self.held = set(held)
        self.opened = asyncio.Event()
        self.waiting = 0

    async def body(self, request: httpx.Request) -> AsyncIterator[bytes]:
        self.waiting += 1
        await self.opened.wait()
        yield answer(request).content

    def handler(self, request: httpx.Request) -> httpx.Response:
        text = orjson.loads(request.content)["messages"][-1]["content"]
        if text not in self.held:
            return answer(request)
        return httpx.Response(
            200, headers={"content-type": "application/json"}, content=self.body(request)
        )


async def until(predicate: Any, limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_progress_has_an_eta_from_the_pace_while_running(
    make_gateway: GatewayFactory,
) -> None:
    slow = SlowFor("b", "c")
    gw = await make_gateway(FakeUpstream(handler=slow.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["a", "b", "c"])
    await start(gw, exp["id"], concurrency=1)
    await until(lambda: slow.waiting == 1)
    running = (await gw.client.get(f"/experiments/{exp['id']}/progress")).json()
    assert running["done"] == 1 and running["running"] == 1 and running["pending"] == 1
    # One cell ended in elapsed_s: two remain, at that pace.
    assert running["eta_s"] > 0 and running["elapsed_s"] > 0
    assert abs(running["eta_s"] - 2 * running["elapsed_s"]) < 2 * running["elapsed_s"]
    slow.opened.set()
    done = await finish(gw, exp["id"])
    assert done["done"] == 3 and done["eta_s"] == 0.0 and done["elapsed_s"] is not None


async def test_no_eta_before_the_first_cell_ends(make_gateway: GatewayFactory) -> None:
    slow = SlowFor("a")
    gw = await make_gateway(FakeUpstream(handler=slow.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["a"])
    await start(gw, exp["id"])
    await until(lambda: slow.waiting == 1)
    progress = (await gw.client.get(f"/experiments/{exp['id']}/progress")).json()
    assert progress["eta_s"] is None and progress["running"] == 1
    slow.opened.set()
    await finish(gw, exp["id"])


async def test_the_progress_stream_sends_each_cells_end_and_a_final_event(
    make_gateway: GatewayFactory,
) -> None:
    slow = SlowFor("b", "c", "d")
    gw = await make_gateway(FakeUpstream(handler=slow.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["a", "b", "c", "d"])
    await start(gw, exp["id"], concurrency=1)
    await until(lambda: slow.waiting == 1)
    matrix = gw.state.experiments.matrix
    stream = asyncio.create_task(gw.client.get(f"/experiments/{exp['id']}/progress?stream=true"))
    await until(lambda: matrix.hub.listeners(exp["id"]) == 1)
    # One cell at a time, each after the stream has told the one before.
    for _ in range(3):
        slow.held.clear()
        slow.opened.set()
        await asyncio.sleep(0.05)
    r = await asyncio.wait_for(stream, 10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert {name for name, _ in events} == {"progress"}
    data = [e for _, e in events]
    assert data[0]["done"] == 1 and data[0]["final"] is False and data[0]["total"] == 4
    assert data[-1]["final"] is True and data[-1]["done"] == 4 and data[-1]["eta_s"] == 0.0
    assert data[-1]["status"] == "completed"
    assert [e["final"] for e in data].count(True) == 1
    done = [e["done"] for e in data]
    assert done == sorted(done) and len(data) >= 3  # the first, at least one cell's, the end
    assert matrix.hub.listeners(exp["id"]) == 0


async def test_the_stream_of_an_ended_run_is_one_final_event(gateway: Gateway) -> None:
    exp = await matrix_experiment(gateway)
    await add_variant(gateway, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gateway, exp["id"], ["a", "b"])
    await start(gateway, exp["id"])
    await finish(gateway, exp["id"])
    r = await gateway.client.get(f"/experiments/{exp['id']}/progress/events")
    [(name, event)] = sse_events(r.text)
    assert name == "progress" and event["final"] is True and event["done"] == 2


async def test_the_stream_of_an_unknown_experiment_or_run_is_a_404(gateway: Gateway) -> None:
    r = await gateway.client.get("/experiments/nope/progress?stream=true")
    assert r.status_code == 404 and r.json()["error"]["type"]
    exp = await matrix_experiment(gateway)
    r = await gateway.client.get(f"/experiments/{exp['id']}/progress/events")
    assert r.status_code == 404 and r.json()["error"]["param"] == "run"


async def test_a_run_end_is_an_event_row_and_an_events_message(gateway: Gateway) -> None:
    exp = await matrix_experiment(gateway)
    await add_variant(gateway, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gateway, exp["id"], ["a", "b", "c"])
    listener = asyncio.create_task(gateway.client.get("/events"))
    await until(lambda: gateway.state.events.listeners == 1)
    started = await start(gateway, exp["id"], repetitions=2)
    await finish(gateway, exp["id"])
    await gateway.flush()
    gateway.state.events.close()
    streamed = sse_events((await asyncio.wait_for(listener, 5)).text.split("\n\n", 1)[1])
    [event] = [e for n, e in streamed if n == "experiment.run.completed"]
    assert event["type"] == "experiment.run.completed"
    assert event["subject_id"] == exp["id"] and event["related_ids"] == [started["run_id"]]
    payload = event["payload"]
    assert payload["experiment_id"] == exp["id"] and payload["status"] == "completed"
    assert payload["done"] == 6 and payload["total"] == 6 and payload["failed"] == 0
    [row] = await gateway.state.stores.events.list_events(type="experiment.run.completed")
    assert row.as_dict() == event


async def test_a_cancelled_run_ends_with_its_event_too(make_gateway: GatewayFactory) -> None:
    slow = SlowFor("a")
    gw = await make_gateway(FakeUpstream(handler=slow.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["a", "b"])
    await start(gw, exp["id"], concurrency=1)
    await until(lambda: slow.waiting == 1)
    r = await gw.client.post(f"/experiments/{exp['id']}/cancel")
    assert r.status_code == 200
    [row] = await gw.state.stores.events.list_events(type="experiment.run.completed")
    assert row.payload["status"] == "cancelled"
    assert row.payload["cancelled"] == 1 and row.payload["pending"] == 1


async def test_a_write_that_must_happen_survives_a_cancel_which_then_lands() -> None:
    """`unstoppable`: a native Task.cancel() during the write (anyio's shield let it
    through: a cancel in a cell's start left the run stuck running) waits for the
    write, then cancels the task."""
    from gateway.experiments.matrix import unstoppable

    written: list[str] = []
    entered = asyncio.Event()

    async def write() -> None:
        entered.set()
        await asyncio.sleep(0.05)
        written.append("row")

    async def cell() -> None:
        await unstoppable(write())
        written.append("after")  # no await before: the cancel lands at the next one
        await asyncio.sleep(1)
        written.append("never")

    task = asyncio.create_task(cell())
    await entered.wait()
    task.cancel()
    [outcome] = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)
    assert written == ["row", "after"]
