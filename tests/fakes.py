"""A fake upstream for in-process tests: an httpx transport that answers like an
OpenAI-compatible (or Anthropic) API and records every request it receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


def chat_completion(
    content: str = "Hello there!",
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    prompt_tokens: int = 12,
    completion_tokens: int = 3,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
        message["content"] = None
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_chunks(
    pieces: list[str],
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    usage: dict[str, int] | None = None,
    finish_reason: str = "stop",
) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    for piece in pieces:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
    if usage is not None:
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


def sse(chunks: list[dict[str, Any]], *, done: bool = True) -> list[bytes]:
    events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    if done:
        events.append(b"data: [DONE]\n\n")
    return events


Handler = Callable[[httpx.Request], httpx.Response]
AsyncHandler = Callable[[httpx.Request], Awaitable[httpx.Response]]


@dataclass
class FakeUpstream:
    """Answers with ``handler`` (default: a chat completion, streamed if asked)."""

    handler: Handler | None = None
    # one that may wait (hold calls in flight together); tried before ``handler``
    async_handler: AsyncHandler | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(request)
        parsed = orjson.loads(body) if body else {}
        self.bodies.append(parsed)
        if self.async_handler is not None:
            return await self.async_handler(request)
        if self.handler is not None:
            return self.handler(request)
        if parsed.get("stream"):
            usage = None
            if (parsed.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
            return stream_response(sse(chat_chunks(["Hel", "lo", "!"], usage=usage)))
        return httpx.Response(200, json=chat_completion())

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def stream_response(
    events: list[bytes], *, delay: float = 0.0, status: int = 200, fail_after: int | None = None
) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for i, event in enumerate(events):
            if fail_after is not None and i == fail_after:
                raise httpx.RemoteProtocolError("peer closed connection mid-stream")
            if delay:
                await asyncio.sleep(delay)
            yield event

    return httpx.Response(
        status, headers={"content-type": "text/event-stream; charset=utf-8"}, content=body()
    )
