"""Where a response goes: the `ResponseSink` protocol (an ASGI connection, or a
collector in process) and `send_error`, which answers a call with the gateway's
error shape through any sink."""

from __future__ import annotations

from typing import Protocol

from gateway.capture.span import Span
from gateway.errors import SpanlabError


class ResponseSink(Protocol):
    """Where a response goes: an ASGI connection, or a collector in process."""

    started: bool
    client_gone: bool

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    async def send(self, data: bytes) -> None: ...

    async def end(self) -> None: ...


async def send_error(sink: ResponseSink, exc: SpanlabError, span: Span | None = None) -> None:
    body = exc.to_json()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    if span is not None:
        headers.append((b"x-spanlab-trace-id", span.context.trace_id.encode()))
        headers.append((b"x-spanlab-span-id", span.context.span_id.encode()))
        span.response_body = body
    await sink.start(exc.status_code, headers)
    await sink.send(body)
    await sink.end()
