"""Shared by the access tests: a gateway with keys on, and a key of each scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.conftest import Gateway, GatewayFactory

ADMIN_KEY = "test-admin-key-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SCOPE_SETS: dict[str, list[str]] = {
    "proxy": ["proxy"],
    "read": ["read"],
    "write": ["write"],
    "admin": ["admin"],
}


@dataclass
class KeyedGateway:
    gw: Gateway
    keys: dict[str, str]  # scope set name -> key

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"x-spanlab-key": self.keys[who]}


async def create_key(gw: Gateway, name: str, scopes: list[str], **extra: Any) -> dict[str, Any]:
    response = await gw.client.post(
        "/keys",
        json={"name": name, "scopes": scopes, **extra},
        headers={"x-spanlab-key": ADMIN_KEY},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def keyed_gateway(make_gateway: GatewayFactory, **overrides: Any) -> KeyedGateway:
    gw = await make_gateway(admin_key=ADMIN_KEY, **overrides)
    keys = {
        name: (await create_key(gw, name, scopes))["key"] for name, scopes in SCOPE_SETS.items()
    }
    return KeyedGateway(gw, keys)
