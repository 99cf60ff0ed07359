"""The ``upstream_client`` setting and the httpx transport behind ``"httpx"``: the value
is checked, and proxies from the environment are used as httpx's client would use them
(a real loopback proxy sees the call; a ``NO_PROXY`` host goes direct)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.http import upstream as up
from gateway.http.httpx_transport import build_httpx_transport, bypassed


def test_upstream_client_must_be_builtin_or_httpx() -> None:
    assert Settings.from_mapping({}).upstream_client == "builtin"
    assert Settings.from_mapping({"upstream_client": "httpx"}).upstream_client == "httpx"
    with pytest.raises(ConfigError, match="upstream_client must be one of builtin, httpx"):
        Settings.from_mapping({"upstream_client": "curl"})
    env = {"SPANLAB_UPSTREAM_CLIENT": "httpx"}
    assert Settings.load(env=env).upstream_client == "httpx"


@pytest.mark.parametrize(
    ("host", "no_proxy", "direct"),
    [
        ("api.example.com", "", False),
        ("api.example.com", "*", True),
        ("api.example.com", "example.com", True),
        ("api.example.com", ".example.com", True),
        ("api.example.com", "other.com, api.example.com", True),
        ("badexample.com", "example.com", False),
        ("127.0.0.1", "localhost,127.0.0.1", True),
    ],
)
def test_no_proxy_matches_hosts_and_domains(host: str, no_proxy: str, direct: bool) -> None:
    assert bypassed(host, no_proxy) is direct


@pytest.fixture
async def recording_proxy() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback HTTP proxy stand-in: records each request line, answers 200."""
    lines: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines.append(head.split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nproxied")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], lines
    server.close()
    await server.wait_closed()


def request(url: str) -> up.UpstreamRequest:
    return up.UpstreamRequest(
        "GET", up.UpstreamURL.parse(url), [], None, up.Timeouts(connect=2.0, read=2.0, pool=2.0)
    )


async def test_the_httpx_client_sends_through_the_environments_proxy(
    recording_proxy: tuple[int, list[bytes]],
) -> None:
    port, lines = recording_proxy
    proxies = {"http": f"http://127.0.0.1:{port}", "no": "direct.invalid"}
    client = up.HttpxUpstream(build_httpx_transport(10, keepalive_expiry=5.0, proxies=proxies))
    try:
        response = await client.send(request("http://upstream.invalid/v1/models"))
        assert await response.read() == b"proxied"
        await response.aclose()
        # Absolute-form: the proxy is asked for the upstream's URL.
        assert lines == [b"GET http://upstream.invalid/v1/models HTTP/1.1"]
        # A NO_PROXY host is not sent to the proxy (it does not resolve: a connect error).
        with pytest.raises(up.UpstreamConnectError):
            await client.send(request("http://direct.invalid/v1/models"))
        assert len(lines) == 1
    finally:
        await client.aclose()


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[str, str]:
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
async def h2_server(tls_cert: tuple[str, str]) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TLS server on loopback that speaks only HTTP/2 (ALPN h2): records each request's
    :path and answers 200."""
    h2 = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    h2_events = pytest.importorskip("h2.events")
    paths: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.H2Connection(config=h2_config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2_events.RequestReceived):
                    paths.append(dict(event.headers)[b":path"])
                    body = b'{"over": "h2"}'
                    head = [(":status", "200"), ("content-length", str(len(body)))]
                    conn.send_headers(event.stream_id, head)
                    conn.send_data(event.stream_id, body, end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
        writer.close()

    key, cert = tls_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1], paths
    server.close()


async def test_the_httpx_client_speaks_http2_when_h2_is_installed(
    h2_server: tuple[int, list[bytes]], tls_cert: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, paths = h2_server
    monkeypatch.setenv("SSL_CERT_FILE", tls_cert[1])  # trusted the way httpx reads it
    client = up.HttpxUpstream(build_httpx_transport(10, keepalive_expiry=5.0, proxies={}))
    try:
        response = await client.send(request(f"https://127.0.0.1:{port}/v1/models"))
        assert response.status == 200
        assert await response.read() == b'{"over": "h2"}'
        await response.aclose()
    finally:
        await client.aclose()
    assert paths == [b"/v1/models"]
