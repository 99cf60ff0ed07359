"""Shared by the quota tests: a keyed gateway whose quotas read an injectable clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from gateway.quotas.service import QuotaService
from tests.access_helpers import ADMIN_KEY, create_key
from tests.conftest import Gateway, GatewayFactory

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ADMIN = {"x-spanlab-key": ADMIN_KEY}
# A Wednesday, 10:00:30 UTC, mid-month: every window has room on both sides.
T0 = 1_764_669_630.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


def quotas_of(gw: Gateway) -> QuotaService:
    quotas: QuotaService = gw.app.state.quotas
    return quotas


async def clocked_gateway(make_gateway: GatewayFactory, **overrides: Any) -> tuple[Gateway, Clock]:
    gw: Gateway = await make_gateway(admin_key=ADMIN_KEY, **overrides)
    clock = Clock()
    quotas_of(gw).clock = clock
    return gw, clock


async def limited_key(
    gw: Gateway, name: str = "ci-bot", scopes: list[str] | None = None, **extra: Any
) -> tuple[str, dict[str, Any]]:
    created = await create_key(gw, name, scopes or ["proxy"], **extra)
    return created["key"], created


async def chat(gw: Gateway, key: str, **body: Any) -> httpx.Response:
    return await gw.client.post(
        "/v1/chat/completions", json={**CHAT, **body}, headers={"x-spanlab-key": key}
    )
