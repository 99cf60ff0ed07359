"""How the ``spanlab`` experiment commands talk to a gateway: over HTTP to a running
one (``--url``), or to one run in process on ``--db``/``--config`` through an ASGI
transport that streams (httpx's own ASGITransport waits for the whole body, which
would hold back ``--stream``). Either way the commands see the HTTP API exactly as
the UI and scripts do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
import orjson
from starlette.types import ASGIApp, Message

from gateway.config import Settings
from gateway.http.sse import SSESplitter, parse_event

T = TypeVar("T")
KEY_ENV = "SPANLAB_KEY"


class APIError(click.ClickException):
    """An error answer from the gateway, shown as its message."""

    def __init__(self, status: int, body: bytes) -> None:
        try:
            error = orjson.loads(body)["error"]
            message = f"{error.get('message')} ({status} {error.get('code')})"
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = f"HTTP {status}: {body[:500].decode(errors='replace')}"
        super().__init__(message)
        self.status = status


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """httpx to an ASGI app in process, with the response body streamed as the app
    sends it (httpx's own ASGITransport waits for the whole body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 0),
            "root_path": "",
        }
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        started = asyncio.Event()
        disconnected = asyncio.Event()
        head: dict[str, Any] = {}
        body_sent = False

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                head["status"] = message["status"]
                head["headers"] = message.get("headers", [])
                started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    chunks.put_nowait(message["body"])
                if not message.get("more_body", False):
                    chunks.put_nowait(None)

        async def serve() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                started.set()
                chunks.put_nowait(None)

        task = asyncio.create_task(serve())
        await started.wait()
        if "status" not in head:
            await task  # the app failed before answering: its exception
            raise httpx.RemoteProtocolError("the application sent no response")
        return httpx.Response(
            head["status"],
            headers=head["headers"],
            stream=_QueueStream(chunks, task, disconnected),
            request=request,
        )


class _QueueStream(httpx.AsyncByteStream):
    def __init__(
        self, chunks: asyncio.Queue[bytes | None], task: asyncio.Task[None], gone: asyncio.Event
    ) -> None:
        self.chunks = chunks
        self.task = task
        self.gone = gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self.gone.set()
        with contextlib.suppress(Exception):
            await self.task


@contextlib.asynccontextmanager
async def gateway_client(settings: Settings, url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    timeout = httpx.Timeout(settings.connect_timeout, read=settings.request_timeout + 30)
    if url:
        # A gateway with keys on: the key in SPANLAB_KEY (a gateway key, not a setting).
        key = os.environ.get(KEY_ENV)
        async with httpx.AsyncClient(
            base_url=url.rstrip("/"),
            timeout=timeout,
            trust_env=False,
            headers={"x-spanlab-key": key} if key else None,
        ) as client:
            yield client
        return
    from gateway.app import create_app

    # In process, no key is checked: whoever can open the database file is past any key.
    app = create_app(settings, check_keys=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=StreamingASGITransport(app), base_url="http://localhost", timeout=timeout
        ) as client,
    ):
        yield client


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> Any:
    response = await send(
        client, method, path, json=json, params=params, headers=headers, content=content
    )
    return response.json() if response.content else None


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """The gateway's answer to one request, whatever its body (``json``, or ``content``
    as is); an unreachable gateway is a `click.ClickException`, an error answer an
    `APIError`."""
    try:
        response = await client.request(
            method, path, json=json, content=content, params=params, headers=headers
        )
    except httpx.TransportError as exc:
        raise click.ClickException(
            f"Could not reach the gateway at {client.base_url}: {exc or type(exc).__name__}"
        ) from None
    if response.status_code >= 400:
        raise APIError(response.status_code, response.content)
    return response


def run_async(
    settings: Settings, url: str | None, work: Callable[[httpx.AsyncClient], Awaitable[T]]
) -> T:
    if not url and settings.db != ":memory:" and not Path(settings.db).exists():
        raise click.ClickException(
            f"No database at {settings.db}. Pass --db (or --url to use a running gateway)."
        )

    async def main() -> T:
        async with gateway_client(settings, url) as client:
            return await work(client)

    return asyncio.run(main())


async def run_experiment(
    client: httpx.AsyncClient,
    experiment_id: str,
    *,
    stream: bool,
    api_key: str | None,
    on_delta: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run and return the run JSON; with ``stream``, ``on_delta`` gets the text live."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    path = f"/experiments/{experiment_id}/run"
    if not stream:
        run: dict[str, Any] = await call(client, "POST", path, headers=headers)
        return run
    async with client.stream("POST", path, params={"stream": "true"}, headers=headers) as response:
        if response.status_code >= 400:
            raise APIError(response.status_code, await response.aread())
        splitter = SSESplitter()
        async for chunk in response.aiter_bytes():
            for raw in splitter.feed(chunk):
                event = parse_event(raw)
                if not event.data:
                    continue
                data = orjson.loads(event.data)
                if event.event == "delta" and on_delta is not None:
                    on_delta(data["content"])
                elif event.event == "done":
                    return dict(data)
                elif event.event == "error":
                    if data.get("run"):
                        return dict(data["run"])
                    raise click.ClickException(str(data.get("error", {}).get("message")))
    raise click.ClickException("The gateway ended the run's stream without a result.")
