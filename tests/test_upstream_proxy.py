"""Outbound proxies of the upstream client (`gateway.http.network`) against a real
loopback proxy that counts its tunnels: CONNECT then TLS for https upstreams,
absolute-form for http ones, the proxy setting before HTTPS_PROXY / HTTP_PROXY,
NO_PROXY, and proxy credentials that go to the proxy only and never into a span."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.errors import ConfigError
from gateway.http.client import ConnectionPool
from gateway.http.network import Network, OriginOptions, bypasses_proxy
from gateway.http.upstream import UpstreamConnectError, UpstreamRequest
from tests.network_helpers import (
    CHAT_REPLY,
    LocalCA,
    chat_request,
    clear_proxy_env,
    connect_proxy,
    provider_settings,
    running_gateway,
    upstream_server,
)


@pytest.fixture(autouse=True)
def no_inherited_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)


def request(url: str) -> UpstreamRequest:
    return chat_request(url, [("authorization", "Bearer sk-upstream")])


async def calls(pool: ConnectionPool, url: str, count: int = 1) -> list[bytes]:
    bodies = []
    try:
        for _ in range(count):
            response = await pool.send(request(url))
            bodies.append(await response.read())
            await response.aclose()
    finally:
        await pool.aclose()
    return bodies


def authority(url: str) -> str:
    return url.split("://", 1)[1]


async def test_an_https_upstream_is_reached_through_a_connect_tunnel(test_ca: LocalCA) -> None:
    async with upstream_server(test_ca.server_context()) as upstream, connect_proxy() as proxy:
        network = Network(OriginOptions(proxy=proxy.url, ca_bundle=test_ca.ca), env={})
        bodies = await calls(ConnectionPool(network=network), upstream.url, count=3)
    assert bodies == [CHAT_REPLY] * 3
    assert proxy.tunnels == [authority(upstream.url)]  # one tunnel, kept alive for all
    assert len(upstream.heads) == 3
    # Inside the tunnel, the origin-form request the upstream would get directly.
    assert upstream.heads[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")


async def test_https_proxy_from_the_environment(test_ca: LocalCA) -> None:
    async with upstream_server(test_ca.server_context()) as upstream, connect_proxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": test_ca.ca}
        assert await calls(ConnectionPool(network=Network(env=env)), upstream.url) == [CHAT_REPLY]
        assert proxy.tunnels == [authority(upstream.url)]
        # Lower case first, as curl does.
        env = {**env, "https_proxy": proxy.url, "HTTPS_PROXY": "http://127.0.0.1:9"}
        assert await calls(ConnectionPool(network=Network(env=env)), upstream.url) == [CHAT_REPLY]
        assert len(proxy.tunnels) == 2


async def test_an_http_upstream_goes_to_the_proxy_in_absolute_form() -> None:
    async with upstream_server() as upstream, connect_proxy() as proxy:
        network = Network(env={"HTTP_PROXY": proxy.url})
        assert await calls(ConnectionPool(network=network), upstream.url, 2) == [CHAT_REPLY] * 2
    target = upstream.url + "/v1/chat/completions"
    assert proxy.forwarded == [f"POST {target} HTTP/1.1".encode()] * 2
    assert proxy.tunnels == []
    assert len(upstream.heads) == 2


async def test_the_proxy_setting_wins_over_the_environment(
    test_ca: LocalCA, tmp_path: Path
) -> None:
    async with upstream_server(test_ca.server_context()) as upstream, connect_proxy() as proxy:
        # The environment's proxy is a closed port: used, the call would fail.
        env = {"HTTPS_PROXY": "http://127.0.0.1:9"}
        config = provider_settings(tmp_path, upstream.url, proxy=proxy.url, ca_bundle=test_ca.ca)
        pool = ConnectionPool(network=Network.from_settings(config, env=env))
        assert await calls(pool, upstream.url) == [CHAT_REPLY]
        assert len(proxy.tunnels) == 1

        own = provider_settings(tmp_path, upstream.url, {"proxy": proxy.url}, ca_bundle=test_ca.ca)
        pool = ConnectionPool(network=Network.from_settings(own, env=env))
        assert await calls(pool, upstream.url) == [CHAT_REPLY]
        assert len(proxy.tunnels) == 2


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", "localhost,127.0.0.0/8", "127.0.0.1:0"])
async def test_no_proxy_goes_direct(no_proxy: str) -> None:
    async with upstream_server() as upstream, connect_proxy() as proxy:
        port = upstream.url.rsplit(":", 1)[1]
        env = {"HTTP_PROXY": proxy.url, "NO_PROXY": no_proxy.replace(":0", f":{port}")}
        assert await calls(ConnectionPool(network=Network(env=env)), upstream.url) == [CHAT_REPLY]
    assert proxy.forwarded == []
    assert len(upstream.heads) == 1


async def test_direct_turns_the_environments_proxy_off_for_a_provider(tmp_path: Path) -> None:
    async with upstream_server() as upstream, connect_proxy() as proxy:
        config = provider_settings(tmp_path, upstream.url, {"proxy": "direct"})
        pool = ConnectionPool(network=Network.from_settings(config, env={"HTTP_PROXY": proxy.url}))
        assert await calls(pool, upstream.url) == [CHAT_REPLY]
    assert proxy.forwarded == []


def test_no_proxy_matches_hosts_suffixes_ports_and_blocks() -> None:
    assert bypasses_proxy("example.com", "example.com", 443)
    assert bypasses_proxy("example.com", "api.example.com", 443)
    assert bypasses_proxy(".example.com", "api.example.com", 443)
    assert bypasses_proxy("*.example.com", "api.example.com", 443)
    assert not bypasses_proxy("example.com", "notexample.com", 443)
    assert not bypasses_proxy("example.com:8443", "example.com", 443)
    assert bypasses_proxy("example.com:8443", "example.com", 8443)
    assert bypasses_proxy("10.0.0.0/8", "10.1.2.3", 80)
    assert not bypasses_proxy("10.0.0.0/8", "11.1.2.3", 80)
    assert bypasses_proxy(" other , *", "anything.test", 80)
    assert bypasses_proxy("[::1]:443", "::1", 443)
    assert not bypasses_proxy("", "example.com", 443)


def test_only_http_proxies_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only http:// proxies"):
        Network.from_settings(
            provider_settings(tmp_path, "https://x.test", proxy="socks5://p:1080"), env={}
        )


PASSWORD = "p@ss w0rd"
PROXY_AUTH = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


async def test_proxy_credentials_go_as_proxy_authorization_to_the_proxy_only(
    test_ca: LocalCA,
) -> None:
    async with (
        upstream_server(test_ca.server_context()) as upstream,
        connect_proxy(required_auth=PROXY_AUTH) as proxy,
    ):
        with_auth = f"http://alice:p%40ss%20w0rd@{proxy.address}"
        network = Network(OriginOptions(proxy=with_auth, ca_bundle=test_ca.ca), env={})
        assert await calls(ConnectionPool(network=network), upstream.url) == [CHAT_REPLY]
        assert proxy.authorizations == [PROXY_AUTH]
        assert b"proxy-authorization" not in upstream.heads[0].lower()

        refused = Network(OriginOptions(proxy=proxy.url, ca_bundle=test_ca.ca), env={})
        with pytest.raises(UpstreamConnectError, match=r"407.*proxy authentication required"):
            await calls(ConnectionPool(network=refused), upstream.url)


async def test_proxy_credentials_never_reach_a_span_or_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An upstream (or a proxy) that echoes them: the span keeps [REDACTED]."""
    token = PROXY_AUTH.split(" ", 1)[1]

    def echo(head: bytes) -> bytes:
        body = CHAT_REPLY.replace(b'"hi"', f'"{PASSWORD} {token}"'.encode())
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (
                len(body),
                body,
            )
        )

    caplog.set_level(logging.DEBUG)
    async with (
        upstream_server(replier=echo) as upstream,
        connect_proxy(required_auth=PROXY_AUTH) as proxy,
    ):
        config = provider_settings(
            tmp_path, upstream.url, proxy=f"http://alice:p%40ss%20w0rd@{proxy.address}"
        )
        async with running_gateway(config) as gateway:
            reply = await gateway.client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 200, reply.text
            assert len(proxy.forwarded) == 1
            span = await gateway.span(reply.headers["x-spanlab-span-id"])
    stored = str(span)
    assert "[REDACTED]" in stored
    assert PASSWORD not in stored and token not in stored
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in logged and token not in logged and "p%40ss" not in logged


