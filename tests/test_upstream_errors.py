"""Each way an upstream call fails, against real loopback servers, through both upstream
clients (``upstream_client = "builtin"`` and ``"httpx"``): the client raises the upstream
layer's own error kind (`gateway.http.upstream`), and the proxy answers the same gateway
error for it whichever client sent the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import create_app
from gateway.http import upstream as up
from gateway.http.client import ConnectionPool
from gateway.http.httpx_transport import build_httpx_transport
from tests.conftest import make_settings
from tests.e2e.mock_upstream import MockUpstream

CLIENTS = ("builtin", "httpx")
CHAT = {"model": "mock-gpt-small", "messages": [{"role": "user", "content": "hi"}]}
TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstream]:
    server = MockUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dead_port() -> Iterator[int]:
    """Bound, not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def blackhole_port() -> Iterator[int]:
    """Listening with a full accept queue: a new connection's SYN goes unanswered, so
    connecting hangs (a connect timeout on loopback)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # completes in the backlog, unaccepted
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture
async def gateway_for(
    tmp_path: Path, mock: MockUpstream, dead_port: int, blackhole_port: int
) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """An in-process gateway whose upstream client is the real one the setting picks."""
    stack: list[Any] = []

    async def start(client: str, **overrides: Any) -> httpx.AsyncClient:
        home = tmp_path / f"{client}-{len(stack)}"
        home.mkdir()
        options: dict[str, Any] = {
            "upstream_client": client,
            "default_provider": "mock",
            "connect_timeout": TIMEOUT_S,
            "read_timeout": TIMEOUT_S,
            "providers": {
                "mock": {"kind": "openai", "base_url": mock.base_url},
                "dead": {"kind": "openai", "base_url": f"http://127.0.0.1:{dead_port}/v1"},
                "blackhole": {
                    "kind": "openai",
                    "base_url": f"http://127.0.0.1:{blackhole_port}/v1",
                },
            },
        }
        settings = make_settings(home, **{**options, **overrides})
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://spanlab.test", timeout=30
        )
        stack.append((lifespan, http))
        upstream = app.state.spanlab.upstream
        # The setting picked the client the test names (not a fake transport).
        assert isinstance(upstream, ConnectionPool if client == "builtin" else up.HttpxUpstream)
        return http

    yield start
    for lifespan, http in reversed(stack):
        await http.aclose()
        await lifespan.__aexit__(None, None, None)


def headers(scenario: str = "plain", provider: str = "mock", **extra: str) -> dict[str, str]:
    return {"x-mock-scenario": scenario, "x-spanlab-provider": provider, **extra}


# (scenario, provider, stream, extra headers) -> (status, gateway error code)
NON_STREAM_CASES = [
    pytest.param("plain", "dead", {}, 502, "upstream_unreachable", id="connection-refused"),
    pytest.param("plain", "blackhole", {}, 504, "upstream_timeout", id="connect-timeout"),
    pytest.param("slow", "mock", {"x-mock-delay": "3"}, 504, "upstream_timeout", id="read-timeout"),
    pytest.param("hang_up", "mock", {}, 502, "upstream_unreachable", id="closed-no-response"),
    pytest.param("garbage", "mock", {}, 502, "upstream_unreachable", id="not-http"),
    pytest.param("cut_body", "mock", {}, 502, "upstream_protocol_error", id="body-cut"),
    pytest.param("bad_gzip", "mock", {}, 502, "upstream_protocol_error", id="undecodable-body"),
]


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("scenario", "provider", "extra", "status", "code"), NON_STREAM_CASES)
async def test_each_upstream_failure_is_the_same_gateway_error_with_either_client(
    gateway_for: Callable[..., Awaitable[httpx.AsyncClient]],
    client: str,
    scenario: str,
    provider: str,
    extra: dict[str, str],
    status: int,
    code: str,
) -> None:
    http = await gateway_for(client)
    r = await http.post(
        "/v1/chat/completions", json=CHAT, headers=headers(scenario, provider, **extra)
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == code, error
    assert provider in error["message"]


# A stream that fails once its 200 went out ends with an error event.
STREAM_CASES = [
    pytest.param("reset", {}, "upstream_stream_truncated", id="stream-reset"),
    pytest.param("slow_first_token", {"x-mock-delay": "3"}, "upstream_timeout", id="stream-silent"),
]


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("scenario", "extra", "code"), STREAM_CASES)
async def test_a_stream_that_fails_midway_ends_with_the_same_error_event_with_either_client(
    gateway_for: Callable[..., Awaitable[httpx.AsyncClient]],
    client: str,
    scenario: str,
    extra: dict[str, str],
    code: str,
) -> None:
    http = await gateway_for(client)
    r = await http.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers(scenario, **extra)
    )
    assert r.status_code == 200
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: {")]
    last = orjson.loads(events[-1])
    assert last["error"]["code"] == code, last


@pytest.mark.slow
@pytest.mark.parametrize("client", CLIENTS)
async def test_all_connections_busy_is_503_with_either_client(
    gateway_for: Callable[..., Awaitable[httpx.AsyncClient]], client: str
) -> None:
    http = await gateway_for(client, max_connections=1, read_timeout=5.0)
    busy = asyncio.create_task(
        http.post(
            "/v1/chat/completions", json=CHAT, headers=headers("slow", **{"x-mock-delay": "2"})
        )
    )
    await asyncio.sleep(0.3)  # the one connection is taken
    r = await http.post("/v1/chat/completions", json=CHAT, headers=headers())
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "upstream_connections_busy"
    assert (await busy).status_code == 200  # the call holding the connection was not hurt


# --- the error kinds themselves, below the proxy ---------------------------------------

HTTPX_KINDS = [
    (httpx.ConnectError("x"), up.UpstreamConnectError),
    (httpx.ConnectTimeout("x"), up.UpstreamConnectTimeout),
    (httpx.ReadTimeout("x"), up.UpstreamReadTimeout),
    (httpx.WriteTimeout("x"), up.UpstreamWriteTimeout),
    (httpx.PoolTimeout("x"), up.UpstreamPoolTimeout),
    (httpx.RemoteProtocolError("x"), up.UpstreamProtocolError),
    (httpx.ReadError("x"), up.UpstreamProtocolError),
    (httpx.WriteError("x"), up.UpstreamProtocolError),
    (httpx.LocalProtocolError("x"), up.UpstreamRequestError),
    (httpx.UnsupportedProtocol("x"), up.UpstreamRequestError),
    (httpx.DecodingError("x"), up.UpstreamDecodingError),
    (httpx.ProxyError("x"), up.UpstreamConnectError),
]


@pytest.mark.parametrize(("raised", "kind"), HTTPX_KINDS, ids=lambda v: type(v).__name__)
def test_httpx_errors_become_the_upstream_layers_own_kind(
    raised: httpx.HTTPError, kind: type[up.UpstreamTransportError]
) -> None:
    translated = up.from_httpx(raised)
    assert type(translated) is kind
    assert not isinstance(translated, httpx.HTTPError)


def test_the_timeout_kinds_share_a_base_and_a_decoding_error_is_no_timeout() -> None:
    for kind in (
        up.UpstreamConnectTimeout,
        up.UpstreamReadTimeout,
        up.UpstreamWriteTimeout,
        up.UpstreamPoolTimeout,
    ):
        assert issubclass(kind, up.UpstreamTimeoutError)
    for kind in (up.UpstreamProtocolError, up.UpstreamDecodingError, up.UpstreamConnectError):
        assert not issubclass(kind, up.UpstreamTimeoutError)
        assert issubclass(kind, up.UpstreamTransportError)


async def test_the_httpx_client_raises_upstream_errors_not_httpx_ones(dead_port: int) -> None:
    client = up.HttpxUpstream(build_httpx_transport(10, keepalive_expiry=5.0, proxies={}))
    request = up.UpstreamRequest(
        "GET",
        up.UpstreamURL.parse(f"http://127.0.0.1:{dead_port}/"),
        [],
        None,
        up.Timeouts(connect=1.0, read=1.0, pool=1.0),
    )
    with pytest.raises(up.UpstreamConnectError) as caught:
        await client.send(request)
    assert not isinstance(caught.value, httpx.HTTPError)
    await client.aclose()


def test_the_proxy_knows_no_client_librarys_errors() -> None:
    """gateway/proxy/ and gateway/experiments/ catch only the upstream layer's error kinds:
    neither imports httpx (a client library is the upstream layer's business)."""
    root = Path(__file__).resolve().parent.parent / "gateway"
    offenders = [
        str(path.relative_to(root))
        for room in ("proxy", "experiments")
        for path in sorted((root / room).rglob("*.py"))
        if re.search(r"^\s*(import httpx|from httpx)", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []
