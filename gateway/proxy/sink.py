"""Where a response goes: the `ResponseSink` protocol (an ASGI connection, or a
collector in process), `send_error`, which answers a call with the gateway's error
shape through any sink, and the in-process sinks: `CollectingSink` (a whole answer,
or a stream's text handed on as it arrives: experiment runs, the UI's model list)
and `ListSink` (one provider's model list, headers kept, for the merged list)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson

from gateway.capture.span import Span
from gateway.errors import SpanlabError
from gateway.http.sse import SSESplitter, parse_event
from gateway.proxy.operations import STREAM_FORMATS

# Called with each piece of streamed text as it arrives.
Delta = Callable[[str], Awaitable[None]]


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


def delta_text(fmt: str, event: Mapping[str, Any]) -> str | None:
    """The text one stream event adds, in any of the dialects the proxy relays."""
    if fmt in ("chat", "completions"):
        choices = event.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            first = choices[0]
            if fmt == "completions":
                text = first.get("text")
            else:
                text = (first.get("delta") or {}).get("content")
            return text if isinstance(text, str) and text else None
        return None
    kind = event.get("type")
    if fmt == "responses" and kind == "response.output_text.delta":
        text = event.get("delta")
        return text if isinstance(text, str) else None
    if fmt == "anthropic" and kind == "content_block_delta":
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            return str(delta["text"])
    return None


class CollectingSink:
    """A `ResponseSink` in process: keeps the response, and hands each piece of
    streamed text to ``on_delta`` as it arrives."""

    def __init__(self, operation: str, on_delta: Delta | None = None) -> None:
        self.started = False
        self.client_gone = False
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self._format = STREAM_FORMATS.get(operation, "chat")
        self._on_delta = on_delta
        self._streaming = False
        self._splitter = SSESplitter()

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.status = status
        self.headers = headers
        content_type = dict(headers).get(b"content-type", b"")
        self._streaming = content_type.startswith(b"text/event-stream")

    async def send(self, data: bytes) -> None:
        if not self._streaming or self._on_delta is None:
            self.body += data
            return
        for raw in self._splitter.feed(data):
            event = parse_event(raw)
            if not event.data or event.data == "[DONE]":
                continue
            try:
                parsed = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                text = delta_text(self._format, parsed)
                if text:
                    await self._on_delta(text)

    async def end(self) -> None:
        return None

    def header(self, name: bytes) -> str | None:
        """A response header's value (``name`` lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


class ListSink:
    """A `ResponseSink` that keeps one provider's whole answer."""

    __slots__ = ("body", "client_gone", "headers", "started", "status")

    def __init__(self) -> None:
        self.started = False
        self.client_gone = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.status = status
        self.headers = headers

    async def send(self, data: bytes) -> None:
        self.body += data

    async def end(self) -> None:
        return None
