"""A proxied response's events and limits: what `ProxyPipeline` (gateway/proxy/pipeline.py)
does with each event of a stream it relays, what a span keeps of a response past
``max_capture_bytes``, and the errors that end a response (an error event for a
stream, in the stream's own dialect).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.capture.span import STATUS_ERROR, Span
from gateway.errors import SpanlabError, UpstreamProtocol, UpstreamTimeout
from gateway.http.sse import SSESplitter, parse_event
from gateway.http.upstream import (
    UpstreamDecodingError,
    UpstreamTimeoutError,
    UpstreamTransportError,
)
from gateway.proxy.providers.anthropic_response import ChatStreamTranslator

RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Past max_capture_bytes, a stream's span still keeps its final events (usage, finish
# reason, error: what cost and status come from) when they are at most this size.
FINAL_EVENT_MAX = 64 * 1024


class StreamFailure(Exception):
    """Ends a relayed stream with ``error`` (its error event), the events before it sent."""

    def __init__(self, error: SpanlabError) -> None:
        super().__init__(error.message)
        self.error = error


def read_failure(provider: str | None, exc: UpstreamTransportError) -> SpanlabError:
    """What a failure while reading a (non-stream) response body is to the client."""
    if isinstance(exc, UpstreamTimeoutError):
        return UpstreamTimeout(f"Provider {provider!r} stopped sending its response.")
    if isinstance(exc, UpstreamDecodingError):
        return undecodable(provider, exc)
    return UpstreamProtocol(
        f"Provider {provider!r} broke off its response: {exc or type(exc).__name__}"
    )


def too_large(provider: str | None, limit: int) -> UpstreamProtocol:
    """A response past ``limit`` (0: past max_capture_bytes, and to be translated)."""
    if not limit:
        return UpstreamProtocol(
            f"Provider {provider!r} sent a response larger than max_capture_bytes, too"
            " large to translate to the OpenAI format (a translated body is read whole).",
            code="response_too_large",
        )
    return UpstreamProtocol(
        f"Provider {provider!r} sent a response larger than max_response_bytes"
        f" ({limit} bytes, decoded).",
        code="response_too_large",
    )


def mark_truncated(span: Span, limit: int) -> dict[str, int]:
    """Say in the span that it keeps only part of the response (``response_bytes``,
    the whole response's decoded size as the upstream sent it, is filled in when it
    ends)."""
    mark = {"max_capture_bytes": limit}
    span.context.attributes["truncated_capture"] = mark
    return mark


class StreamCapture:
    """The event data a stream's span keeps: at most ``room`` bytes of it, then only
    the small final events (usage, finish reason, errors)."""

    __slots__ = ("events", "limit", "mark", "room", "span")

    def __init__(self, span: Span, limit: int) -> None:
        self.events: list[bytes] = []
        self.span = span
        self.limit = limit
        self.room = limit
        self.mark: dict[str, int] | None = None

    def overflow(self, data: bytes, obj: dict[str, Any], fmt: str) -> None:
        """An event past the limit: kept only if it is a small final one."""
        if self.mark is None:
            self.room = -1  # nothing after a dropped event is kept in order either
            self.mark = mark_truncated(self.span, self.limit)
        if not is_final_event(obj, fmt):
            return
        response = obj.get("response")
        if len(data) > FINAL_EVENT_MAX and isinstance(response, dict):
            # A Responses API final event repeats the whole output: its status and
            # usage are kept without it.
            response = {k: v for k, v in response.items() if k != "output"}
            data = orjson.dumps({**obj, "response": response})
        if len(data) <= FINAL_EVENT_MAX:
            self.events.append(data)


def is_final_event(obj: dict[str, Any], fmt: str) -> bool:
    """Whether a stream event carries usage, a finish reason or an error."""
    if fmt == "chat" or fmt == "completions":
        if "error" in obj or obj.get("usage"):
            return True
        choices = obj.get("choices")
        return isinstance(choices, list) and any(
            isinstance(c, dict) and c.get("finish_reason") for c in choices
        )
    kind = obj.get("type")
    if fmt == "responses":
        return kind in RESPONSES_TERMINAL or kind == "error"
    return kind in ("message_delta", "message_stop", "error")


def undecodable(provider: str | None, exc: UpstreamDecodingError) -> UpstreamProtocol:
    # Not a dropped connection: the bytes arrived, but do not decode as their Content-Encoding.
    return UpstreamProtocol(
        f"Provider {provider!r} sent a body that does not decode as its Content-Encoding: {exc}"
    )


def inspect_event(
    raw: bytes, fmt: str, capture: StreamCapture, span: Span, inject_usage: bool
) -> tuple[bool, bool]:
    """(forward this event?, is the stream complete?) for one whole SSE event."""
    if raw.startswith(b"data: ") and raw.count(b"\n") <= 2 and b"\r" not in raw:
        data = raw[6:].rstrip(b"\n")  # the common case: one data line
    else:
        parsed = parse_event(raw)
        if not parsed.data:
            return True, False  # a comment or keep-alive: forwarded as is
        data = parsed.data.encode()
    if data == b"[DONE]":
        return True, fmt in ("chat", "completions")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise StreamFailure(
            UpstreamProtocol(
                f"Provider {span.provider!r} sent a stream event that is not JSON.",
                code="upstream_stream_malformed",
            )
        ) from None
    if not isinstance(obj, dict):
        raise StreamFailure(
            UpstreamProtocol(
                f"Provider {span.provider!r} sent a stream event that is not a JSON object.",
                code="upstream_stream_malformed",
            )
        )
    # The span keeps the event's JSON text, not the parsed object: a fifth of the
    # memory for each stream in flight; the writer parses it again (`finalize`).
    room = capture.room - len(data)
    if room >= 0:
        capture.room = room
        capture.events.append(data)
    else:
        capture.overflow(data, obj, fmt)
    if fmt == "chat" or fmt == "completions":
        if "error" in obj and "choices" not in obj:
            span.status = STATUS_ERROR
            return True, True
        if inject_usage and obj.get("usage") is not None and not obj.get("choices"):
            return False, False
        return True, False
    kind = obj.get("type")
    if fmt == "responses":
        if kind == "error" or kind == "response.failed":
            span.status = STATUS_ERROR
        return True, kind in RESPONSES_TERMINAL or kind == "error"
    # anthropic
    if kind == "error":
        span.status = STATUS_ERROR
        return True, True
    return True, kind == "message_stop"


async def translated_stream(
    chunks: AsyncIterator[bytes], translator: ChatStreamTranslator
) -> AsyncIterator[bytes]:
    """The bytes of an upstream Anthropic stream as OpenAI chat SSE bytes, translated
    event by event as they arrive (what follows the final event passes untranslated,
    for the drain)."""
    splitter = SSESplitter()
    async for chunk in chunks:
        if translator.done:
            yield chunk
            continue
        out: list[bytes] = []
        for raw in splitter.feed(chunk):
            try:
                out.append(translator.translate(raw))
            except UpstreamProtocol as exc:
                raise StreamFailure(exc) from None
            if translator.done:
                break
        data = b"".join(out)
        if data:
            yield data


def error_event(fmt: str, exc: SpanlabError) -> bytes:
    """The SSE event that tells a streaming client the stream failed."""
    payload: dict[str, Any]
    if fmt == "anthropic":
        payload = {"type": "error", "error": {"type": "api_error", "message": exc.message}}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    if fmt == "responses":
        payload = {
            "type": "error",
            "code": exc.code,
            "message": exc.message,
            "param": None,
        }
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    return b"data: " + exc.to_json() + b"\n\n"
