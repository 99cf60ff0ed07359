from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.state import AppState
from tests.fakes import FakeUpstream

UPSTREAM = "http://upstream.test/v1"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "db": str(tmp_path / "spanlab.db"),
        "allowed_hosts": "spanlab.test",
        "providers": {
            "openai": {"kind": "openai", "base_url": UPSTREAM},
            "local": {"kind": "openai", "base_url": "http://local.test/v1"},
            "anthropic": {"kind": "anthropic", "base_url": "http://anthropic.test/v1"},
        },
    }
    raw.update(overrides)
    return Settings.from_mapping(raw)


class Gateway:
    """An app with its lifespan running, an in-process client, and the fake upstream."""

    def __init__(self, app: Any, client: httpx.AsyncClient, upstream: FakeUpstream) -> None:
        self.app = app
        self.client = client
        self.upstream = upstream

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.spanlab
        return state

    async def flush(self) -> None:
        await self.state.writer.flush()

    async def span(self, span_id: str) -> dict[str, Any]:
        await self.flush()
        response = await self.client.get(f"/spans/{span_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    stack: list[Any] = []

    async def factory(upstream: FakeUpstream | None = None, **overrides: Any) -> Gateway:
        upstream = upstream or FakeUpstream()
        settings = make_settings(tmp_path, **overrides)
        app = create_app(settings, transport=upstream.transport())
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://spanlab.test"
        )
        stack.append((lifespan, client))
        return Gateway(app, client, upstream)

    yield factory
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    gw: Gateway = await make_gateway()
    return gw
