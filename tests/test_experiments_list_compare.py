"""Issue 11, the experiment page's backend: `GET /experiments` items carry their latest
run with its deltas against the original (one query per page, not one per row), an
unnamed experiment gets a name that tells it apart, compare takes any two runs
(``?base=&run=``) and says what changed in the request, and a refused run (a missing
provider key) leaves nothing behind."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from gateway.experiments.naming import default_name, first_words, prompt_text
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT, capture, create, error_of, run
from tests.fakes import FakeUpstream


def answer(request: httpx.Request) -> httpx.Response:
    """Longer answers at higher temperatures: runs differ in tokens (and so cost)."""
    body = orjson.loads(request.content)
    words = 3 + int(10 * float(body.get("temperature") or 0))
    usage = {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words}
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(["word"] * words)},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        },
    )


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=answer))
    return gateway


async def listed(gw: Gateway, **params: Any) -> list[dict[str, Any]]:
    r = await gw.client.get("/experiments", params={"include": "latest_run", **params})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["data"]
    return items


async def test_the_list_carries_each_latest_run_and_its_deltas(gw: Gateway) -> None:
    original = await capture(gw)
    never_run = await create(gw, original_span_id=original["span_id"])
    exp = await create(gw, original_span_id=original["span_id"])
    await run(gw, exp["id"])
    await gw.client.put(
        f"/experiments/{exp['id']}", json={"model_parameters": {"temperature": 1.5}}
    )
    latest = await run(gw, exp["id"])
    result = await gw.span(latest["result_span_id"])

    items = {item["id"]: item for item in await listed(gw)}
    assert items[never_run["id"]]["latest_run"] is None
    summary = items[exp["id"]]["latest_run"]
    assert summary["id"] == latest["id"] and summary["status"] == "completed"
    assert summary["result_span_id"] == result["span_id"]
    assert summary["total_tokens"] == {
        "original": original["usage"]["total_tokens"],
        "result": result["usage"]["total_tokens"],
        "delta": result["usage"]["total_tokens"] - original["usage"]["total_tokens"],
    }
    assert result["usage"]["total_tokens"] != original["usage"]["total_tokens"]
    latency = summary["latency_ms"]
    assert latency["original"] == original["duration_ms"]
    assert latency["result"] == result["duration_ms"]
    assert latency["delta"] == pytest.approx(result["duration_ms"] - original["duration_ms"])
    cost = summary["cost_usd"]
    assert cost["original"] == original["cost_usd"] and cost["result"] == result["cost_usd"]
    assert cost["delta"] == pytest.approx(result["cost_usd"] - original["cost_usd"])
    # opt-in: without include, items are the experiments exactly (the seed's shape)
    plain = (await gw.client.get("/experiments")).json()["data"]
    assert all("latest_run" not in item for item in plain)
    assert "latest_run" not in (await gw.client.get(f"/experiments/{exp['id']}")).json()
    r = await gw.client.get("/experiments?include=everything")
    assert r.status_code == 400 and error_of(r)["param"] == "include"
    by_span = (
        await gw.client.get(f"/experiments/by-span/{original['span_id']}?include=latest_run")
    ).json()
    assert {e["id"]: e["latest_run"] and e["latest_run"]["id"] for e in by_span["data"]} == {
        never_run["id"]: None,
        exp["id"]: latest["id"],
    }


async def test_the_list_asks_the_database_the_same_number_of_times_for_any_page(
    gw: Gateway,
) -> None:
    original = await capture(gw)
    db = gw.state.stores.database
    queries: list[str] = []
    fetch = db.fetch

    async def counting(sql: str, params: Any = ()) -> Any:
        queries.append(sql)
        return await fetch(sql, params)

    db.fetch = counting
    counts = []
    for _ in range(2):
        for _ in range(3):
            exp = await create(gw, original_span_id=original["span_id"])
            await run(gw, exp["id"])
        queries.clear()
        items = await listed(gw)
        assert all(item["latest_run"] is not None for item in items)
        counts.append((len(items), len(queries)))
    assert counts[0][0] == 3 and counts[1][0] == 6
    assert counts[0][1] == counts[1][1] <= 2, counts  # the page, then its latest runs


async def test_an_unnamed_experiment_is_named_by_its_first_words_model_and_time(
    gw: Gateway,
) -> None:
    one = await capture(
        gw,
        {
            **CHAT,
            "messages": [
                {"role": "user", "content": "Translate this short note into French please now"}
            ],
        },
    )
    two = await capture(
        gw,
        {
            **CHAT,
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Summarise the meeting"},
            ],
        },
    )
    a = await create(gw, original_span_id=one["span_id"])
    b = await create(gw, original_span_id=two["span_id"])
    stamp = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
    assert re.fullmatch(
        "Translate this short note into French\u2026 \u00b7 gpt-4o-mini \u00b7 " + stamp, a["name"]
    ), a["name"]
    assert re.fullmatch("Summarise the meeting \u00b7 gpt-4o \u00b7 " + stamp, b["name"])
    named = await create(gw, original_span_id=one["span_id"], name="Mine")
    assert named["name"] == "Mine"
    blank = await create(gw, original_span_id=one["span_id"], name="")
    assert blank["name"].startswith("Translate this")


def test_naming_pieces() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    parts = [{"type": "text", "text": "Look at"}, {"type": "image_url", "image_url": {}}]
    request = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    assert prompt_text(request) == "Look at"
    assert default_name(request, None, at) == "Look at \u00b7 m \u00b7 2026-01-02 03:04:05"
    assert prompt_text({"input": "Responses input"}) == "Responses input"
    assert default_name({}, None, at) == "2026-01-02 03:04:05"
    assert first_words("x" * 100) == "x" * 39 + "\u2026"


async def test_compare_any_two_runs(gw: Gateway) -> None:
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    cold = await run(gw, exp["id"])
    await gw.client.put(
        f"/experiments/{exp['id']}",
        json={"model_parameters": {"temperature": 1.2, "model": "gpt-4o"}},
    )
    hot = await run(gw, exp["id"])
    r = await gw.client.get(
        f"/experiments/{exp['id']}/compare", params={"base": cold["id"], "run": hot["id"]}
    )
    assert r.status_code == 200, r.text
    cmp = r.json()
    assert cmp["base_run_id"] == cold["id"] and cmp["run_id"] == hot["id"]
    assert cmp["original"]["span_id"] == cold["result_span_id"]
    assert cmp["result"]["span_id"] == hot["result_span_id"]
    cold_span = await gw.span(cold["result_span_id"])
    hot_span = await gw.span(hot["result_span_id"])
    assert (
        cmp["metrics"]["completion_tokens"]["original"] == (cold_span["usage"]["completion_tokens"])
    )
    assert cmp["metrics"]["completion_tokens"]["result"] == hot_span["usage"]["completion_tokens"]
    changes = {c["path"]: c for c in cmp["request"]["changes"]}
    assert changes["temperature"]["original"] == CHAT["temperature"]
    assert changes["temperature"]["result"] == 1.2
    assert changes["model"]["result"] == "gpt-4o"
    assert "messages[1].content" not in changes
    assert cmp["request"]["original"] == cold["request"]

    # without base: the original call, and the original's request
    plain = (await gw.client.get(f"/experiments/{exp['id']}/compare?run={cold['id']}")).json()
    assert plain["base_run_id"] is None
    assert plain["original"]["span_id"] == original["span_id"]
    assert plain["request"]["original"] == exp["original_request"]
    assert plain["request"]["changes"] == []  # the first run sent the original as it was


async def test_compare_refuses_bad_run_ids(gw: Gateway) -> None:
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    other = await create(gw, original_span_id=original["span_id"])
    done = await run(gw, exp["id"])
    foreign = await run(gw, other["id"])
    url = f"/experiments/{exp['id']}/compare"
    for params, param in (
        ({"base": "exprun_nope", "run": done["id"]}, "base"),
        ({"base": foreign["id"], "run": done["id"]}, "base"),
        ({"base": done["id"], "run": "exprun_nope"}, "run"),
        ({"base": done["id"], "run": foreign["id"]}, "run"),
    ):
        r = await gw.client.get(url, params=params)
        assert r.status_code == 404, (params, r.text)
        assert error_of(r)["param"] == param
    same = await gw.client.get(url, params={"base": done["id"], "run": done["id"]})
    assert same.status_code == 200 and same.json()["output"]["identical"] is True


async def test_a_run_without_a_provider_key_is_refused_and_leaves_nothing(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLAB_LIST_TEST_KEY", "sk-present")
    gw = await make_gateway(
        FakeUpstream(handler=answer),
        providers={
            "openai": {
                "kind": "openai",
                "base_url": "http://upstream.test/v1",
                "api_key_env": "SPANLAB_LIST_TEST_KEY",
            }
        },
    )
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    history = (await gw.client.get(f"/experiments/{exp['id']}/history")).json()["data"]
    monkeypatch.delenv("SPANLAB_LIST_TEST_KEY")
    calls = len(gw.upstream.requests)
    for suffix in ("", "?stream=true"):
        r = await gw.client.post(f"/experiments/{exp['id']}/run{suffix}")
        assert r.status_code == 400 and error_of(r)["code"] == "missing_credential"
    assert len(gw.upstream.requests) == calls
    assert (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"] == []
    assert (await gw.client.get(f"/experiments/{exp['id']}")).json() == exp
    assert (await gw.client.get(f"/experiments/{exp['id']}/history")).json()["data"] == history
    assert (await listed(gw))[0]["latest_run"] is None
