"""Comparison: the diff functions, and GET /experiments/{id}/compare checked against
the two spans it compares."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import orjson
import pytest

from gateway.experiments.diffing import (
    compare_tool_calls,
    json_changes,
    metric,
    tool_calls,
    unified_diff,
    word_diff,
)
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT, capture, create, error_of, run
from tests.fakes import FakeUpstream

TEXTS = [
    ("", ""),
    ("", "new text"),
    ("old text", ""),
    ("The cat sat on the mat.", "The dog sat on the mat!"),
    ("line one\nline two\nline three", "line one\nline 2\nline three\nline four"),
    ("naïve café — déjà vu", "naive cafe - deja vu"),
    ("a  b\t c", "a b c"),
]


@pytest.mark.parametrize(("a", "b"), TEXTS)
def test_word_diff_rebuilds_both_texts(a: str, b: str) -> None:
    ops = word_diff(a, b)
    assert "".join(p["text"] for p in ops if p["op"] != "insert") == a
    assert "".join(p["text"] for p in ops if p["op"] != "delete") == b
    assert all(p["text"] for p in ops)
    assert all(x["op"] != y["op"] for x, y in itertools.pairwise(ops))


def test_word_diff_is_word_level() -> None:
    assert word_diff("The cat sat.", "The dog sat.") == [
        {"op": "equal", "text": "The "},
        {"op": "delete", "text": "cat"},
        {"op": "insert", "text": "dog"},
        {"op": "equal", "text": " sat."},
    ]


def test_unified_diff() -> None:
    assert unified_diff("same", "same") == ""
    diff = unified_diff("a\nb\nc", "a\nB\nc")
    assert diff.splitlines() == [
        "--- original",
        "+++ result",
        "@@ -1,3 +1,3 @@",
        " a",
        "-b",
        "+B",
        " c",
    ]


def test_metric_delta_and_percent() -> None:
    assert metric(10, 15) == {"original": 10, "result": 15, "delta": 5, "percent_change": 50.0}
    assert metric(3, 2)["percent_change"] == -33.33
    assert metric(0, 5) == {"original": 0, "result": 5, "delta": 5, "percent_change": None}
    assert metric(None, 5)["delta"] is None and metric(5, None)["percent_change"] is None
    assert metric(0.1, 0.3)["delta"] == 0.2  # no float subtraction noise


def test_tool_calls_in_every_dialect() -> None:
    chat = {
        "choices": [
            {
                "message": {
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "f", "arguments": '{"x": 1}'}},
                        {"id": "c2", "function": {"name": "g", "arguments": "{broken"}},
                    ]
                }
            }
        ]
    }
    assert tool_calls(chat) == [
        {"id": "c1", "name": "f", "arguments": {"x": 1}},
        {"id": "c2", "name": "g", "arguments": "{broken"},
    ]
    responses = {
        "output": [{"type": "function_call", "call_id": "r1", "name": "f", "arguments": "{}"}]
    }
    assert tool_calls(responses) == [{"id": "r1", "name": "f", "arguments": {}}]
    anthropic = {
        "type": "message",
        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"y": 2}}],
    }
    assert tool_calls(anthropic) == [{"id": "t1", "name": "f", "arguments": {"y": 2}}]
    assert tool_calls(None) == [] and tool_calls({"choices": []}) == []


def test_tool_call_comparison() -> None:
    a = [{"id": "1", "name": "search", "arguments": {"q": "cats", "n": 3, "opts": {"a": 1}}}]
    b = [
        {"id": "9", "name": "search", "arguments": {"q": "dogs", "n": 3, "opts": {"b": 2}}},
        {"id": "10", "name": "open", "arguments": {}},
    ]
    out = compare_tool_calls(a, b)
    assert out["identical"] is False
    first, second = out["pairs"]
    assert first["op"] == "changed" and first["name_changed"] is False
    assert first["arguments_changes"] == [
        {"path": "opts.a", "op": "removed", "original": 1, "result": None},
        {"path": "opts.b", "op": "added", "original": None, "result": 2},
        {"path": "q", "op": "changed", "original": "cats", "result": "dogs"},
    ]
    assert '-  "q": "cats"' in first["arguments_diff"]
    assert second["op"] == "added" and second["original"] is None
    same = compare_tool_calls(a, [{**a[0], "id": "other"}])
    assert same["identical"] is True and same["pairs"][0]["op"] == "equal"
    assert json_changes([1, 2], [1]) == [
        {"path": "[1]", "op": "removed", "original": 2, "result": None}
    ]
    assert json_changes(1, 1.0) == [{"path": "", "op": "changed", "original": 1, "result": 1.0}]


def varying(request: httpx.Request) -> httpx.Response:
    """Answers that differ with the temperature: text, tokens, finish reason, tools."""
    body = orjson.loads(request.content)
    hot = body.get("temperature", 1) > 1
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "The dog sat on the mat!" if hot else "The cat sat on the mat.",
    }
    finish = "length" if hot else "stop"
    if body.get("tools"):
        arguments = {"query": "dogs" if hot else "cats", "limit": 3}
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "search", "arguments": orjson.dumps(arguments).decode()},
            }
        ]
        finish = "tool_calls"
    usage = {"prompt_tokens": 20, "completion_tokens": 9 if hot else 6}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    model = "gpt-4o-2024-08-06" if body["model"] == "gpt-4o" else "gpt-4o-mini-2024-07-18"
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        },
    )


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=varying))
    return gateway


def expected_metric(a: Any, b: Any) -> dict[str, Any]:
    delta = None if a is None or b is None else b - a
    percent = None if delta is None or not a else round(delta / a * 100, 2)
    return {"original": a, "result": b, "delta": delta, "percent_change": percent}


async def test_compare_numbers_match_the_two_spans(gw: Gateway) -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    original = await capture(gw, {**CHAT, "tools": tools})
    exp = await create(
        gw,
        original_span_id=original["span_id"],
        model_parameters={"temperature": 1.8, "model": "gpt-4o"},
    )
    done = await run(gw, exp["id"])
    r = await gw.client.get(f"/experiments/{exp['id']}/compare")
    assert r.status_code == 200, r.text
    cmp = r.json()
    result = await gw.span(done["result_span_id"])
    assert cmp["experiment_id"] == exp["id"] and cmp["run_id"] == done["id"]
    assert cmp["original"]["span_id"] == original["span_id"]
    assert cmp["result"]["span_id"] == result["span_id"]

    pairs = [
        ("prompt_tokens", original["usage"]["prompt_tokens"], result["usage"]["prompt_tokens"]),
        (
            "completion_tokens",
            original["usage"]["completion_tokens"],
            result["usage"]["completion_tokens"],
        ),
        ("total_tokens", original["usage"]["total_tokens"], result["usage"]["total_tokens"]),
        ("cost_usd", original["cost_usd"], result["cost_usd"]),
        ("latency_ms", original["duration_ms"], result["duration_ms"]),
        ("ttft_ms", original["ttft_ms"], result["ttft_ms"]),
    ]
    for name, a, b in pairs:
        got = cmp["metrics"][name]
        want = expected_metric(a, b)
        assert got["original"] == want["original"] and got["result"] == want["result"], name
        if want["delta"] is None:
            assert got["delta"] is None and got["percent_change"] is None, name
        else:
            assert got["delta"] == pytest.approx(want["delta"], abs=1e-9), name
            assert got["percent_change"] == want["percent_change"], name
    assert cmp["metrics"]["completion_tokens"] == {
        "original": 6,
        "result": 9,
        "delta": 3,
        "percent_change": 50.0,
    }
    # Different models, different prices: a real cost delta.
    assert original["cost_usd"] and result["cost_usd"] and cmp["metrics"]["cost_usd"]["delta"] > 0

    assert cmp["finish_reason"] == {
        "original": "tool_calls",
        "result": "tool_calls",
        "changed": False,
    }
    assert cmp["model"] == {
        "original": "gpt-4o-mini-2024-07-18",
        "result": "gpt-4o-2024-08-06",
        "changed": True,
    }
    calls = cmp["tool_calls"]
    assert calls["original"] == [
        {"id": "call_1", "name": "search", "arguments": {"query": "cats", "limit": 3}}
    ]
    assert calls["result"][0]["arguments"] == {"query": "dogs", "limit": 3}
    assert calls["pairs"][0]["arguments_changes"] == [
        {"path": "query", "op": "changed", "original": "cats", "result": "dogs"}
    ]
    output = cmp["output"]
    assert output["original"] == original["output_text"] == "The cat sat on the mat."
    assert output["result"] == result["output_text"] == "The dog sat on the mat!"
    assert output["identical"] is False and 0 < output["similarity"] < 1
    assert {"op": "insert", "text": "dog"} in output["word_diff"]
    assert output["unified_diff"].splitlines()[2:] == [
        "@@ -1 +1 @@",
        "-The cat sat on the mat.",
        "+The dog sat on the mat!",
    ]


async def test_compare_a_chosen_run(gw: Gateway) -> None:
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    cold = await run(gw, exp["id"])
    await gw.client.put(f"/experiments/{exp['id']}", json={"model_parameters": {"temperature": 2}})
    hot = await run(gw, exp["id"])
    latest = (await gw.client.get(f"/experiments/{exp['id']}/compare")).json()
    assert latest["run_id"] == hot["id"] and latest["output"]["identical"] is False
    chosen = (await gw.client.get(f"/experiments/{exp['id']}/compare?run={cold['id']}")).json()
    assert chosen["run_id"] == cold["id"] and chosen["result"]["span_id"] == cold["result_span_id"]
    assert chosen["output"]["identical"] is True
    assert chosen["output"]["word_diff"] == [{"op": "equal", "text": "The cat sat on the mat."}]
    assert chosen["finish_reason"]["changed"] is False
    assert latest["finish_reason"] == {"original": "stop", "result": "length", "changed": True}


async def test_compare_errors(gw: Gateway) -> None:
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    r = await gw.client.get(f"/experiments/{exp['id']}/compare")
    assert r.status_code == 409 and error_of(r)["code"] == "not_run"
    assert (await gw.client.get("/experiments/exp_nope/compare")).status_code == 404
    await run(gw, exp["id"])
    r = await gw.client.get(f"/experiments/{exp['id']}/compare?run=exprun_nope")
    assert r.status_code == 404 and error_of(r)["param"] == "run"
    other = await create(gw, original_span_id=original["span_id"])
    other_run = await run(gw, other["id"])
    r = await gw.client.get(f"/experiments/{exp['id']}/compare?run={other_run['id']}")
    assert r.status_code == 404  # a run of another experiment

    seedlike = await create(
        gw,
        original_span_id="not_captured",
        original_trace_id="t",
        original_request=CHAT,
    )
    await run(gw, seedlike["id"])
    r = await gw.client.get(f"/experiments/{seedlike['id']}/compare")
    assert r.status_code == 404 and "original span" in error_of(r)["message"]