def test_config_show_keeps_proxy_passwords_out(tmp_path: Path) -> None:
    config = tmp_path / "spanlab.toml"
    config.write_text(
        'proxy = "http://alice:s3cret-global@proxy.test:3128"\n'
        "[providers.openai]\n"
        'base_url = "https://api.openai.com/v1"\n'
        'proxy = "http://bob:s3cret-own@proxy.test:3128"\n'
        "verify = false\n"
    )
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "[REDACTED]@proxy.test:3128" in result.output
    assert '"verify": false' in result.output


async def test_the_route_to_an_origin_is_decided_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the per-call path: later calls (and later connections) reuse the decision."""
    decided: list[tuple[str, str, int]] = []
    decide = Network._decide

    def counting(self: Network, key: tuple[str, str, int]) -> Any:
        decided.append(key)
        return decide(self, key)

    monkeypatch.setattr(Network, "_decide", counting)
    async with upstream_server() as upstream, connect_proxy() as proxy:
        network = Network(env={"HTTP_PROXY": proxy.url})
        assert await calls(ConnectionPool(network=network), upstream.url, 3) == [CHAT_REPLY] * 3
        assert await calls(ConnectionPool(network=network), upstream.url, 1) == [CHAT_REPLY]
    assert len(decided) == 1
    assert len(proxy.forwarded) == 4
