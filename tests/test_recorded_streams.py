"""Provider streams (tests/upstream/recordings/, reconstructed from the API references)
through the gateway with both upstream clients: what the client gets is what the
provider sent, and the span reads the provider's own dialect correctly."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import GatewayFactory
from tests.fakes import FakeUpstream
from tests.upstream.replay import data, events, replay
from tests.upstream.transport import to_response

pytestmark = pytest.mark.both_clients


def replaying(name: str) -> FakeUpstream:
    return FakeUpstream(handler=lambda request: to_response(replay(name)))


def chat_tool_calls(chunks: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(id, name, arguments) of each streamed tool call, assembled from its deltas."""
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                entry = calls.setdefault(call["index"], ["", "", ""])
                entry[0] = call.get("id") or entry[0]
                entry[1] = call.get("function", {}).get("name") or entry[1]
                entry[2] += call.get("function", {}).get("arguments") or ""
    return [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]


async def test_openai_chat_stream_with_tool_calls(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(replaying("openai_chat_tool_calls"))
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = await gw.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.content == b"".join(events("openai_chat_tool_calls"))
    recorded = data("openai_chat_tool_calls")
    expected = chat_tool_calls(recorded)
    assert len(expected) == 2 and all(orjson.loads(args) for _, _, args in expected)
    span = await gw.span(r.headers["x-spanlab-span-id"])
    stored = span["response"]["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in stored] == (
        expected
    )
    assert span["finish_reason"] == "tool_calls"
    assert span["usage"]["total_tokens"] == recorded[-1]["usage"]["total_tokens"]


async def test_openai_responses_stream(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(replaying("openai_responses"))
    r = await gw.client.post(
        "/v1/responses", json={"model": "gpt-4o", "input": "Say hi", "stream": True}
    )
    assert r.status_code == 200
    assert r.content == b"".join(events("openai_responses"))
    recorded = data("openai_responses")
    text = "".join(e["delta"] for e in recorded if e["type"] == "response.output_text.delta")
    final = recorded[-1]["response"]
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["output_text"] == text
    assert span["finish_reason"] == final["status"] == "completed"
    assert span["usage"]["total_tokens"] == final["usage"]["total_tokens"]


ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test-key", "anthropic-version": "2023-06-01"}


async def test_anthropic_messages_stream_with_tool_use(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(replaying("anthropic_messages_tool_use"))
    body = {
        "model": "anthropic/claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Weather in San Francisco?"}],
        "stream": True,
    }
    r = await gw.client.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert r.status_code == 200, r.text
    assert r.content == b"".join(events("anthropic_messages_tool_use"))
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["finish_reason"] == "tool_use"
    recorded = data("anthropic_messages_tool_use")
    delta = next(e for e in recorded if e["type"] == "message_delta")
    assert span["usage"]["completion_tokens"] == delta["usage"]["output_tokens"]


async def test_anthropic_stream_translated_for_an_openai_client(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(replaying("anthropic_messages_tool_use"))
    body = {
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Weather in San Francisco?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        "stream": True,
    }
    r = await gw.client.post(
        "/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-ant-test-key"}
    )
    assert r.status_code == 200, r.text
    chunks = [
        orjson.loads(event[len(b"data: ") :])
        for event in r.content.split(b"\n\n")
        if event.startswith(b"data: {")
    ]
    assert r.content.endswith(b"data: [DONE]\n\n")
    recorded = data("anthropic_messages_tool_use")
    text = "".join(
        e["delta"]["text"] for e in recorded if e.get("delta", {}).get("type") == "text_delta"
    )
    arguments = "".join(
        e["delta"]["partial_json"]
        for e in recorded
        if e.get("delta", {}).get("type") == "input_json_delta"
    )
    tool = next(
        e["content_block"]
        for e in recorded
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
    )
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == text
    assert chat_tool_calls(chunks) == [(tool["id"], tool["name"], arguments)]
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["finish_reason"] == "tool_calls"
