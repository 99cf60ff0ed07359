"""Many calls at once: each gets its own span, none lost, none doubled."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import CLIENT_KEY, GatewayProcess

pytestmark = pytest.mark.e2e

CALLS = 50


async def one_call(client: httpx.AsyncClient, i: int, thread: str) -> tuple[str, str]:
    """(span id, output text the client received)."""
    stream = i % 2 == 0
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"call {i}"}],
        "stream": stream,
    }
    headers = {"x-thread-id": thread, "x-test-id": f"{thread}-{i}"}
    if i % 10 == 3:
        headers["x-mock-scenario"] = "tools"
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200
        raw = await r.aread()
        span_id = r.headers["x-spanlab-span-id"]
    if not stream:
        return span_id, orjson.loads(raw)["choices"][0]["message"]["content"] or ""
    text = ""
    for line in raw.decode().split("\n"):
        if line.startswith("data: {"):
            delta = orjson.loads(line[6:])["choices"][0]["delta"]
            text += delta.get("content") or ""
    assert raw.rstrip().endswith(b"data: [DONE]")
    return span_id, text


async def test_concurrent_calls_produce_exactly_one_span_each(
    gateway: GatewayProcess, test_id: str
) -> None:
    async with httpx.AsyncClient(
        base_url=gateway.base_url,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        limits=httpx.Limits(max_connections=CALLS),
        timeout=20.0,
    ) as client:
        results = await asyncio.gather(*(one_call(client, i, test_id) for i in range(CALLS)))
    span_ids = [span_id for span_id, _ in results]
    assert len(set(span_ids)) == CALLS

    spans = await asyncio.to_thread(gateway.wait_spans, CALLS, thread=test_id)
    assert sorted(s["span_id"] for s in spans) == sorted(span_ids)
    by_id = {s["span_id"]: s for s in spans}
    for i, (span_id, text) in enumerate(results):
        span = by_id[span_id]
        assert span["status"] == "ok", span
        assert span["stream"] is (i % 2 == 0)
        assert span["input_preview"] == f"call {i}"
        if i % 10 == 3:
            assert span["finish_reason"] == "tool_calls"
        else:
            assert text == mock.CONTENT
            assert span["output_text"] == mock.CONTENT
        assert span["usage"]["total_tokens"] == mock.PROMPT_TOKENS + mock.COMPLETION_TOKENS
    await asyncio.to_thread(gateway.wait_idle)
