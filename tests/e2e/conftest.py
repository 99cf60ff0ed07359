"""End-to-end fixtures: a real ``spanlab serve`` subprocess and real upstream servers.

One gateway process (and one mock upstream, one pytest-httpserver) serves the whole
session, so the suite stays fast; every test tags its calls (``x-test-id``, its own
thread id) and reads back only its own spans. Tests that need a gateway of their own
(shutdown, secrets) start one with `start_gateway`.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openai import OpenAI
from pytest_httpserver import HTTPServer

from tests.e2e.mock_upstream import MockUpstream
from tests.serve import IN_FLIGHT_METRIC, REPO_ROOT, GatewayProcess, free_port, to_toml

__all__ = [
    "IN_FLIGHT_METRIC",
    "REPO_ROOT",
    "GatewayProcess",
    "StartGateway",
    "free_port",
    "to_toml",
]

PROVIDER_KEY_ENV = "E2E_PROVIDER_KEY"
# A key only the gateway knows: it must replace the client's on the way upstream.
PROVIDER_KEY = "sk-provider-e2e-" + uuid.uuid4().hex
CLIENT_KEY = "sk-client-e2e-" + uuid.uuid4().hex
READ_TIMEOUT_S = 1.5
REQUEST_TIMEOUT_S = 2.5
MAX_BODY_BYTES = 64 * 1024


def gateway_config(
    mock: MockUpstream, httpserver: HTTPServer, dead_port: int, **overrides: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "log_level": "info",
        "default_provider": "mock",
        "read_timeout": READ_TIMEOUT_S,
        "request_timeout": REQUEST_TIMEOUT_S,
        "connect_timeout": 2.0,
        "max_body_bytes": MAX_BODY_BYTES,
        "providers": {
            # The mock upstream with a configured key (replaces the client's).
            "mock": {"kind": "openai", "base_url": mock.base_url, "api_key_env": PROVIDER_KEY_ENV},
            # The same upstream without one: the client's key goes through.
            "passthru": {"kind": "openai", "base_url": mock.base_url},
            # pytest-httpserver: an upstream nobody here wrote.
            "werk": {"kind": "openai", "base_url": httpserver.url_for("/v1")},
            # Nothing listens there.
            "dead": {"kind": "openai", "base_url": f"http://127.0.0.1:{dead_port}/v1"},
        },
    }
    config.update(overrides)
    return config


StartGateway = Callable[..., GatewayProcess]


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[MockUpstream]:
    mock = MockUpstream()
    mock.start()
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def dead_port() -> Iterator[int]:
    """A port where connections are refused: bound (so nobody else can take it) but not
    listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def start_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    mock_upstream: MockUpstream,
    make_httpserver: HTTPServer,
    dead_port: int,
) -> Iterator[StartGateway]:
    """Start a gateway of one's own: ``start_gateway(env={...}, **config_overrides)``;
    ``max_open_files`` sets its ``ulimit -n``; ``db`` its ``--db`` (a postgresql:// URL)."""
    started: list[GatewayProcess] = []

    def start(
        env: dict[str, str] | None = None,
        max_open_files: int | None = None,
        db: str | None = None,
        **overrides: Any,
    ) -> GatewayProcess:
        config = gateway_config(mock_upstream, make_httpserver, dead_port, **overrides)
        process = GatewayProcess(
            tmp_path_factory.mktemp("gateway"),
            config,
            {PROVIDER_KEY_ENV: PROVIDER_KEY, **(env or {})},
            max_open_files,
            db=db,
        )
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture(scope="session")
def gateway(start_gateway: StartGateway) -> GatewayProcess:
    """The gateway shared by the session's tests."""
    return start_gateway()


@pytest.fixture
def test_id() -> str:
    """A fresh id: tags a test's upstream requests and names its thread."""
    return "e2e-" + uuid.uuid4().hex[:16]


def sdk(gateway: GatewayProcess, **options: Any) -> OpenAI:
    """The official OpenAI SDK pointed at the gateway (no retries: each call is one span)."""
    options.setdefault("api_key", CLIENT_KEY)
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 15.0)
    return OpenAI(base_url=f"{gateway.base_url}/v1", **options)
