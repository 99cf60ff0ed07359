"""Quotas against a real ``spanlab serve`` and the loopback upstream: a key's limits
are counted in the store, so after a restart on the same database the key is still
refused (rpm and a spent token budget); the official openai SDK sees a 429
RateLimitError with the Retry-After header."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

from tests.e2e.conftest import StartGateway

pytestmark = pytest.mark.e2e

ADMIN_KEY = "admin-quotas-" + uuid.uuid4().hex
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count me"}]}


def _key(url: str, name: str, **limits: object) -> str:
    made = httpx.post(
        url + "/keys",
        json={"name": name, "scopes": ["proxy"], **limits},
        headers={"x-spanlab-key": ADMIN_KEY},
    )
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


def _call(url: str, key: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"x-spanlab-key": key})


def test_limits_hold_across_a_restart_and_the_sdk_sees_rate_limit_errors(
    start_gateway: StartGateway,
) -> None:
    # The rpm part must not straddle a minute: start early in one.
    if time.time() % 60 > 35:
        time.sleep(60 - time.time() % 60 + 0.5)
    gateway = start_gateway(env={"SPANLAB_ADMIN_KEY": ADMIN_KEY})
    url = gateway.url
    per_minute = _key(url, "ci-bot", rpm=2)
    budget = _key(url, "budget", tokens_per_day=1)
    assert [_call(url, per_minute).status_code for _ in range(3)] == [200, 200, 429]
    assert _call(url, budget).status_code == 200  # under its budget when it started
    for _ in range(50):  # its tokens count once the writer has stored its span
        refused = _call(url, budget)
        if refused.status_code == 429:
            break
        time.sleep(0.1)
    assert refused.status_code == 429
    assert refused.json()["error"]["param"] == "tokens_per_day"

    gateway.stop_gracefully()
    gateway.start()  # the same database
    url = gateway.url
    again = _call(url, per_minute)
    assert again.status_code == 429, again.text
    assert 1 <= int(again.headers["retry-after"]) <= 60
    assert again.json()["error"]["message"].startswith(
        "key 'ci-bot' reached its limit of 2 requests per minute; retry in "
    )
    assert _call(url, budget).status_code == 429

    sdk = openai.OpenAI(api_key=per_minute, base_url=url + "/v1", max_retries=0)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])  # type: ignore[arg-type]
    assert limited.value.status_code == 429
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert limited.value.code == "rate_limit_exceeded"
