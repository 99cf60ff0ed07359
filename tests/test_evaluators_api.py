"""An experiment's evaluators through the API, in process: configuration (and its
4xx), scoring after each matrix cell (never touching the cell's own status), re-running
over existing results without calling the model again (replacing earlier scores),
the cells as evaluators see them and scores posted by the CLI's Python evaluators."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.store.evaluation import MetricRecord, ScoreRecord
from tests.conftest import Gateway, GatewayFactory, make_settings
from tests.experiments_helpers import create, error_of
from tests.experiments_upstream import compose
from tests.fakes import FakeUpstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def verdict_for(body: dict[str, Any]) -> str:
    """A judge: 1 when the answer to grade mentions the reference's first word."""
    prompt = body["messages"][-1]["content"]
    answer = prompt.split("Answer to grade:\n", 1)[1].split("\n\n", 1)[0]
    reference = prompt.split("Reference answer:\n", 1)[1].split("\n", 1)[0]
    good = reference.split()[0].lower() in answer.lower()
    return orjson.dumps(
        {"score": 1 if good else 0, "reason": "mentions it" if good else "misses it"}
    ).decode()


class Upstream:
    """Chat answers as tests/experiments_upstream.py composes them; a judge's call (its
    system message asks for a JSON verdict) gets a verdict, but from ``gpt-4.1-nano``,
    which answers words with no verdict in them."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.calls.append(body)
        model = body["model"]
        if body["messages"][0]["content"].startswith("Answer with a JSON object"):
            content = "I liked it a lot!" if model == "gpt-4.1-nano" else verdict_for(body)
            message: dict[str, Any] = {"role": "assistant", "content": content}
            usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        else:
            result = compose(body)
            message = {"role": "assistant", "content": result["content"]}
            if result["tool_calls"]:
                message["tool_calls"] = result["tool_calls"]
            usage = result["usage"]
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            },
        )


async def post(gw: Gateway, path: str, body: Any, status: int) -> Any:
    r = await gw.client.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


async def setup(gw: Gateway, *, tools: bool = False) -> str:
    exp = await create(gw, name="Capitals")
    eid: str = exp["id"]
    config: dict[str, Any] = {"model": "gpt-4o-mini", "temperature": 0.5}
    if tools:
        config["tools"] = TOOLS
    await post(gw, f"/experiments/{eid}/variants", {"name": "mini", "config": config}, 201)
    inputs = [
        {"key": "fr", "content": "Paris is the capital?", "expectedOutput": "Paris"},
        {"key": "de", "content": "Berlin please", "expectedOutput": "Rome"},
    ]
    await post(gw, f"/experiments/{eid}/inputs", {"inputs": inputs}, 201)
    return eid


async def run_matrix(gw: Gateway, eid: str) -> str:
    started = await post(gw, f"/experiments/{eid}/run", {}, 202)
    await asyncio.wait_for(gw.state.experiments.matrix.wait(eid), 20)
    await asyncio.wait_for(gw.state.evaluation.wait(eid), 20)
    return str(started["run_id"])


async def scores(gw: Gateway, eid: str) -> list[ScoreRecord]:
    return await gw.state.stores.evaluation.list_scores(experiment_id=eid)


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    upstream = Upstream()
    gateway: Gateway = await make_gateway(FakeUpstream(handler=upstream))
    gateway.upstream_script = upstream  # type: ignore[attr-defined]
    return gateway


async def test_types_are_listed_with_params_and_rubrics(gw: Gateway) -> None:
    r = await gw.client.get("/evaluators/types")
    assert r.status_code == 200
    types = {t["type"] for t in r.json()["data"]}
    assert {"exact_match", "json_schema", "tool_sequence", "llm_judge"} <= types
    assert len(r.json()["rubrics"]) == 3


async def test_configuration_crud_and_its_errors(gw: Gateway) -> None:
    eid = await setup(gw)
    base = f"/experiments/{eid}/evaluators"
    added = (
        await post(
            gw,
            base,
            {"name": "Says Paris", "type": "contains", "params": {"strings": ["paris"]}},
            201,
        )
    )["evaluator"]
    assert added["metric_key"] == "says_paris" and added["enabled"] is True
    assert added["params"] == {"strings": ["paris"], "mode": "any", "case_sensitive": False}
    # a second one named the same: 409; bad params: 400 naming the param; nothing stored
    r = await gw.client.post(base, json={"name": "Says Paris", "type": "valid_json"})
    assert r.status_code == 409 and error_of(r)["param"] == "name"
    r = await gw.client.post(base, json={"name": "re", "type": "regex", "params": {"pattern": "("}})
    assert r.status_code == 400 and error_of(r)["param"] == "params.pattern"
    r = await gw.client.post(
        base, json={"name": "s", "type": "json_schema", "params": {"schema": {"type": 5}}}
    )
    assert r.status_code == 400 and error_of(r)["param"] == "params.schema"
    r = await gw.client.post(
        base, json={"name": "j", "type": "llm_judge", "params": {"model": "x", "provider": "nope"}}
    )
    assert r.status_code == 400 and error_of(r)["param"] == "params.model"
    # a metric key already used by a metric of another kind
    await post(gw, base, {"name": "sim", "type": "similarity"}, 201)
    now = "2026-01-01T00:00:00.000000Z"
    await gw.state.stores.evaluation.ensure_metric(
        MetricRecord(id="met_taken", key="taken", name="taken", created_at=now, updated_at=now)
    )
    r = await gw.client.post(base, json={"name": "j2", "type": "valid_json", "metricKey": "taken"})
    assert r.status_code == 400 and error_of(r)["code"] == "metric_kind_mismatch"
    await post(gw, base, {"name": "j2", "type": "similarity", "metricKey": "taken"}, 201)
    listed = (await gw.client.get(base)).json()["data"]
    assert [e["name"] for e in listed] == ["Says Paris", "sim", "j2"]
    # change: disable, rename; a bad change is refused and leaves it as it was
    one = f"{base}/{added['id']}"
    r = await gw.client.patch(one, json={"enabled": False, "name": "Paris?"})
    assert r.status_code == 200 and r.json()["evaluator"]["enabled"] is False
    r = await gw.client.patch(one, json={"params": {"strings": []}})
    assert r.status_code == 400 and error_of(r)["param"] == "params.strings"
    r = await gw.client.patch(one, json={"name": "sim"})
    assert r.status_code == 409
    got = (await gw.client.get(one)).json()["evaluator"]
    assert got["name"] == "Paris?" and got["params"]["strings"] == ["paris"]
    # a type change checks the new type's params
    r = await gw.client.patch(one, json={"type": "regex", "params": {"pattern": "Par.s"}})
    assert r.status_code == 200 and r.json()["evaluator"]["params"]["match"] == "search"
    assert (await gw.client.delete(one)).status_code == 204
    assert (await gw.client.delete(one)).status_code == 404
    assert (await gw.client.get("/experiments/exp_missing/evaluators")).status_code == 404
    r = await gw.client.post(base, content=b"[1,", headers={"content-type": "application/json"})
    assert r.status_code == 400


async def test_each_finished_cell_is_scored_and_a_rerun_replaces_the_scores(gw: Gateway) -> None:
    eid = await setup(gw, tools=False)
    base = f"/experiments/{eid}/evaluators"
    await post(gw, base, {"name": "exact", "type": "exact_match"}, 201)
    await post(
        gw, base, {"name": "paris", "type": "contains", "params": {"strings": ["paris"]}}, 201
    )
    await post(gw, base, {"name": "sim", "type": "similarity"}, 201)
    off = (await post(gw, base, {"name": "off", "type": "valid_json", "enabled": False}, 201))[
        "evaluator"
    ]
    run_id = await run_matrix(gw, eid)
    found = await scores(gw, eid)
    assert len(found) == 2 * 3  # two cells, three enabled evaluators
    by = {(s.input_id, s.metric_key): s for s in found}
    inputs = {
        i["key"]: i["id"]
        for i in (await gw.client.get(f"/experiments/{eid}/inputs")).json()["data"]
    }
    fr, de = inputs["fr"], inputs["de"]
    # The answer repeats the question: "Answer: Paris is the capital? (model ...)"
    assert by[(fr, "paris")].value == 1.0 and by[(de, "paris")].value == 0.0
    assert by[(fr, "exact")].value == 0.0 and "differs" in (by[(fr, "exact")].note or "")
    assert 0.0 < (by[(fr, "sim")].value or 0) < 1.0
    assert all(s.source.startswith("evaluator:") and s.run_id and s.span_id for s in found)
    metrics = {m.key: m for m in await gw.state.stores.evaluation.list_metrics(None)}
    assert metrics["exact"].kind == "boolean" and metrics["sim"].kind == "numeric"
    assert (metrics["sim"].min_value, metrics["sim"].max_value) == (0.0, 1.0)
    # the cells' own status is untouched
    cells = (await gw.client.get(f"/experiments/{eid}")).json()["runs"]
    assert {c["status"] for c in cells} == {"completed"}
    calls = len(gw.upstream_script.calls)  # type: ignore[attr-defined]

    # Re-run only the disabled one, then all enabled: no model call, scores replaced
    r = await gw.client.post(
        f"/experiments/{eid}/evaluate", json={"evaluatorIds": [off["id"]], "matrixRunId": run_id}
    )
    assert r.status_code == 202, r.text
    assert r.json()["job"]["total"] == 2
    await gw.state.evaluation.wait(eid)
    progress = (await gw.client.get(f"/experiments/{eid}/evaluate")).json()
    assert progress["job"]["status"] == "completed" and progress["job"]["done"] == 2
    assert progress["job"]["scores"] == 2 and progress["pending_cells"] == 0
    r = await gw.client.post(f"/experiments/{eid}/evaluate")
    assert r.status_code == 202
    await gw.state.evaluation.wait(eid)
    again = await scores(gw, eid)
    assert len(again) == 2 * 4  # replaced, not added: 3 evaluators + the one re-run
    assert {s.id for s in again}.isdisjoint({s.id for s in found})
    assert len(gw.upstream_script.calls) == calls  # type: ignore[attr-defined]

    for body, status, param in (
        ({"evaluatorIds": ["evl_nope"]}, 404, "evaluatorIds"),
        ({"matrixRunId": "mrun_nope"}, 404, "matrixRunId"),
        ({"cellIds": ["exprun_nope"]}, 404, "cellIds"),
        ({"cellIds": "x"}, 400, "cellIds"),
        ({"colour": 1}, 400, "colour"),
    ):
        r = await gw.client.post(f"/experiments/{eid}/evaluate", json=body)
        assert r.status_code == status and error_of(r)["param"] == param, r.text


async def test_tool_calls_are_read_from_the_captured_response(gw: Gateway) -> None:
    eid = await setup(gw, tools=True)
    base = f"/experiments/{eid}/evaluators"
    await post(
        gw, base, {"name": "called", "type": "tool_called", "params": {"tool": "search"}}, 201
    )
    await post(gw, base, {"name": "other", "type": "tool_called", "params": {"tool": "book"}}, 201)
    schema = {
        "type": "object",
        "required": ["query"],
        "properties": {"query": {"type": "string", "minLength": 12}},
    }
    await post(
        gw,
        base,
        {"name": "args", "type": "tool_arguments", "params": {"tool": "search", "schema": schema}},
        201,
    )
    run_id = await run_matrix(gw, eid)
    by = {(s.metric_key, s.input_id): s.value for s in await scores(gw, eid)}
    assert sorted(v for (k, _), v in by.items() if k == "called") == [1.0, 1.0]
    assert sorted(v for (k, _), v in by.items() if k == "other") == [0.0, 0.0]
    # "Paris is the capital?" is long enough; "Berlin please" (13) too; both pass
    assert sorted(v for (k, _), v in by.items() if k == "args") == [1.0, 1.0]
    # the same tool calls on a re-run, read back from the stored spans
    await gw.flush()
    r = await gw.client.get(f"/experiments/{eid}/evaluation/cells", params={"run": run_id})
    assert r.status_code == 200
    data = r.json()["data"]
    assert len(data) == 2
    assert all(c["tool_calls"][0]["name"] == "search" for c in data)
    assert {c["expected"] for c in data} == {"Paris", "Rome"}
    assert all(c["variant"] == "mini" and c["latency_ms"] > 0 for c in data)
    await post(gw, f"/experiments/{eid}/evaluate", {}, 202)
    await gw.state.evaluation.wait(eid)
    rerun = {(s.metric_key, s.input_id): s.value for s in await scores(gw, eid)}
    assert rerun == by


async def test_an_evaluator_that_breaks_never_touches_the_cell(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    eid = await setup(gw)
    await post(gw, f"/experiments/{eid}/evaluators", {"name": "j", "type": "valid_json"}, 201)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the evaluation store is on fire")

    monkeypatch.setattr(gw.state.evaluation, "score_cell", broken)
    await run_matrix(gw, eid)
    progress = (await gw.client.get(f"/experiments/{eid}/progress")).json()
    assert progress["status"] == "completed" and progress["completed"] == 2
    assert await scores(gw, eid) == []


async def test_the_judge_scores_through_the_gateway_and_counts_its_cost_apart(gw: Gateway) -> None:
    eid = await setup(gw)
    base = f"/experiments/{eid}/evaluators"
    judge = (
        await post(
            gw, base, {"name": "correct", "type": "llm_judge", "params": {"model": "gpt-4o"}}, 201
        )
    )["evaluator"]
    await post(
        gw,
        base,
        {"name": "garbage", "type": "llm_judge", "params": {"model": "gpt-4.1-nano"}},
        201,
    )
    await run_matrix(gw, eid)
    found = await scores(gw, eid)
    good = {s.input_id: s for s in found if s.metric_key == "correct"}
    bad = [s for s in found if s.metric_key == "garbage"]
    assert len(good) == 2 and len(bad) == 2
    assert sorted(s.value for s in good.values()) == [0.0, 1.0]  # type: ignore[type-var]
    assert {s.note for s in good.values()} == {"mentions it", "misses it"}
    assert all(s.error is None and s.evaluator_id == judge["id"] for s in good.values())
    assert all(s.value is None and s.error and s.error["type"] == "judge_unparseable" for s in bad)
    # the judge's call: a span of origin judge naming the cell, with a cost of its own
    await gw.flush()
    one = next(iter(good.values()))
    span = await gw.span(one.judge_span_id or "")
    assert span["origin"] == "judge" and span["label"] == "judge"
    assert span["attributes"]["spanlab.judge.run.id"] == one.run_id
    assert "spanlab.experiment.id" not in span["attributes"]
    body = span["request"]
    assert body["response_format"]["type"] == "json_schema"
    assert "{{" not in body["messages"][-1]["content"]
    assert one.judge_cost_usd is not None and one.judge_cost_usd == span["cost_usd"]
    cell = (await gw.client.get(f"/experiments/{eid}/runs/{one.run_id}")).json()
    assert cell["cost_usd"] != one.judge_cost_usd  # the variant's own, apart


async def test_python_evaluator_scores_are_posted_as_data(gw: Gateway) -> None:
    eid = await setup(gw)
    run_id = await run_matrix(gw, eid)
    cells = (await gw.client.get(f"/experiments/{eid}/evaluation/cells")).json()["data"]
    source = "evaluator:mypkg.checks:is_polite"
    body = {
        "scores": [
            {
                "runId": cells[0]["run_id"],
                "metricKey": "polite",
                "value": True,
                "note": "ok",
                "source": source,
            },
            {"runId": cells[1]["run_id"], "metricKey": "polite", "value": False, "source": source},
            {"runId": cells[0]["run_id"], "metricKey": "length", "value": 12.5, "source": source},
            {
                "runId": cells[1]["run_id"],
                "metricKey": "length",
                "error": {"message": "boom"},
                "source": source,
            },
        ]
    }
    posted = (await post(gw, f"/experiments/{eid}/evaluation/scores", body, 201))["data"]
    assert [s["value"] for s in posted] == [1.0, 0.0, 12.5, None]
    assert posted[3]["error"] == {"type": "evaluator_error", "message": "boom"}
    metrics = {m.key: m.kind for m in await gw.state.stores.evaluation.list_metrics(None)}
    assert metrics == {"polite": "boolean", "length": "numeric"}
    # posted again: replaced
    await post(gw, f"/experiments/{eid}/evaluation/scores", body, 201)
    assert len(await scores(gw, eid)) == 4
    # a number under the boolean metric: an error row saying so, not a forced value
    mixed = {
        "scores": [
            {"runId": cells[0]["run_id"], "metricKey": "polite", "value": 0.5, "source": source}
        ]
    }
    stored = (await post(gw, f"/experiments/{eid}/evaluation/scores", mixed, 201))["data"][0]
    assert stored["value"] is None and stored["error"]["type"] == "metric_mismatch"
    for bad_body, param in (
        ({"scores": []}, "scores"),
        (
            {"scores": [{"runId": "exprun_x", "metricKey": "m", "value": 1, "source": source}]},
            "scores[0].runId",
        ),
        (
            {
                "scores": [
                    {"runId": cells[0]["run_id"], "metricKey": "m", "value": 1, "source": "human"}
                ]
            },
            "scores[0].source",
        ),
        (
            {
                "scores": [
                    {
                        "runId": cells[0]["run_id"],
                        "metricKey": "m",
                        "value": "high",
                        "source": source,
                    }
                ]
            },
            "scores[0].value",
        ),
    ):
        r = await gw.client.post(f"/experiments/{eid}/evaluation/scores", json=bad_body)
        assert r.status_code in (400, 404) and error_of(r)["param"] == param, r.text
    assert (
        await gw.client.get(f"/experiments/{eid}/evaluation/cells", params={"run": "mrun_x"})
    ).status_code == 404
    assert run_id


class SlowJudge:
    """Cells answered at once; each judge call holds its answer ``hold_s`` seconds,
    counting how many are in flight at once."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.in_flight = 0
        self.most = 0
        self.judged = 0

    async def verdict(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.hold_s)
        finally:
            self.in_flight -= 1
        self.judged += 1
        message = {"role": "assistant", "content": verdict_for(body)}
        yield orjson.dumps(
            {
                "id": "j",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        if body["messages"][0]["content"].startswith("Answer with a JSON object"):
            headers = {"content-type": "application/json"}
            return httpx.Response(200, headers=headers, content=self.verdict(body))
        return Upstream()(request)


async def test_judges_are_bounded_in_number_and_never_hold_up_the_run(
    make_gateway: GatewayFactory,
) -> None:
    judge = SlowJudge(hold_s=0.3)
    gw: Gateway = await make_gateway(FakeUpstream(handler=judge), judge_concurrency=2)
    exp = await create(gw, name="Many")
    eid = exp["id"]
    await post(
        gw, f"/experiments/{eid}/variants", {"name": "v", "config": {"model": "gpt-4o-mini"}}, 201
    )
    inputs = [
        {"key": f"k{i}", "content": f"Paris {i}", "expectedOutput": "Paris"} for i in range(6)
    ]
    await post(gw, f"/experiments/{eid}/inputs", {"inputs": inputs}, 201)
    await post(
        gw,
        f"/experiments/{eid}/evaluators",
        {"name": "j", "type": "llm_judge", "params": {"model": "gpt-4o"}},
        201,
    )
    await post(gw, f"/experiments/{eid}/run", {"concurrency": 6}, 202)
    await asyncio.wait_for(gw.state.experiments.matrix.wait(eid), 20)
    # the run has ended while its cells' judges still run (6 calls, 2 at a time, 0.3 s each)
    progress = (await gw.client.get(f"/experiments/{eid}/progress")).json()
    assert progress["status"] == "completed" and progress["completed"] == 6
    assert (await gw.client.get(f"/experiments/{eid}/evaluate")).json()["pending_cells"] > 0
    assert judge.judged < 6
    await asyncio.wait_for(gw.state.evaluation.wait(eid), 20)
    assert judge.judged == 6 and judge.most == 2
    assert [s.value for s in await scores(gw, eid)] == [1.0] * 6
    assert (await gw.client.get(f"/experiments/{eid}/evaluate")).json()["pending_cells"] == 0


def anthropic_or_chat(request: httpx.Request) -> httpx.Response:
    """The Anthropic provider answers a Messages tool_use; the OpenAI one a chat answer."""
    if request.url.host != "anthropic.test":
        return Upstream()(request)
    body = orjson.loads(request.content)
    return httpx.Response(
        200,
        json={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Oslo"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
    )


async def test_tool_calls_of_anthropic_cells_native_and_translated(
    make_gateway: GatewayFactory,
) -> None:
    gw: Gateway = await make_gateway(FakeUpstream(handler=anthropic_or_chat))
    eid = (await create(gw, name="Claude tools"))["id"]
    captured = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
    }
    item = {
        "key": "oslo",
        "operation": "messages",
        "request": captured,
        "expectedOutput": {"tool_calls": [{"name": "weather"}]},
    }
    await post(gw, f"/experiments/{eid}/inputs", {"inputs": [item]}, 201)
    # the input's own Messages call, and a chat template translated to the same provider
    await post(
        gw,
        f"/experiments/{eid}/variants",
        {"name": "native", "kind": "override", "config": {}},
        201,
    )
    chat_tools = [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    ]
    config = {"model": "claude-3-5-haiku-latest", "tools": chat_tools}
    await post(gw, f"/experiments/{eid}/variants", {"name": "chat", "config": config}, 201)
    base = f"/experiments/{eid}/evaluators"
    schema = {"type": "object", "required": ["city"]}
    await post(
        gw,
        base,
        {"name": "args", "type": "tool_arguments", "params": {"tool": "weather", "schema": schema}},
        201,
    )
    await post(gw, base, {"name": "order", "type": "tool_sequence"}, 201)
    await run_matrix(gw, eid)
    cells = (await gw.client.get(f"/experiments/{eid}")).json()["runs"]
    assert {c["status"] for c in cells} == {"completed"}, cells
    found = await scores(gw, eid)
    assert len(found) == 4
    assert all(s.value == 1.0 and s.error is None for s in found), [
        (s.metric_key, s.note) for s in found
    ]
    await gw.flush()
    data = (await gw.client.get(f"/experiments/{eid}/evaluation/cells")).json()["data"]
    assert [c["tool_calls"] for c in data] == [
        [{"name": "weather", "arguments": {"city": "Oslo"}, "arguments_text": '{"city":"Oslo"}'}]
    ] * 2


async def test_a_stopping_gateway_lets_pending_judges_finish(tmp_path: Path) -> None:
    judge = SlowJudge(hold_s=0.5)
    app = create_app(make_settings(tmp_path), transport=FakeUpstream(handler=judge).transport())
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://spanlab.test"
    )
    gw = Gateway(app, client, FakeUpstream())
    eid = await setup(gw)
    body = {"name": "j", "type": "llm_judge", "params": {"model": "gpt-4o"}}
    await post(gw, f"/experiments/{eid}/evaluators", body, 201)
    await post(gw, f"/experiments/{eid}/run", {}, 202)
    await asyncio.wait_for(gw.state.experiments.matrix.wait(eid), 20)
    assert judge.judged == 0  # the judges are still at work
    await client.aclose()
    await lifespan.__aexit__(None, None, None)
    with sqlite3.connect(tmp_path / "spanlab.db") as conn:
        values = sorted(row[0] for row in conn.execute("SELECT value FROM scores"))
    assert values == [0.0, 1.0] and judge.judged == 2


async def test_evaluator_scores_are_counted_and_announced_like_any_score(gw: Gateway) -> None:
    """Through the feedback slice's `ScoringService`: `spanlab_scores_created_total` by
    experiment and variant, and an `experiment.score.created` event each."""
    from prometheus_client.parser import text_string_to_metric_families

    eid = await setup(gw, tools=False)
    await post(gw, f"/experiments/{eid}/evaluators", {"name": "exact", "type": "exact_match"}, 201)
    await run_matrix(gw, eid)
    found = await scores(gw, eid)
    assert len(found) == 2
    page = (await gw.client.get("/metrics")).text
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "spanlab_scores_created_total" and sample.labels.get("experiment") == eid
    )
    assert counted == 2
    events = await gw.state.stores.events.list_events(type="experiment.score.created")
    assert sorted(e.payload["score"]["id"] for e in events) == sorted(s.id for s in found)
