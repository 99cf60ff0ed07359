from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.state import AppState
from gateway.store.stores import Stores, stores_for
from tests.fakes import FakeUpstream
from tests.network_helpers import LocalCA, make_ca
from tests.postgres import PostgresCluster, require_postgres, start_cluster
from tests.upstream.bridge import TransportBridge

UPSTREAM = "http://upstream.test/v1"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings.from_mapping(settings_mapping(tmp_path, **overrides))


def settings_mapping(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
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
    return raw


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


# The upstream clients a proxy test can run with: ``httpx`` is `HttpxUpstream` over the
# fake's in-process transport; ``builtin`` is the pool production uses
# (`gateway.http.client.ConnectionPool`), talking to the same fake served on loopback.
UPSTREAM_CLIENTS = ("httpx", "builtin")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_clients`` (the proxy suite) run once with each client, but
    for those marked ``httpx_client_only``: their fake raises httpx's own exceptions,
    which only `HttpxUpstream` can meet (the builtin pool's faults are tested on real
    sockets in tests/test_http_client.py)."""
    marked = metafunc.definition.get_closest_marker
    if (
        "upstream_client" in metafunc.fixturenames
        and marked("both_clients")
        and not marked("httpx_client_only")
    ):
        metafunc.parametrize("upstream_client", UPSTREAM_CLIENTS, indirect=True)


@pytest.fixture
def upstream_client(request: pytest.FixtureRequest) -> str:
    """Which upstream client `make_gateway` builds (``httpx`` unless parametrized)."""
    client: str = getattr(request, "param", "httpx")
    return client


@pytest.fixture
async def make_gateway(tmp_path: Path, upstream_client: str) -> AsyncIterator[GatewayFactory]:
    stack: list[Any] = []
    bridges: list[TransportBridge] = []

    async def factory(upstream: FakeUpstream | None = None, **overrides: Any) -> Gateway:
        upstream = upstream or FakeUpstream()
        raw = settings_mapping(tmp_path, **overrides)
        transport: httpx.AsyncBaseTransport | None = upstream.transport()
        if upstream_client == "builtin":
            # The builtin pool on loopback: each provider's host gets a listener that
            # hands the request to the same fake, under its original URL.
            bridge = TransportBridge(upstream.transport())
            bridges.append(bridge)
            providers = {name: dict(p) for name, p in raw.get("providers", {}).items()}
            for provider in providers.values():
                if "base_url" in provider:
                    provider["base_url"] = await bridge.rewrite(provider["base_url"])
            raw["providers"] = providers
            transport = None
        settings = Settings.from_mapping(raw)
        app = create_app(settings, transport=transport)
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
    for bridge in bridges:
        await bridge.aclose()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    gw: Gateway = await make_gateway()
    return gw


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """A CA made for the test and a loopback certificate it signed (tests of TLS trust)."""
    return make_ca(tmp_path_factory.mktemp("ca"))


# --- PostgreSQL (tests/postgres.py) ------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the session, with a migrated template
    database (skipped without PostgreSQL, failed under CI=true)."""
    require_postgres()
    cluster = start_cluster()
    yield cluster
    cluster.server.stop()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """A migrated PostgreSQL database of the test's own."""
    return pg_cluster.new_database()


STORE_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=STORE_BACKENDS)
def db_setting(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``db`` setting of a database of the test's own, on each backend in turn: a
    SQLite file, then a PostgreSQL URL (tests/postgres.py)."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return str(tmp_path / "spanlab.db")


@pytest.fixture
async def stores(db_setting: str) -> AsyncIterator[Stores]:
    """Open stores on each backend (`gateway.store.stores.stores_for`)."""
    opened = stores_for(db_setting)
    await opened.open()
    yield opened
    await opened.close()
