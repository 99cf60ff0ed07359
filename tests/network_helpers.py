"""Real loopback pieces for the upstream client's network tests: a CA generated with
the ``openssl`` CLI (a server and a client certificate signed by it), a minimal
HTTP/1.1 upstream (plain or TLS) that counts what it sees, and a CONNECT / forward
proxy that counts its tunnels and the requests it forwards."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.config import Settings
from gateway.http.upstream import Timeouts, UpstreamRequest, UpstreamURL

CHAT_REPLY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)


def chat_request(url: str, headers: list[tuple[str, str]] | None = None) -> UpstreamRequest:
    """A chat-completions POST to the upstream at ``url``, for the client tests."""
    return UpstreamRequest(
        "POST",
        UpstreamURL.parse(url + "/v1/chat/completions"),
        headers or [],
        b"{}",
        Timeouts(5, 5, 5),
    )


def provider_settings(
    tmp_path: Path, url: str, provider: dict[str, Any] | None = None, **raw: Any
) -> Settings:
    """Settings with one `openai` provider at ``url`` (its options in ``provider``)."""
    tmp_path.mkdir(exist_ok=True)
    return Settings.from_mapping(
        {
            "db": str(tmp_path / "spanlab.db"),
            "providers": {"openai": {"base_url": url + "/v1", **(provider or {})}},
            **raw,
        }
    )


PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def clear_proxy_env(monkeypatch: object) -> None:
    """The tests decide the proxies: none inherited from the machine's environment."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)  # type: ignore[attr-defined]
        monkeypatch.delenv(name.upper(), raising=False)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LocalCA:
    ca: str  # the CA certificate (PEM)
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


def make_ca(folder: Path) -> LocalCA:
    """A CA, and a certificate for 127.0.0.1 / localhost (server and client use) signed
    by it, with what Python's strict X.509 checks want (key identifiers, CA flags)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    (folder / "leaf.cnf").write_text(
        "basicConstraints=CA:FALSE\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Spanlab Test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    for name in ("server", "client"):
        run(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", "/CN=127.0.0.1",
        )  # fmt: skip
        run(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", "leaf.cnf",
        )  # fmt: skip
    return LocalCA(
        ca=str(folder / "ca.pem"),
        server_cert=str(folder / "server.pem"),
        server_key=str(folder / "server.key"),
        client_cert=str(folder / "client.pem"),
        client_key=str(folder / "client.key"),
    )


@dataclass
class Upstream:
    """What a loopback upstream saw."""

    url: str = ""
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    client_certs: list[object] = field(default_factory=list)


Replier = Callable[[bytes], bytes]


def reply_json(head: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(CHAT_REPLY),
        CHAT_REPLY,
    )


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """One request's head (its body, by Content-Length, read and dropped)."""
    request = await read_whole_request(reader)
    return None if request is None else request[0]


async def read_whole_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request's head and body (by Content-Length)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(_header(head, b"content-length") or 0)
        return head, await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return None


@contextlib.asynccontextmanager
async def upstream_server(
    tls: ssl.SSLContext | None = None, replier: Replier = reply_json
) -> AsyncIterator[Upstream]:
    """An HTTP/1.1 upstream on 127.0.0.1 answering every request with ``replier``."""
    seen = Upstream()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            seen.client_certs.append(ssl_object.getpeercert())
        try:
            while (head := await read_request(reader)) is not None:
                seen.heads.append(head)
                writer.write(replier(head))
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    seen.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield seen
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


@dataclass
class Proxy:
    """What the loopback proxy saw."""

    url: str = ""
    address: str = ""
    tunnels: list[str] = field(default_factory=list)  # CONNECT authorities
    forwarded: list[bytes] = field(default_factory=list)  # absolute-form request lines
    authorizations: list[str | None] = field(default_factory=list)
    required_auth: str | None = None  # answer 407 without this Proxy-Authorization


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


@contextlib.asynccontextmanager
async def connect_proxy(required_auth: str | None = None) -> AsyncIterator[Proxy]:
    """An HTTP proxy on 127.0.0.1: CONNECT tunnels, and absolute-form requests
    forwarded (Proxy-Authorization removed) on a connection of their own."""
    seen = Proxy(required_auth=required_auth)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_whole_request(reader)) is not None:
                head, body = request
                method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
                authorization = _header(head, b"proxy-authorization")
                seen.authorizations.append(authorization)
                if seen.required_auth is not None and authorization != seen.required_auth:
                    writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
                    writer.write(b"content-length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                if method == b"CONNECT":
                    seen.tunnels.append(target.decode())
                    host, _, port = target.decode().rpartition(":")
                    up_reader, up_writer = await asyncio.open_connection(host, int(port))
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await writer.drain()
                    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                    return
                seen.forwarded.append(head.split(b"\r\n", 1)[0])
                await _forward(head, body, target, writer)
        finally:
            writer.close()

    async def _forward(
        head: bytes, body: bytes, target: bytes, writer: asyncio.StreamWriter
    ) -> None:
        rest = target.split(b"://", 1)[1]
        authority, _, path = rest.partition(b"/")
        host, _, port = authority.decode().rpartition(":")
        lines = head.split(b"\r\n")
        method, _, version = lines[0].split(b" ", 2)
        kept = [ln for ln in lines[1:] if not ln.lower().startswith(b"proxy-authorization:")]
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        up_writer.write(b"\r\n".join([method + b" /" + path + b" " + version, *kept]) + body)
        await up_writer.drain()
        reply_head = await up_reader.readuntil(b"\r\n\r\n")
        length = int(_header(reply_head, b"content-length") or 0)
        writer.write(reply_head + await up_reader.readexactly(length))
        await writer.drain()
        up_writer.close()

    def spawn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Awaitable[None]:
        task = asyncio.ensure_future(handle(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    server = await asyncio.start_server(spawn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    seen.address = f"127.0.0.1:{port}"
    seen.url = f"http://{seen.address}"
    try:
        yield seen
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


@dataclass
class RunningGateway:
    app: Any
    client: httpx.AsyncClient

    async def span(self, span_id: str) -> dict[str, Any]:
        await self.app.state.spanlab.writer.flush()
        response = await self.client.get(f"/spans/{span_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    """The app with its lifespan, in process, calling upstreams through the real client
    (no transport injected), so proxies and TLS are the production path's."""
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")
    try:
        yield RunningGateway(app, client)
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
