"""The request the proxy sends upstream: built as httpx's client would, without its
cookie jar (an upstream's cookie must not follow later calls, whoever makes them)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.fakes import FakeUpstream, chat_completion

# Every test here runs with both upstream clients (tests/conftest.py).
pytestmark = pytest.mark.both_clients

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def test_an_upstream_cookie_is_not_sent_on_later_calls(make_gateway: GatewayFactory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=chat_completion(), headers={"set-cookie": "__cf_bm=abc123; Path=/"}
        )

    gw = await make_gateway(FakeUpstream(handler=handler))
    for _ in range(2):
        r = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200
        assert r.headers["set-cookie"].startswith("__cf_bm=")  # the caller gets it
        gw.client.cookies.clear()  # and does not send it back
    assert all("cookie" not in request.headers for request in gw.upstream.requests)


@pytest.mark.httpx_client_only  # it reads httpx's per-request timeout extension
async def test_client_defaults_fill_in_what_the_call_does_not_say(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    await gw.client.post("/v1/chat/completions", json=CHAT, headers={"user-agent": "my-app/1.0"})
    sent = gw.upstream.last.headers
    assert sent.get_list("user-agent") == ["my-app/1.0"]  # the caller's, once
    assert sent["host"] == "upstream.test"
    assert sent["content-length"] == str(len(gw.upstream.last.content))
    assert "gzip" in sent["accept-encoding"]  # the client's own (the caller's is dropped)
    assert gw.upstream.last.extensions["timeout"]["read"] == gw.state.settings.read_timeout
