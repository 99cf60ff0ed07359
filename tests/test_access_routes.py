"""Every route has its scope in `gateway.access.routes.ROUTE_SCOPES`, and the check
enforces it: the scope matrix (every route x every key scope -> allowed, 401 or 403)
is generated from the app's own route table."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.access.guard import AccessGuard
from gateway.access.keys import IMPLIED
from gateway.access.policy import AccessPolicy
from gateway.access.routes import (
    METRICS,
    OPEN,
    ROUTE_SCOPES,
    RouteScopes,
    missing_entries,
    route_methods,
)
from gateway.app import create_app
from tests.access_helpers import ADMIN_KEY, keyed_gateway
from tests.conftest import GatewayFactory


def app_routes() -> list[Any]:
    return list(create_app().routes)


def test_every_route_has_a_declared_scope() -> None:
    missing = missing_entries(app_routes(), ROUTE_SCOPES)
    lines = "\n".join(
        f'    "{entry}": "read",  # or proxy, write, admin, open' for entry in missing
    )
    assert not missing, (
        "Routes without a scope (they need admin until given one). Add to ROUTE_SCOPES in"
        f" gateway/access/routes.py:\n{lines}"
    )


def test_no_scope_is_declared_for_a_route_that_does_not_exist() -> None:
    declared = {f"{m} {p}" for route in app_routes() for m, p in route_methods(route)}
    stale = sorted(set(ROUTE_SCOPES) - declared)
    assert not stale, f"Remove from ROUTE_SCOPES (no such route): {stale}"


def test_an_unlisted_route_needs_admin() -> None:
    routes = [Route("/new-thing/{x}", lambda r: None, methods=["POST"])]
    assert missing_entries(routes, ROUTE_SCOPES) == ["POST /new-thing/{x}"]
    assert RouteScopes.compile(routes).required("POST", "/new-thing/1") == "admin"


def fill(path: str) -> str:
    """A concrete path for a route's pattern ("{x}" and "{x:path}" -> "x1")."""
    return re.sub(r"\{[^}]+\}", "x1", path)


class Reached:
    """Stands for the app behind the check: answers 204 and notes the call."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def expected(need: str, who: str | None) -> int:
    if need == OPEN:
        return 204
    if who is None:
        return 401
    granted = IMPLIED[who]
    return 204 if ("read" if need == METRICS else need) in granted else 403


async def test_the_scope_matrix(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    policy: AccessPolicy = keyed.gw.app.state.access
    routes = list(keyed.gw.app.routes)
    reached = Reached()
    guard = AccessGuard(reached, policy, RouteScopes.compile(routes))
    checked = 0
    for route in routes:
        for method, path in route_methods(route):
            need = ROUTE_SCOPES[f"{method} {path}"]
            for who in (None, "proxy", "read", "write", "admin"):
                sent: list[dict[str, Any]] = []

                async def send(message: Any, sent: list[dict[str, Any]] = sent) -> None:
                    sent.append(message)

                headers = [] if who is None else [(b"x-spanlab-key", keyed.keys[who].encode())]
                scope = {
                    "type": "http",
                    "method": method,
                    "path": fill(path),
                    "headers": headers,
                    # A new address each time: refusals from one address are slowed.
                    "client": (f"10.0.{checked // 250}.{checked % 250}", 1234),
                }
                await guard(scope, None, send)  # type: ignore[arg-type]
                status = sent[0]["status"]
                assert status == expected(need, who), (method, path, who, need, status)
                checked += 1
    # Every route and scope was tried (not a vacuous loop over nothing).
    assert checked == 5 * len(ROUTE_SCOPES)
    assert reached.calls == sum(
        1
        for e in ROUTE_SCOPES.values()
        for who in (None, "proxy", "read", "write", "admin")
        if expected(e, who) == 204
    )


@pytest.mark.parametrize(
    ("method", "path", "who", "status"),
    [
        ("GET", "/spans", None, 401),
        ("GET", "/spans", "proxy", 403),
        ("GET", "/spans", "read", 200),
        ("POST", "/experiments", "read", 403),
        ("POST", "/datasets", "write", 201),
        ("GET", "/keys", "write", 403),
        ("GET", "/keys", "admin", 200),
        ("POST", "/v1/chat/completions", "read", 403),
        ("POST", "/v1/chat/completions", "proxy", 200),
        ("GET", "/nowhere", None, 401),
        ("GET", "/nowhere", "read", 404),
        ("GET", "/ui/", None, 200),
        ("HEAD", "/spans", None, 401),
    ],
)
async def test_routes_through_the_whole_app(
    make_gateway: GatewayFactory, method: str, path: str, who: str | None, status: int
) -> None:
    keyed = await keyed_gateway(make_gateway)
    body: dict[str, Any] | None = None
    if path == "/datasets":
        body = {"name": "d1"}
    elif path == "/experiments":
        body = {"name": "e1"}
    elif path.startswith("/v1/"):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = await keyed.gw.client.request(method, path, json=body, headers=keyed.headers(who))
    assert response.status_code == status, response.text
    if status == 401 and method != "HEAD":
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["type"] == "authentication_error"
    if status == 403 and method != "HEAD":
        assert response.json()["error"]["code"] == "insufficient_scope"


async def test_the_admin_key_from_the_settings_has_every_scope(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(admin_key=ADMIN_KEY)
    for path in ("/spans", "/keys", "/projects"):
        response = await gw.client.get(path, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert response.status_code == 200, (path, response.text)
    assert (await gw.client.get("/spans")).status_code == 401
