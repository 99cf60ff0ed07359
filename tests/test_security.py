"""DNS rebinding and cross-site protection."""

from __future__ import annotations

import pytest

from gateway.security import allowed_hosts, host_name
from tests.conftest import Gateway, GatewayFactory

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("path", ["/spans", "/v1/models", "/healthz"])
async def test_foreign_host_is_refused(gateway: Gateway, path: str) -> None:
    r = await gateway.client.get(path, headers={"host": "attacker.example:8080"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "host_not_allowed"


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1", "[::1]:8080", "spanlab.test"])
async def test_local_hosts_are_accepted(gateway: Gateway, host: str) -> None:
    r = await gateway.client.get("/healthz", headers={"host": host})
    assert r.status_code == 200


async def test_cross_site_post_is_refused_and_costs_nothing(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions", json=CHAT, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "origin_not_allowed"
    assert gateway.upstream.requests == []


async def test_same_origin_and_originless_posts_pass(gateway: Gateway) -> None:
    for headers in ({"origin": "http://localhost:8080"}, {}):
        r = await gateway.client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert r.status_code == 200


async def test_star_allows_any_host(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(allowed_hosts="*")
    r = await gw.client.get("/healthz", headers={"host": "anything.example"})
    assert r.status_code == 200


def test_allowed_hosts_rules() -> None:
    assert allowed_hosts("0.0.0.0", "") is None  # deliberately public
    assert allowed_hosts("127.0.0.1", "*") is None
    allowed = allowed_hosts("127.0.0.1", "gw.internal, Other.Example")
    assert allowed is not None and {"gw.internal", "other.example", "localhost"} <= allowed
    assert host_name("[::1]:8080") == "::1"
    assert host_name("Example.COM:443") == "example.com"
