"""Variants x inputs: the matrix run of an experiment, in process through the fake
upstream (tests/fakes.py): every cell one call through the proxy pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.store.spans import SpanFilter
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT, capture, create, error_of
from tests.experiments_upstream import compose
from tests.fakes import FakeUpstream
from tests.sql_helpers import make_gateway_on_each_backend

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the docs",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def answer(request: httpx.Request) -> httpx.Response:
    """Like tests/experiments_upstream.py: the answer repeats the user's message."""
    body = orjson.loads(request.content)
    result = compose(body)
    message: dict[str, Any] = {"role": "assistant", "content": result["content"]}
    if result["tool_calls"]:
        message["tool_calls"] = result["tool_calls"]
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": result["usage"],
        },
    )


class Gate:
    """An upstream whose answers wait until `open` (to catch a run mid-way)."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waiting = 0

    async def body(self, request: httpx.Request) -> AsyncIterator[bytes]:
        self.waiting += 1
        await self.opened.wait()
        yield answer(request).content

    def handler(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/json"}, content=self.body(request)
        )


async def matrix_experiment(gw: Gateway, **body: Any) -> dict[str, Any]:
    return await create(gw, name="Models", description="three models", **body)


async def add_variant(gw: Gateway, experiment_id: str, **body: Any) -> dict[str, Any]:
    r = await gw.client.post(f"/experiments/{experiment_id}/variants", json=body)
    assert r.status_code == 201, r.text
    variant: dict[str, Any] = r.json()["variant"]
    return variant


async def add_inputs(gw: Gateway, experiment_id: str, inputs: list[Any]) -> list[dict[str, Any]]:
    r = await gw.client.post(f"/experiments/{experiment_id}/inputs", json={"inputs": inputs})
    assert r.status_code == 201, r.text
    stored: list[dict[str, Any]] = r.json()["inputs"]
    return stored


async def start(gw: Gateway, experiment_id: str, **body: Any) -> dict[str, Any]:
    r = await gw.client.post(f"/experiments/{experiment_id}/run", json=body)
    assert r.status_code == 202, r.text
    data: dict[str, Any] = r.json()
    return data


async def finish(gw: Gateway, experiment_id: str) -> dict[str, Any]:
    await asyncio.wait_for(gw.state.experiments.matrix.wait(experiment_id), 20)
    r = await gw.client.get(f"/experiments/{experiment_id}/progress")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def cells(gw: Gateway, experiment_id: str) -> list[dict[str, Any]]:
    r = await gw.client.get(f"/experiments/{experiment_id}")
    assert r.status_code == 200, r.text
    return [run for run in r.json()["runs"] if run["matrix_run_id"]]


async def until(predicate: Any, limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def user_text(body: dict[str, Any]) -> str:
    return str(next(m["content"] for m in body["messages"] if m["role"] == "user"))


def system_text(body: dict[str, Any]) -> str | None:
    return next((m["content"] for m in body["messages"] if m["role"] == "system"), None)


async def test_three_variants_by_ten_inputs_twice_make_sixty_cells_and_spans(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(FakeUpstream(handler=answer))
    exp = await matrix_experiment(gw)
    assert exp["kind"] == "matrix" and exp["status"] == "draft"
    variants = [
        await add_variant(
            gw,
            exp["id"],
            name=f"v{n}",
            systemPrompt=f"You are variant {n}.",
            config={"model": model, "temperature": 0.2 * n},
        )
        for n, model in enumerate(["gpt-4o-mini", "gpt-4o", "local/llama"], start=1)
    ]
    inputs = await add_inputs(
        gw, exp["id"], [{"key": f"case_{i:02d}", "content": f"question {i}"} for i in range(10)]
    )
    started = await start(gw, exp["id"], repetitions=2, concurrency=5)
    assert started["cells"] == 60
    progress = await finish(gw, exp["id"])
    assert progress["total"] == 60 and progress["done"] == 60
    assert progress["failed"] == progress["pending"] == 0
    # One upstream call per cell, each with its variant's system prompt and input's content.
    bodies = gw.upstream.bodies
    assert len(bodies) == 60
    seen = {(system_text(b), user_text(b), b["model"]) for b in bodies}
    expected = {
        (f"You are variant {n}.", f"question {i}", model)
        for n, model in [(1, "gpt-4o-mini"), (2, "gpt-4o"), (3, "llama")]
        for i in range(10)
    }
    assert seen == expected
    assert all(
        sum(1 for b in bodies if (system_text(b), user_text(b)) == (s, u)) == 2
        for s, u, _ in expected
    )
    # 60 cells, each completed with its own span naming experiment, variant, input, rep.
    stored = await cells(gw, exp["id"])
    assert len(stored) == 60
    assert {(c["variant_id"], c["input_id"], c["repetition"]) for c in stored} == {
        (v["id"], i["id"], r) for v in variants for i in inputs for r in (1, 2)
    }
    await gw.flush()
    spans = gw.state.stores.spans
    assert await spans.count_spans(SpanFilter(label="experiment")) == 60
    priced = [c for c in stored if c["config"]["model"] == "gpt-4o-mini"]
    assert len(priced) == 20 and all(c["cost_usd"] and c["cost_usd"] > 0 for c in priced)
    total = sum(c["cost_usd"] or 0 for c in stored)
    assert progress["cost_usd"] == pytest.approx(total)
    for cell in stored:
        assert cell["status"] == "completed" and cell["output_text"]
        assert cell["duration_ms"] is not None and cell["request"]["messages"]
        assert cell["input_tokens"] and cell["output_tokens"]
        assert cell["config"]["variant_name"] in ("v1", "v2", "v3")
        span = await spans.get_span(cell["result_span_id"])
        assert span is not None
        attributes = span["attributes"]
        assert attributes["spanlab.experiment.id"] == exp["id"]
        assert attributes["spanlab.experiment.variant.id"] == cell["variant_id"]
        assert attributes["spanlab.experiment.input.id"] == cell["input_id"]
        assert attributes["spanlab.experiment.repetition"] == cell["repetition"]
        assert cell["input_id"] in {i["id"] for i in inputs}
        assert (
            f"question {[i['key'] for i in inputs].index(cell['config']['input_key'])}"
            in (cell["output_text"])
        )


async def test_an_override_variant_keeps_a_captured_requests_tools(gateway: Gateway) -> None:
    captured = await capture(gateway, {**CHAT, "tools": TOOLS, "tool_choice": "auto"})
    exp = await matrix_experiment(gateway)
    await add_variant(
        gateway,
        exp["id"],
        name="on 4o",
        kind="override",
        systemPrompt="Be terse.",
        config={"model": "gpt-4o", "temperature": None},
    )
    await add_inputs(
        gateway,
        exp["id"],
        [{"key": "real", "request": captured["request"], "sourceSpanId": captured["span_id"]}],
    )
    before = len(gateway.upstream.bodies)
    await start(gateway, exp["id"])
    assert (await finish(gateway, exp["id"]))["done"] == 1
    [sent] = gateway.upstream.bodies[before:]
    assert sent["model"] == "gpt-4o" and "temperature" not in sent
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "auto"
    assert sent["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    [cell] = await cells(gateway, exp["id"])
    span = await gateway.span(cell["result_span_id"])
    assert [link["span_id"] for link in span["links"]] == [captured["span_id"]]


async def test_a_seed1_experiment_grows_variants_over_its_own_call(gateway: Gateway) -> None:
    captured = await capture(gateway)
    exp = await create(gateway, original_span_id=captured["span_id"])
    plain = (await gateway.client.get(f"/experiments/{exp['id']}")).json()
    assert plain == exp  # untouched, it reads exactly as before
    for model in ("gpt-4o", "gpt-4.1"):
        await add_variant(gateway, exp["id"], name=model, kind="override", config={"model": model})
    before = len(gateway.upstream.bodies)
    r = await gateway.client.post(f"/experiments/{exp['id']}/run", json={"repetitions": 1})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["cells"] == 2
    await finish(gateway, exp["id"])
    sent = gateway.upstream.bodies[before:]
    assert sorted(b["model"] for b in sent) == ["gpt-4.1", "gpt-4o"]
    assert all(b["messages"] == CHAT["messages"] for b in sent)
    grown = (await gateway.client.get(f"/experiments/{exp['id']}")).json()
    assert {k: grown[k] for k in exp if k not in ("updated_at", "version")} == {
        k: exp[k] for k in exp if k not in ("updated_at", "version")
    }
    assert grown["inputs"][0]["id"] == "original" and len(grown["variants"]) == 2
    # Without a body the seed-1 run is exactly what it was: one call, a 200.
    r = await gateway.client.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == 200 and r.json()["status"] == "completed"


async def test_cancel_mid_run_then_resume_runs_only_the_unfinished(
    make_gateway: GatewayFactory,
) -> None:
    gate = Gate()
    gw = await make_gateway(FakeUpstream(handler=gate.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], [f"line {i}" for i in range(6)])
    await start(gw, exp["id"], concurrency=2)
    await until(lambda: gate.waiting == 2)
    await asyncio.sleep(0.05)
    assert gate.waiting == 2  # never more in flight than the run's concurrency
    r = await gw.client.post(f"/experiments/{exp['id']}/cancel")
    assert r.status_code == 200, r.text
    progress = r.json()
    assert progress["status"] == "cancelled"
    assert progress["cancelled"] == 2 and progress["pending"] == 4 and progress["done"] == 0
    assert progress["running"] == 0
    # Nothing runs after the cancel.
    await asyncio.sleep(0.05)
    assert len(gw.upstream.bodies) == 2
    gate.opened.set()
    resumed = await start(gw, exp["id"], resume=True)
    assert resumed["run_id"] == progress["run_id"] and resumed["cells"] == 6
    done = await finish(gw, exp["id"])
    assert done["done"] == 6 and done["total"] == 6 and done["status"] == "completed"
    # Resume again: nothing is left, so nothing is sent.
    sent = len(gw.upstream.bodies)
    again = await start(gw, exp["id"], resume=True)
    assert again["cells"] == 0
    await finish(gw, exp["id"])
    assert len(gw.upstream.bodies) == sent


async def test_cells_left_running_by_a_killed_gateway_are_interrupted_and_resumed(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(FakeUpstream(handler=answer))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], [f"line {i}" for i in range(5)])
    await start(gw, exp["id"])
    await finish(gw, exp["id"])
    stored = await cells(gw, exp["id"])
    killed = [c["id"] for c in stored[:3]]
    kept = {c["id"]: c["result_span_id"] for c in stored[3:]}
    # What a kill -9 mid-run leaves: cells and their run still marked running.
    async with gw.state.stores.database.transaction() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            f"UPDATE experiment_runs SET status = 'running' WHERE id IN"
            f" ({', '.join('?' for _ in killed)})",
            killed,
        )
        await conn.execute("UPDATE experiment_matrix_runs SET status = 'running'")
    restarted = await make_gateway(FakeUpstream(handler=answer))
    progress = (await restarted.client.get(f"/experiments/{exp['id']}/progress")).json()
    assert progress["interrupted"] == 3 and progress["running"] == 0
    assert progress["status"] == "interrupted"
    before = len(gw.upstream.bodies)
    resumed = await start(restarted, exp["id"], resume=True)
    assert resumed["cells"] == 3
    assert (await finish(restarted, exp["id"]))["done"] == 5
    # Only the interrupted ones ran again (here or in the first app, which is still
    # up on the same database and may join the resumed run).
    assert len(restarted.upstream.bodies) + len(gw.upstream.bodies) - before == 3
    after = {c["id"]: c for c in await cells(restarted, exp["id"])}
    assert all(after[i]["result_span_id"] == span for i, span in kept.items())


async def test_429_with_retry_after_is_retried_and_counted_not_failed(
    make_gateway: GatewayFactory,
) -> None:
    calls = {"n": 0}

    def storm(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(
                429, headers={"retry-after": "0"}, json={"error": {"message": "slow down"}}
            )
        return answer(request)

    gw = await make_gateway(FakeUpstream(handler=storm))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["hello"])
    await start(gw, exp["id"])
    progress = await finish(gw, exp["id"])
    assert progress["done"] == 1 and progress["failed"] == 0 and progress["retries"] == 2
    [cell] = await cells(gw, exp["id"])
    assert cell["status"] == "completed" and cell["retries"] == 2 and cell["error"] is None


async def test_a_provider_error_is_a_failed_cell_with_its_error(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        FakeUpstream(handler=lambda r: httpx.Response(400, json={"error": {"message": "bad"}}))
    )
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["hello"])
    await start(gw, exp["id"])
    progress = await finish(gw, exp["id"])
    assert progress["failed"] == 1 and progress["retries"] == 0
    [cell] = await cells(gw, exp["id"])
    assert cell["error"] and cell["result_span_id"]


async def assert_nothing_written(gw: Gateway, experiment_id: str) -> None:
    detail = (await gw.client.get(f"/experiments/{experiment_id}")).json()
    assert detail["matrix_runs"] == [] and detail["runs"] == []
    assert gw.upstream.bodies == []


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"variantIds": ["var_nope"]}, 404, "not_found", "variantIds"),
        ({"inputIds": ["inp_nope"]}, 404, "not_found", "inputIds"),
        ({"variantIds": []}, 422, "empty_matrix", "variantIds"),
        ({"repetitions": 0}, 422, "validation_failed", "repetitions"),
        ({"concurrency": "lots"}, 422, "validation_failed", "concurrency"),
        ({"colour": "red"}, 422, "validation_failed", "colour"),
    ],
)
async def test_refused_runs_write_nothing(
    gateway: Gateway, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    exp = await matrix_experiment(gateway)
    await add_variant(gateway, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gateway, exp["id"], ["hello"])
    r = await gateway.client.post(f"/experiments/{exp['id']}/run", json=body)
    assert r.status_code == status, r.text
    error = error_of(r)
    assert (error["code"], error["param"]) == (code, param)
    await assert_nothing_written(gateway, exp["id"])


async def test_an_empty_matrix_and_a_missing_variable_are_refused(gateway: Gateway) -> None:
    exp = await matrix_experiment(gateway)
    r = await gateway.client.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == 422 and error_of(r)["code"] == "empty_matrix"
    await add_variant(
        gateway,
        exp["id"],
        name="t",
        config={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "{{city}}"}]},
    )
    await add_inputs(gateway, exp["id"], [{"key": "a", "variables": {"town": "Oslo"}}])
    r = await gateway.client.post(f"/experiments/{exp['id']}/run", json={})
    assert r.status_code == 422 and error_of(r)["code"] == "missing_variable"
    await assert_nothing_written(gateway, exp["id"])


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"name": "x", "config": "gpt-4o"}, "validation_failed", "config"),
        ({"name": "x", "config": {}}, "missing_model", "config.model"),
        (
            {"name": "x", "config": {"model": "m", "temperature": "hot"}},
            "validation_failed",
            "config.temperature",
        ),
        ({"name": "x", "kind": "magic", "config": {"model": "m"}}, "validation_failed", "kind"),
        ({"config": {"model": "m"}}, "validation_failed", "name"),
        (
            {"name": "x", "systemPrompt": "{{/x}}", "config": {"model": "m"}},
            "invalid_template",
            "systemPrompt",
        ),
        (
            {"name": "x", "config": {"model": "m", "provider": "nowhere"}},
            "provider_not_found",
            None,
        ),
    ],
)
async def test_a_bad_variant_is_refused_and_not_stored(
    gateway: Gateway, body: dict[str, Any], code: str, param: str | None
) -> None:
    exp = await matrix_experiment(gateway)
    r = await gateway.client.post(f"/experiments/{exp['id']}/variants", json=body)
    assert 400 <= r.status_code < 500, r.text
    error = error_of(r)
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert (await gateway.client.get(f"/experiments/{exp['id']}/variants")).json()["data"] == []


async def test_variants_and_inputs_are_edited_and_removed(gateway: Gateway) -> None:
    exp = await matrix_experiment(gateway)
    variant = await add_variant(
        gateway, exp["id"], name="a", description="first", system_prompt="Hi", config={"model": "m"}
    )
    assert variant["system_prompt"] == "Hi" and variant["kind"] == "template"
    r = await gateway.client.put(
        f"/experiments/{exp['id']}/variants/{variant['id']}",
        json={"systemPrompt": "Hello", "config": {"model": "gpt-4o"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["variant"]["system_prompt"] == "Hello"
    assert r.json()["variant"]["config"] == {"model": "gpt-4o"}
    r = await gateway.client.post(
        f"/experiments/{exp['id']}/variants", json={"name": "a", "config": {"model": "m"}}
    )
    assert r.status_code == 409
    [one, two] = await add_inputs(
        gateway, exp["id"], ["x", {"key": "k", "content": "y", "metadata": {"n": 1}}]
    )
    assert (one["key"], two["key"], two["metadata"]) == ("input-1", "k", {"n": 1})
    r = await gateway.client.post(
        f"/experiments/{exp['id']}/inputs", json={"inputs": [{"key": "k", "content": "z"}]}
    )
    assert r.status_code == 409  # a key is unique in its experiment
    assert await gateway.client.delete(f"/experiments/{exp['id']}/inputs/{one['id']}")
    assert (
        await gateway.client.delete(f"/experiments/{exp['id']}/inputs/{one['id']}")
    ).status_code == 404
    r = await gateway.client.delete(f"/experiments/{exp['id']}/variants/{variant['id']}")
    assert r.status_code == 204
    detail = (await gateway.client.get(f"/experiments/{exp['id']}")).json()
    assert detail["variants"] == [] and [i["key"] for i in detail["inputs"]] == ["k"]


async def test_inputs_from_a_dataset_version(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/datasets",
        json={"name": "cities", "items": [{"key": "oslo", "variables": {"city": "Oslo"}}]},
    )
    assert r.status_code == 201, r.text
    dataset = r.json()
    dataset_id = dataset.get("id") or dataset["dataset"]["id"]
    exp = await matrix_experiment(gateway)
    r = await gateway.client.post(
        f"/experiments/{exp['id']}/inputs", json={"datasetId": dataset_id}
    )
    assert r.status_code == 201, r.text
    [item] = r.json()["inputs"]
    assert item["key"] == "oslo" and item["variables"] == {"city": "Oslo"}
    assert item["dataset_id"] == dataset_id and item["dataset_version"] == 1
    assert item["dataset_item_id"]
    r = await gateway.client.post(f"/experiments/{exp['id']}/inputs", json={"datasetId": "nope"})
    assert r.status_code == 404


async def test_deleting_a_running_experiment_stops_its_run(make_gateway: GatewayFactory) -> None:
    gate = Gate()
    gw = await make_gateway(FakeUpstream(handler=gate.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], [f"line {i}" for i in range(4)])
    await start(gw, exp["id"], concurrency=1)
    await until(lambda: gate.waiting == 1)
    r = await gw.client.delete(f"/experiments/{exp['id']}")
    assert r.status_code == 204
    gate.opened.set()
    await asyncio.sleep(0.05)
    assert len(gw.upstream.bodies) == 1  # nothing started after the delete
    assert (await gw.client.get(f"/experiments/{exp['id']}")).status_code == 404


async def test_one_run_at_a_time_and_a_shutdown_interrupts_cells_in_flight(
    make_gateway: GatewayFactory,
) -> None:
    gate = Gate()
    gw = await make_gateway(FakeUpstream(handler=gate.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], [f"line {i}" for i in range(5)])
    await start(gw, exp["id"], concurrency=2)
    await until(lambda: gate.waiting == 2)
    r = await gw.client.post(f"/experiments/{exp['id']}/run", json={})
    assert r.status_code == 409 and error_of(r)["code"] == "experiment_running"
    r = await gw.client.get(f"/experiments/{exp['id']}/progress", params={"run": "mrun_nope"})
    assert r.status_code == 404
    await gw.state.experiments.close()  # what the app's shutdown does
    progress = (await gw.client.get(f"/experiments/{exp['id']}/progress")).json()
    assert progress["status"] == "interrupted"
    assert (progress["interrupted"], progress["pending"], progress["running"]) == (2, 3, 0)


async def test_an_exported_experiment_with_matrix_cells_imports_again(
    make_gateway: GatewayFactory,
) -> None:
    gate = Gate()
    gw = await make_gateway(FakeUpstream(handler=gate.handler))
    exp = await matrix_experiment(gw)
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["x", "y", "z"])
    await start(gw, exp["id"], concurrency=1)
    await until(lambda: gate.waiting == 1)
    await gw.client.post(f"/experiments/{exp['id']}/cancel")  # cancelled and pending cells
    exported = await gw.client.get(f"/experiments/{exp['id']}/export")
    assert exported.status_code == 200
    assert len(exported.json()["experiments"][0]["runs"]) == 3  # the cells are in the file
    r = await gw.client.post(
        "/experiments/import",
        params={"on_conflict": "copy"},
        content=exported.content,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    [copy] = r.json()["data"]
    assert copy["kind"] == "matrix" and copy["name"] == exp["name"]
