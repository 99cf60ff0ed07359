"""TLS trust of the upstream client (`gateway.http.network`) against a loopback TLS
server whose certificate is signed by a CA made for the test: reached only when that
CA is trusted (the ca_bundle setting, a provider's own, or SSL_CERT_FILE), a clear
502 otherwise; verify = false works for its provider and warns; client certificates."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.http.client import ConnectionPool
from gateway.http.network import Network, OriginOptions
from gateway.http.upstream import (
    UpstreamConnectError,
    UpstreamProtocolError,
)
from tests.network_helpers import (
    LocalCA,
    chat_request,
    clear_proxy_env,
    provider_settings,
    running_gateway,
    upstream_server,
)


@pytest.fixture(autouse=True)
def no_inherited_trust_or_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_env(monkeypatch)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


async def call(pool: ConnectionPool, url: str) -> bytes:
    try:
        response = await pool.send(chat_request(url))
        body = await response.read()
        await response.aclose()
        return body
    finally:
        await pool.aclose()


async def test_a_server_signed_by_an_unknown_ca_is_refused_with_a_clear_error(
    test_ca: LocalCA,
) -> None:
    async with upstream_server(test_ca.server_context()) as upstream:
        pool = ConnectionPool(network=Network(env={}))
        with pytest.raises(UpstreamConnectError, match=r"not trusted.*ca_bundle"):
            await call(pool, upstream.url)
        assert upstream.heads == []


async def test_the_ca_bundle_setting_is_trusted(test_ca: LocalCA, tmp_path: Path) -> None:
    async with upstream_server(test_ca.server_context()) as upstream:
        network = Network.from_settings(
            provider_settings(tmp_path, upstream.url, ca_bundle=test_ca.ca), env={}
        )
        assert b"chat.completion" in await call(ConnectionPool(network=network), upstream.url)


async def test_a_providers_own_ca_bundle_is_trusted(test_ca: LocalCA, tmp_path: Path) -> None:
    async with upstream_server(test_ca.server_context()) as upstream:
        config = provider_settings(tmp_path, upstream.url, {"ca_bundle": test_ca.ca})
        network = Network.from_settings(config, env={})
        assert b"chat.completion" in await call(ConnectionPool(network=network), upstream.url)


async def test_ssl_cert_file_from_the_environment_is_trusted(test_ca: LocalCA) -> None:
    async with upstream_server(test_ca.server_context()) as upstream:
        pool = ConnectionPool(network=Network(env={"SSL_CERT_FILE": test_ca.ca}))
        assert b"chat.completion" in await call(pool, upstream.url)


@pytest.fixture
def cert_dir(test_ca: LocalCA, tmp_path: Path) -> Path:
    """A c_rehash-style directory: the CA under its subject hash."""
    name = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", test_ca.ca],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / f"{name}.0").write_bytes(Path(test_ca.ca).read_bytes())
    return folder


async def test_ssl_cert_dir_from_the_environment_is_trusted(
    test_ca: LocalCA, cert_dir: Path
) -> None:
    async with upstream_server(test_ca.server_context()) as upstream:
        pool = ConnectionPool(network=Network(env={"SSL_CERT_DIR": str(cert_dir)}))
        assert b"chat.completion" in await call(pool, upstream.url)


async def test_verify_false_reaches_the_server_and_warns_loudly(
    test_ca: LocalCA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with upstream_server(test_ca.server_context()) as upstream:
        config = provider_settings(tmp_path, upstream.url, {"verify": False})
        with caplog.at_level(logging.WARNING, logger="gateway.http.network"):
            network = Network.from_settings(config, env={})
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "TLS VERIFICATION IS OFF" in warnings[0].getMessage()
        assert "'openai'" in warnings[0].getMessage()
        assert b"chat.completion" in await call(ConnectionPool(network=network), upstream.url)


def test_verify_is_a_providers_setting_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        provider_settings(tmp_path, "https://127.0.0.1:1", verify=False)
    with pytest.raises(ConfigError, match="must be a bool"):
        provider_settings(tmp_path, "https://127.0.0.1:1", {"verify": "sometimes"})


def test_a_missing_ca_file_fails_the_start(tmp_path: Path) -> None:
    config = provider_settings(
        tmp_path, "https://127.0.0.1:1", ca_bundle=str(tmp_path / "nope.pem")
    )
    with pytest.raises(ConfigError, match="TLS settings"):
        Network.from_settings(config, env={})


async def test_a_client_certificate_is_presented_when_configured(
    test_ca: LocalCA, tmp_path: Path
) -> None:
    server = test_ca.server_context(require_client_cert=True)
    async with upstream_server(server) as upstream:
        without = ConnectionPool(network=Network(OriginOptions(ca_bundle=test_ca.ca), env={}))
        with pytest.raises((UpstreamConnectError, UpstreamProtocolError)):
            await call(without, upstream.url)
        assert upstream.heads == []

        config = provider_settings(
            tmp_path,
            upstream.url,
            {"client_cert": test_ca.client_cert, "client_key": test_ca.client_key},
            ca_bundle=test_ca.ca,
        )
        network = Network.from_settings(config, env={})
        assert b"chat.completion" in await call(ConnectionPool(network=network), upstream.url)
        assert upstream.client_certs[-1]  # the server saw (and verified) a certificate


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def test_the_gateway_reaches_a_private_ca_upstream_only_when_told_to_trust_it(
    test_ca: LocalCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with upstream_server(test_ca.server_context()) as upstream:
        async with running_gateway(provider_settings(tmp_path / "a", upstream.url)) as untrusting:
            refused = await untrusting.client.post("/v1/chat/completions", json=CHAT)
        assert refused.status_code == 502
        assert "not trusted" in refused.json()["error"]["message"]
        assert upstream.heads == []

        trusting = provider_settings(tmp_path / "b", upstream.url, ca_bundle=test_ca.ca)
        async with running_gateway(trusting) as by_setting:
            reply = await by_setting.client.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "hi"

        monkeypatch.setenv("SSL_CERT_FILE", test_ca.ca)
        async with running_gateway(provider_settings(tmp_path / "c", upstream.url)) as by_env:
            assert (await by_env.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert len(upstream.heads) == 2
