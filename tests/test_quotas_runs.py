"""Quotas beyond the proxy path: playground calls and matrix runs are counted against
the key that started them (the run pauses on a limit and completes every cell after
the window), the counts hold across a restart, several gateways sharing a store add
up, and the official openai SDK sees a RateLimitError with the Retry-After."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.errors import QuotaExceeded
from gateway.quotas.ledger import KEY
from gateway.quotas.service import QuotaService
from tests.access_helpers import ADMIN_KEY, create_key
from tests.conftest import GatewayFactory, settings_mapping
from tests.fakes import chat_completion
from tests.quotas_helpers import ADMIN, T0, Clock, chat, clocked_gateway, limited_key, quotas_of


def _key_id(key: str) -> str:
    return key[len("slk_") :].split("_", 1)[0]


async def test_a_playground_call_is_counted_for_the_callers_key(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    key, _ = await limited_key(gw, "lab", ["write", "proxy"], rpm=2)
    headers = {"x-spanlab-key": key}
    body = {
        "models": ["gpt-4o-mini", "openai/gpt-4o"],
        "messages": [{"role": "user", "content": "hi"}],
    }
    answered = await gw.client.post("/playground/complete", json=body, headers=headers)
    assert answered.status_code == 200, answered.text
    assert [o["error"] for o in answered.json()["outputs"]] == [None, None]
    await gw.flush()
    usage = quotas_of(gw).usage(KEY, _key_id(key))
    assert usage["requests_this_minute"] == 2 and usage["tokens_today"] == 30
    # The key's rpm is spent by its two playground calls: its next proxy call waits.
    refused = await chat(gw, key)
    assert refused.status_code == 429
    again = await gw.client.post("/playground/complete", json=body, headers=headers)
    errors = [o["error"] for o in again.json()["outputs"]]
    assert all(e is not None and "2 requests per minute" in e["message"] for e in errors)


async def _matrix(gw: Any, headers: dict[str, str]) -> str:
    made = await gw.client.post(
        "/experiments", json={"name": "m", "kind": "matrix"}, headers=headers
    )
    assert made.status_code in (200, 201), made.text
    exp_id = str(made.json()["id"])
    for n in (1, 2):
        r = await gw.client.post(
            f"/experiments/{exp_id}/variants",
            json={"name": f"v{n}", "config": {"model": "gpt-4o-mini", "temperature": 0.1 * n}},
            headers=headers,
        )
        assert r.status_code == 201, r.text
    inputs = [{"key": f"q{i}", "content": f"question {i}"} for i in range(3)]
    r = await gw.client.post(
        f"/experiments/{exp_id}/inputs", json={"inputs": inputs}, headers=headers
    )
    assert r.status_code == 201, r.text
    return exp_id


async def test_a_matrix_run_pauses_on_rpm_and_completes_every_cell_after_the_window(
    make_gateway: GatewayFactory,
) -> None:
    gw, clock = await clocked_gateway(make_gateway)
    key, _ = await limited_key(gw, "runner", ["write", "proxy"], rpm=2)
    headers = {"x-spanlab-key": key}
    exp_id = await _matrix(gw, headers)
    matrix = gw.state.experiments.matrix
    waits: list[float] = []
    seen: list[dict[str, Any]] = []

    async def sleep(seconds: float) -> None:
        # The run's progress says what it waits on while it waits.
        progress = await gw.client.get(f"/experiments/{exp_id}/progress", headers=headers)
        seen.append(progress.json().get("waiting_on_limit"))
        waits.append(seconds)
        clock.now += seconds  # the window frees (no real minute passes)
        await asyncio.sleep(0)

    matrix.sleep = sleep
    started = await gw.client.post(
        f"/experiments/{exp_id}/run", json={"concurrency": 1}, headers=headers
    )
    assert started.status_code == 202, started.text
    await asyncio.wait_for(matrix.wait(exp_id), 20)
    progress = (await gw.client.get(f"/experiments/{exp_id}/progress", headers=headers)).json()
    assert progress["completed"] == 6 and progress["failed"] == 0, progress
    assert "waiting_on_limit" not in progress
    # 6 cells at 2 a minute: paused twice, each time until the next minute.
    assert waits == [30.0, 60.0]
    assert [s["limit"] for s in seen] == ["rpm", "rpm"]
    assert len(gw.upstream.requests) == 6  # refused attempts never went upstream
    metrics = (await gw.client.get("/metrics", headers=ADMIN)).text
    assert "spanlab_matrix_quota_waits_total 2.0" in metrics


async def test_a_cancel_stops_a_run_waiting_on_a_limit_at_once(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    key, _ = await limited_key(gw, "runner", ["write", "proxy"], rpm=1)
    headers = {"x-spanlab-key": key}
    exp_id = await _matrix(gw, headers)
    # The real sleep: the run would wait 30 s for the next minute.
    started = await gw.client.post(
        f"/experiments/{exp_id}/run", json={"concurrency": 1}, headers=headers
    )
    assert started.status_code == 202
    for _ in range(500):
        progress = (await gw.client.get(f"/experiments/{exp_id}/progress", headers=headers)).json()
        if progress.get("waiting_on_limit"):
            break
        await asyncio.sleep(0.01)
    assert progress["waiting_on_limit"]["limit"] == "rpm"
    loop = asyncio.get_running_loop()
    began = loop.time()
    cancelled = await gw.client.post(f"/experiments/{exp_id}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert loop.time() - began < 5
    assert cancelled.json()["completed"] == 1


async def test_counts_hold_across_a_restart(tmp_path: Path) -> None:
    settings = Settings.from_mapping(settings_mapping(tmp_path, admin_key=ADMIN_KEY))
    clock = Clock()

    async def gateway() -> tuple[httpx.AsyncClient, Any]:
        app = create_app(settings, transport=httpx.MockTransport(_answer))
        app.state.quotas.clock = clock  # before the start, which reads the stored counts
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://spanlab.test"
        )
        return client, lifespan

    client, lifespan = await gateway()
    made = await client.post(
        "/keys", json={"name": "ci-bot", "scopes": ["proxy"], "rpm": 2}, headers=ADMIN
    )
    key = made.json()["key"]
    for _ in range(2):
        r = await client.post("/v1/chat/completions", json=_CHAT, headers={"x-spanlab-key": key})
        assert r.status_code == 200
    await client.aclose()
    await lifespan.__aexit__(None, None, None)  # stores what is counted in memory

    client, lifespan = await gateway()
    try:
        again = await client.post(
            "/v1/chat/completions", json=_CHAT, headers={"x-spanlab-key": key}
        )
        assert again.status_code == 429, again.text
        clock.now += 30
        passed = await client.post(
            "/v1/chat/completions", json=_CHAT, headers={"x-spanlab-key": key}
        )
        assert passed.status_code == 200
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=chat_completion())


async def test_two_gateways_sharing_a_store_add_up(make_gateway: GatewayFactory) -> None:
    """Two services over one database (as several processes would share one): each
    adds its counts with an upsert and reads the totals back."""
    gw, clock = await clocked_gateway(make_gateway)
    _, created = await limited_key(gw, rpm=5)
    database = gw.state.stores.database
    one, two = quotas_of(gw), QuotaService(gw.state.settings, clock)
    await two.open(database)
    try:
        await one.flush()
        for _ in range(2):
            one.admit(created["id"], None, "chat")
        for _ in range(2):
            two.admit(created["id"], None, "chat")
        await one.flush()
        await two.flush()
        await one.flush()
        assert one.usage(KEY, created["id"])["requests_this_minute"] == 4
        assert two.usage(KEY, created["id"])["requests_this_minute"] == 4
        two.admit(created["id"], None, "chat")  # the fifth, in the other process
        await two.flush()
        await one.flush()
        with pytest.raises(QuotaExceeded) as refused:
            one.admit(created["id"], None, "chat")
        assert refused.value.limit == "rpm" and refused.value.retry_after == 30
    finally:
        await two.close()


async def test_the_openai_sdk_sees_a_rate_limit_error_with_retry_after(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    key, _ = await limited_key(gw, rpm=1)
    sdk = openai.AsyncOpenAI(
        api_key=key,  # the gateway key as the bearer (the provider key is the gateway's)
        base_url="http://spanlab.test/v1",
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app)),
        max_retries=0,
    )
    first = await sdk.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert first.choices[0].message.content
    with pytest.raises(openai.RateLimitError) as refused:
        await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 429
    assert refused.value.response.headers["retry-after"] == "30"
    assert refused.value.code == "rate_limit_exceeded"
    assert "1 requests per minute" in refused.value.message
    assert T0 % 60 == 30
    await sdk.close()


async def test_project_limits_are_set_on_the_default_project_too(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    r = await gw.client.patch("/projects/default", json={"rpm": 1}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["limits"]["rpm"] == 1
    key = (await create_key(gw, "k", ["proxy"]))["key"]
    assert (await chat(gw, key)).status_code == 200
    refused = await chat(gw, key)
    assert "project 'Default project'" in refused.json()["error"]["message"]


async def test_a_single_replay_is_counted_for_the_key_that_ran_it(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    key, created = await limited_key(gw, "replayer", ["write", "proxy"], rpm=2)
    headers = {"x-spanlab-key": key}
    answered = await chat(gw, key)
    span_id = answered.headers["x-spanlab-span-id"]
    await gw.flush()
    made = await gw.client.post(
        "/experiments", json={"name": "again", "original_span_id": span_id}, headers=headers
    )
    assert made.status_code == 201, made.text
    exp_id = made.json()["id"]
    ran = await gw.client.post(f"/experiments/{exp_id}/run", headers=headers)
    assert ran.status_code == 200 and ran.json()["status"] == "completed", ran.text
    assert quotas_of(gw).usage(KEY, created["id"])["requests_this_minute"] == 2
    refused = await gw.client.post(f"/experiments/{exp_id}/run", headers=headers)
    assert refused.json()["status"] == "failed"
    assert "2 requests per minute" in refused.json()["error"]["message"]
