"""Every state-changing route the app has, read from its route table (so a route added
later is covered without anyone remembering to): a request a web page on another site
could send refuses before the route runs — `Origin: null` (a sandboxed iframe) with 403,
a body not declared JSON with 415 — and neither reaches the upstream nor stores anything."""

from __future__ import annotations

import re

import pytest
from starlette.routing import Route

from tests.conftest import Gateway

SAFE = {"GET", "HEAD", "OPTIONS"}


def state_changing(gateway: Gateway) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in gateway.app.routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - SAFE):
            # Path parameters get a value of the right shape; the guard must answer
            # before any handler looks them up.
            found.append((method, re.sub(r"\{[^}]+\}", "x", route.path)))
    return found


async def test_the_route_table_has_state_changing_routes_to_check(gateway: Gateway) -> None:
    routes = state_changing(gateway)
    # The proxy's and the management API's, at least: if this list came out empty the
    # checks below would pass without checking anything.
    assert ("POST", "/v1/chat/completions") in routes
    assert ("POST", "/v1/messages/count_tokens") in routes
    assert ("POST", "/experiments") in routes
    assert ("DELETE", "/experiments/x") in routes


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"origin": "null", "content-type": "application/json"}, 403, "origin_not_allowed"),
        ({"origin": "https://evil.example"}, 403, "origin_not_allowed"),
        ({"content-type": "text/plain"}, 415, "unsupported_media_type"),
    ],
    ids=["origin-null", "other-site", "text-plain"],
)
async def test_every_state_changing_route_refuses_what_a_page_could_send(
    gateway: Gateway, headers: dict[str, str], status: int, code: str
) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    for method, path in state_changing(gateway):
        if method == "DELETE" and "content-type" in headers and "origin" not in headers:
            continue  # a DELETE carries no body to declare
        content = None if method == "DELETE" else body
        r = await gateway.client.request(method, path, content=content, headers=headers)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == code, (method, path, r.text)
    assert gateway.upstream.requests == []
    await gateway.flush()
    assert (await gateway.client.get("/spans")).json()["data"] == []
    assert (await gateway.client.get("/experiments")).json()["data"] == []
