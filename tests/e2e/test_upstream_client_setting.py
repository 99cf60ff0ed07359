"""``upstream_client`` through a real ``spanlab serve``: with ``"httpx"`` the gateway
proxies a chat call and a stream through httpx's transport, and an upstream failure
(nothing listening, a provider too slow) gives the same error, in the same shape, as
with the builtin client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import (
    PROVIDER_KEY,
    READ_TIMEOUT_S,
    GatewayProcess,
    StartGateway,
    sdk,
)
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
# No proxy from the test runner's environment may stand between gateway and mock.
NO_PROXY_ENV = {"HTTP_PROXY": "", "HTTPS_PROXY": "", "ALL_PROXY": "", "NO_PROXY": "*"}


@pytest.fixture(scope="module")
def gateways(start_gateway: StartGateway) -> Iterator[dict[str, GatewayProcess]]:
    yield {
        client: start_gateway(env=NO_PROXY_ENV, upstream_client=client)
        for client in ("builtin", "httpx")
    }


def test_the_httpx_client_proxies_a_chat_call_and_a_stream(
    gateways: dict[str, GatewayProcess], mock_upstream: MockUpstream, test_id: str
) -> None:
    gateway = gateways["httpx"]
    assert "upstream client: httpx" in gateway.log()  # the setting took effect
    client = sdk(gateway)
    headers = {"x-test-id": test_id}
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
    )
    assert completion.choices[0].message.content == mock.CONTENT
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta]
    assert "".join(p for p in pieces if p) == mock.CONTENT
    assert mock_upstream.count(test_id) == 2
    received = [r for r in mock_upstream.received if r.header("x-test-id") == test_id]
    # The provider's configured key replaced the client's, as with the builtin client.
    assert [r.header("authorization") for r in received] == [f"Bearer {PROVIDER_KEY}"] * 2


def post(gateway: GatewayProcess, provider: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"x-spanlab-provider": provider, **headers},
        timeout=15.0,
    )


def test_an_unreachable_provider_is_the_same_502_with_either_client(
    gateways: dict[str, GatewayProcess],
) -> None:
    bodies = {}
    for client, gateway in gateways.items():
        r = post(gateway, "dead")
        assert r.status_code == 502, (client, r.text)
        bodies[client] = orjson.loads(r.content)
    for body in bodies.values():
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "code", "param"}
        assert body["error"]["code"] == "upstream_unreachable"
        assert body["error"]["type"] == bodies["builtin"]["error"]["type"]
        assert "'dead'" in body["error"]["message"]


@pytest.mark.slow
def test_a_timeout_is_the_same_504_with_either_client(
    gateways: dict[str, GatewayProcess],
) -> None:
    delay = str(READ_TIMEOUT_S + 1.5)
    bodies = {}
    for client, gateway in gateways.items():
        r = post(gateway, "mock", **{"x-mock-scenario": "slow", "x-mock-delay": delay})
        assert r.status_code == 504, (client, r.text)
        bodies[client] = orjson.loads(r.content)
    for body in bodies.values():
        assert set(body["error"]) == {"message", "type", "code", "param"}
        assert body["error"]["code"] == "upstream_timeout"
        assert body["error"]["type"] == bodies["builtin"]["error"]["type"]
