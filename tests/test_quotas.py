"""Quotas on the proxy path: exact counts at each limit's boundary (with an injectable
clock, never a real minute), the 429's shape, Retry-After and message, project limits
over all its keys, concurrency (rpm exact; budgets passed by at most the calls in
flight), a stream that crosses a budget, the Anthropic surface, keys off."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway.quotas.service import QUOTA_EVENT
from tests.access_helpers import ADMIN_KEY, create_key
from tests.conftest import GatewayFactory
from tests.fakes import FakeUpstream, chat_chunks, chat_completion, sse, stream_response
from tests.quotas_helpers import ADMIN, CHAT, T0, chat, clocked_gateway, limited_key, quotas_of
from tests.sql_helpers import make_gateway_on_each_backend

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL

# Every fake answer: 12 prompt + 3 completion tokens of gpt-4o-mini ($0.15/$0.60 per M).
TOKENS = 15
COST = 12 * 0.15e-6 + 3 * 0.6e-6


async def test_rpm_boundary_exact_then_the_next_window_passes(make_gateway: GatewayFactory) -> None:
    gw, clock = await clocked_gateway(make_gateway)
    key, created = await limited_key(gw, rpm=3)
    assert created["limits"]["rpm"] == 3
    for _ in range(3):
        assert (await chat(gw, key)).status_code == 200
    refused = await chat(gw, key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    # 10:00:30: the minute frees in 30 s.
    assert refused.headers["retry-after"] == "30"
    assert error == {
        "message": "key 'ci-bot' reached its limit of 3 requests per minute; retry in 30 s",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
        "param": "rpm",
    }
    assert len(gw.upstream.requests) == 3  # the refused call never went upstream
    clock.now += 29.5
    assert (await chat(gw, key)).status_code == 429
    clock.now += 0.5  # 10:01:00, the next window
    assert (await chat(gw, key)).status_code == 200
    assert len(gw.upstream.requests) == 4


async def test_tokens_per_day_boundary(make_gateway: GatewayFactory) -> None:
    gw, clock = await clocked_gateway(make_gateway)
    key, _ = await limited_key(gw, tokens_per_day=2 * TOKENS)
    assert (await chat(gw, key)).status_code == 200
    await gw.flush()  # the tokens are counted when the writer has derived the usage
    assert (await chat(gw, key)).status_code == 200
    await gw.flush()
    refused = await chat(gw, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert refused.json()["error"]["param"] == "tokens_per_day"
    # 10:00:30 to the next UTC midnight
    assert int(refused.headers["retry-after"]) == 14 * 3600 - 30
    assert "reached its limit of 30 tokens per day" in refused.json()["error"]["message"]
    clock.now = T0 + 14 * 3600 - 30  # midnight
    assert (await chat(gw, key)).status_code == 200


async def test_usd_per_day_boundary(make_gateway: GatewayFactory) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    # Room for two calls and part of a third: the third passes (the budget is not yet
    # reached when it starts), the fourth is refused.
    key, _ = await limited_key(gw, usd_per_day=2.5 * COST)
    for _ in range(3):
        assert (await chat(gw, key)).status_code == 200
        await gw.flush()
    refused = await chat(gw, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["param"] == "usd_per_day"
    usage = (await gw.client.get("/keys", headers=ADMIN)).json()["data"]
    mine = next(k for k in usage if k["name"] == "ci-bot")
    assert mine["usage"]["usd_today"] == pytest.approx(3 * COST)
    assert mine["usage"]["tokens_today"] == 3 * TOKENS
    assert mine["usage"]["requests_today"] == 3


async def test_usd_per_month_names_the_month(make_gateway: GatewayFactory) -> None:
    gw, clock = await clocked_gateway(make_gateway)
    key, _ = await limited_key(gw, usd_per_month=COST / 2)
    assert (await chat(gw, key)).status_code == 200
    await gw.flush()
    refused = await chat(gw, key)
    assert refused.json()["error"]["param"] == "usd_per_month"
    clock.now += 86_400  # the next day is the same month: still refused
    assert (await chat(gw, key)).status_code == 429
    clock.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert (await chat(gw, key)).status_code == 200


async def test_a_project_limit_holds_over_all_its_keys(make_gateway: GatewayFactory) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    made = await gw.client.post("/projects", json={"id": "team-a", "rpm": 3}, headers=ADMIN)
    assert made.status_code == 201, made.text
    assert made.json()["limits"]["rpm"] == 3
    first = (await create_key(gw, "a1", ["proxy"], project_id="team-a"))["key"]
    second = (await create_key(gw, "a2", ["proxy"], project_id="team-a"))["key"]
    other = (await create_key(gw, "b1", ["proxy"]))["key"]
    assert (await chat(gw, first)).status_code == 200
    assert (await chat(gw, second)).status_code == 200
    assert (await chat(gw, first)).status_code == 200
    refused = await chat(gw, second)
    assert refused.status_code == 429
    assert refused.json()["error"]["message"].startswith(
        "project 'team-a' reached its limit of 3 requests per minute"
    )
    assert (await chat(gw, other)).status_code == 200  # another project's key is not held


async def test_twenty_at_once_against_rpm_ten_exactly_ten_pass(
    make_gateway: GatewayFactory,
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # all twenty are in flight together
        return httpx.Response(200, json=chat_completion())

    gw, _ = await clocked_gateway(make_gateway, upstream=FakeUpstream(async_handler=slow))
    key, _ = await limited_key(gw, rpm=10)
    answers = await asyncio.gather(*(chat(gw, key) for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [429] * 10


async def test_a_budget_is_passed_by_at_most_the_calls_in_flight(
    make_gateway: GatewayFactory,
) -> None:
    release, arrived = asyncio.Event(), asyncio.Event()
    held_calls = 0

    async def held(request: httpx.Request) -> httpx.Response:
        nonlocal held_calls
        held_calls += 1
        if held_calls == 5:
            arrived.set()
        await release.wait()
        return httpx.Response(200, json=chat_completion())

    gw, _ = await clocked_gateway(make_gateway, upstream=FakeUpstream(async_handler=held))
    key, _ = await limited_key(gw, tokens_per_day=TOKENS)  # one call's worth
    in_flight = [asyncio.create_task(chat(gw, key)) for _ in range(5)]
    await asyncio.wait_for(arrived.wait(), 10)
    release.set()
    assert [r.status_code for r in await asyncio.gather(*in_flight)] == [200] * 5
    await gw.flush()
    used = quotas_of(gw).usage("key", _key_id(key))["tokens_today"]
    # All five were admitted before any had ended: the budget (one call's tokens) is
    # passed by the calls that were in flight, and no more.
    assert used == 5 * TOKENS
    assert (await chat(gw, key)).status_code == 429


def _key_id(key: str) -> str:
    return key[len("slk_") :].split("_", 1)[0]


async def test_a_stream_crossing_its_budget_completes_and_the_next_is_refused(
    make_gateway: GatewayFactory,
) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 300, "total_tokens": 312}
    events = sse(chat_chunks([f"piece {i} " for i in range(40)], usage=usage))
    gw, _ = await clocked_gateway(
        make_gateway, upstream=FakeUpstream(handler=lambda _: stream_response(events))
    )
    key, _ = await limited_key(gw, tokens_per_day=100)
    async with gw.client.stream(
        "POST",
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        headers={"x-spanlab-key": key},
    ) as response:
        assert response.status_code == 200
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert body == b"".join(events)  # whole, byte for byte: never cut for the budget
    await gw.flush()
    refused = await chat(gw, key, stream=True)
    assert refused.status_code == 429
    assert "312" not in refused.text and "100 tokens per day" in refused.text


async def test_the_anthropic_surface_answers_in_its_own_shape(make_gateway: GatewayFactory) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    key, _ = await limited_key(gw, rpm=1)
    body = {
        "model": "anthropic/claude-3-5-haiku-latest",
        "max_tokens": 5,
        "messages": CHAT["messages"],
    }
    headers = {"x-spanlab-key": key, "x-api-key": "sk-ant-client"}
    await gw.client.post("/v1/messages", json=body, headers=headers)
    refused = await gw.client.post("/v1/messages", json=body, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert refused.json() == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "key 'ci-bot' reached its limit of 1 requests per minute; retry in 30 s",
        },
    }


async def test_refusals_are_audited_rate_limited_and_counted(make_gateway: GatewayFactory) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    key, created = await limited_key(gw, rpm=1)
    await chat(gw, key)
    for _ in range(25):
        assert (await chat(gw, key)).status_code == 429
    await quotas_of(gw).flush()
    events = (
        await gw.client.get("/audit", params={"type": QUOTA_EVENT, "limit": 100}, headers=ADMIN)
    ).json()["data"]
    assert len(events) == 20  # EVENTS_PER_WINDOW per subject and minute, the rest counted
    assert {e["payload"]["limit"] for e in events} == {"rpm"}
    assert {e["subject_id"] for e in events} == {created["id"]}
    metrics = (await gw.client.get("/metrics", headers=ADMIN)).text
    assert 'spanlab_quota_refusals_total{limit="rpm"} 25.0' in metrics


async def test_limits_are_changed_with_patch_and_bad_ones_are_a_400(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    key, created = await limited_key(gw)
    assert created["limits"] == {
        "rpm": None,
        "tokens_per_day": None,
        "usd_per_day": None,
        "usd_per_month": None,
    }
    patched = await gw.client.patch(f"/keys/{created['id']}", json={"rpm": 1}, headers=ADMIN)
    assert patched.status_code == 200 and patched.json()["limits"]["rpm"] == 1
    assert (await chat(gw, key)).status_code == 200
    assert (await chat(gw, key)).status_code == 429
    cleared = await gw.client.patch(f"/keys/{created['id']}", json={"rpm": None}, headers=ADMIN)
    assert cleared.json()["limits"]["rpm"] is None
    assert (await chat(gw, key)).status_code == 200
    for bad in ({"rpm": -1}, {"rpm": 1.5}, {"usd_per_day": "lots"}, {"limits": {"rps": 3}}, {}):
        r = await gw.client.patch(f"/keys/{created['id']}", json=bad, headers=ADMIN)
        assert r.status_code == 400, (bad, r.text)
    bad_create = await gw.client.post(
        "/keys", json={"name": "x", "scopes": ["proxy"], "rpm": True}, headers=ADMIN
    )
    assert bad_create.status_code == 400
    names = [k["name"] for k in (await gw.client.get("/keys", headers=ADMIN)).json()["data"]]
    assert "x" not in names  # nothing was written for a refused create


async def test_keys_off_nothing_is_counted_or_refused(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(quota_default_rpm=1)
    for _ in range(3):
        assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert quotas_of(gw).ledger.subjects == {}


async def test_default_limits_apply_to_keys_without_their_own(make_gateway: GatewayFactory) -> None:
    gw, _ = await clocked_gateway(make_gateway, quota_default_rpm=2)
    plain, _ = await limited_key(gw, "plain")
    own, _ = await limited_key(gw, "own", rpm=5)
    assert [(await chat(gw, plain)).status_code for _ in range(3)] == [200, 200, 429]
    assert [(await chat(gw, own)).status_code for _ in range(3)] == [200, 200, 200]
    # The admin key of the settings is the operator's: no default limit.
    assert [(await chat(gw, ADMIN_KEY)).status_code for _ in range(3)] == [200] * 3
