"""Chat completions through a real gateway, driven by the official OpenAI SDK."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import CLIENT_KEY, PROVIDER_KEY, REQUEST_TIMEOUT_S, GatewayProcess, sdk
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
# gpt-4o-mini list price, USD per million tokens (gateway/prices.json).
GPT_4O_MINI_INPUT, GPT_4O_MINI_OUTPUT = 0.15, 0.6


def expected_cost() -> float:
    return (
        mock.PROMPT_TOKENS * GPT_4O_MINI_INPUT + mock.COMPLETION_TOKENS * GPT_4O_MINI_OUTPUT
    ) / 1_000_000


def assert_usage(span: dict[str, Any]) -> None:
    assert span["usage"] == {
        "prompt_tokens": mock.PROMPT_TOKENS,
        "completion_tokens": mock.COMPLETION_TOKENS,
        "total_tokens": mock.PROMPT_TOKENS + mock.COMPLETION_TOKENS,
        "cached_tokens": None,
    }
    assert span["cost_usd"] == pytest.approx(expected_cost())


def test_non_streaming_chat_is_forwarded_and_captured(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    trace_id = os.urandom(16).hex()
    parent_id = os.urandom(8).hex()
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="mock/gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.2,
        seed=7,
        extra_body={"logprobs": False, "vendor_extension": {"keep": ["me"]}},
        extra_headers={
            "x-test-id": test_id,
            "traceparent": f"00-{trace_id}-{parent_id}-01",
            "x-thread-id": test_id,
            "x-label": "greeting",
            "x-tags": "team=search&env=e2e",
            "x-run-id": "run-" + test_id,
            "x-project-id": "proj-e2e",
        },
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == mock.CONTENT
    assert completion.model == "gpt-4o-mini" + mock.MODEL_SNAPSHOT
    span_id = raw.headers["x-spanlab-span-id"]
    assert raw.headers["x-spanlab-trace-id"] == trace_id
    assert len(span_id) == 16 and int(span_id, 16) >= 0
    assert raw.headers["x-request-id"] == "req_mock"  # upstream headers reach the client

    upstream = mock_upstream.find(test_id)
    assert upstream.path == "/v1/chat/completions"
    # The provider's configured key replaced the client's.
    assert upstream.header("authorization") == f"Bearer {PROVIDER_KEY}"
    assert CLIENT_KEY not in repr(upstream.headers)
    # The body went up as sent, unknown fields too; only the provider prefix is gone.
    assert upstream.json == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "temperature": 0.2,
        "seed": 7,
        "logprobs": False,
        "vendor_extension": {"keep": ["me"]},
    }
    # The upstream is told which span called it.
    assert upstream.header("traceparent") == f"00-{trace_id}-{span_id}-01"
    assert not any(name.startswith("x-spanlab-") for name, _ in upstream.headers)

    span = gateway.span(span_id)
    assert span["span_id"] == span_id
    assert span["trace_id"] == trace_id
    assert span["parent_span_id"] == parent_id
    assert span["thread_id"] == test_id
    assert span["run_id"] == "run-" + test_id
    assert span["project_id"] == "proj-e2e"
    assert span["label"] == "greeting"
    assert span["tags"] == {"team": "search", "env": "e2e"}
    assert span["operation"] == "chat"
    assert span["method"] == "POST"
    assert span["path"] == "/v1/chat/completions"
    assert span["status"] == "ok"
    assert span["http_status"] == 200
    assert span["provider"] == "mock"
    assert span["request_model"] == "mock/gpt-4o-mini"
    assert span["response_model"] == "gpt-4o-mini" + mock.MODEL_SNAPSHOT
    assert span["stream"] is False
    assert span["output_text"] == mock.CONTENT
    assert span["finish_reason"] == "stop"
    assert span["input_preview"] == "Say hello."
    assert span["error"] is None
    assert span["ttft_ms"] is None
    assert span["duration_ms"] > 0
    assert span["end_us"] >= span["start_us"]
    assert_usage(span)
    # The request as sent upstream, with the client's credential redacted.
    assert span["request"] == upstream.json
    assert span["request_headers"]["authorization"] == "[REDACTED]"
    assert span["response"]["choices"][0]["message"]["content"] == mock.CONTENT


def test_stream_without_usage_gets_usage_added_upstream_and_hidden_from_client(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    client = sdk(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-test-id": test_id, "x-thread-id": test_id},
    )
    span_id = raw.headers["x-spanlab-span-id"]
    chunks = list(raw.parse())

    upstream = mock_upstream.find(test_id)
    assert upstream.json["stream_options"] == {"include_usage": True}
    # The client did not ask for usage, so it must not get the usage-only chunk.
    assert chunks and all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == mock.CONTENT
    assert chunks[-1].choices[0].finish_reason == "stop"

    span = gateway.span(span_id)
    assert span["thread_id"] == test_id
    assert span["status"] == "ok"
    assert span["http_status"] == 200
    assert span["stream"] is True
    assert span["provider"] == "mock"  # bare name: the default provider
    assert span["request_model"] == "gpt-4o-mini"
    assert span["response_model"] == "gpt-4o-mini" + mock.MODEL_SNAPSHOT
    assert span["output_text"] == mock.CONTENT
    assert span["finish_reason"] == "stop"
    assert span["ttft_ms"] is not None and 0 < span["ttft_ms"] <= span["duration_ms"]
    assert_usage(span)
    assert span["request"]["stream_options"] == {"include_usage": True}


def test_stream_with_usage_keeps_the_usage_chunk(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-test-id": test_id},
    )
    chunks = list(raw.parse())
    assert mock_upstream.find(test_id).json["stream_options"] == {"include_usage": True}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == mock.PROMPT_TOKENS + mock.COMPLETION_TOKENS

    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["output_text"] == mock.CONTENT
    assert span["ttft_ms"] is not None
    assert_usage(span)


def test_streamed_tool_calls_are_assembled(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": mock.TOOL_NAME,
                "description": "Weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
        stream=True,
        extra_headers={"x-test-id": test_id, "x-mock-scenario": "tools"},
    )
    arguments: list[str] = []
    names: list[str] = []
    finish = None
    for chunk in raw.parse():
        for call in chunk.choices[0].delta.tool_calls or []:
            if call.function and call.function.name:
                names.append(call.function.name)
            if call.function and call.function.arguments:
                arguments.append(call.function.arguments)
        finish = chunk.choices[0].finish_reason or finish
    # The client got the arguments in pieces, as the upstream sent them.
    assert arguments == mock.TOOL_ARGUMENT_PARTS
    assert names == [mock.TOOL_NAME]
    assert finish == "tool_calls"
    upstream = mock_upstream.find(test_id)
    assert upstream.json["tools"] == tools
    assert upstream.json["tool_choice"] == "auto"

    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["finish_reason"] == "tool_calls"
    assert span["output_text"] is None
    message = span["response"]["choices"][0]["message"]
    assert message["tool_calls"] == [
        {
            "id": "call_mock_1",
            "type": "function",
            "function": {"name": mock.TOOL_NAME, "arguments": mock.TOOL_ARGUMENTS},
        }
    ]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris",
        "unit": "celsius",
    }
    assert span["request"]["tools"] == tools
    assert_usage(span)


def test_client_key_goes_upstream_when_the_provider_has_none(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    completion = sdk(gateway).chat.completions.create(
        model="passthru/gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"x-test-id": test_id, "x-thread-id": test_id},
    )
    assert completion.choices[0].message.content == mock.CONTENT
    upstream = mock_upstream.find(test_id)
    assert upstream.header("authorization") == f"Bearer {CLIENT_KEY}"
    assert upstream.json["model"] == "gpt-4o-mini"
    (span,) = gateway.wait_spans(1, thread=test_id)
    assert span["provider"] == "passthru"
    assert span["request_model"] == "passthru/gpt-4o-mini"
    assert span["status"] == "ok"


def test_stream_whose_http_body_ends_late_is_ok(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    # [DONE] arrives at once, the end of the chunked body a moment later: the client is
    # done at [DONE], and the call is a success, not an abort.
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-test-id": test_id, "x-mock-scenario": "slow_end", "x-mock-delay": "0.3"},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse())
    assert text == mock.CONTENT
    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert span["status"] == "ok", span["error"]
    assert span["error"] is None
    assert span["output_text"] == mock.CONTENT
    assert_usage(span)


def test_request_timeout_after_done_does_not_fail_the_call(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    # [DONE] comes ~2 s in, within request_timeout; the end of the HTTP body only after
    # it. The call is complete for the client at [DONE]: the deadline passing while the
    # gateway drains the upstream connection is no failure.
    chunks = int((REQUEST_TIMEOUT_S - 0.5) / mock.SLOW_STREAM_INTERVAL_S)
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={
            "x-test-id": test_id,
            "x-mock-scenario": "slow_stream",
            "x-mock-chunks": str(chunks),
            "x-mock-end-delay": "1.5",
        },
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse())
    assert text == "tick " * chunks
    span = gateway.span(raw.headers["x-spanlab-span-id"], timeout=5.0)
    assert span["status"] == "ok", span["error"]
    assert span["output_text"] == text


@pytest.mark.parametrize("scenario", ["fragmented", "crlf"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_framing_is_reassembled_and_forwarded(
    gateway: GatewayProcess,
    mock_upstream: MockUpstream,
    test_id: str,
    scenario: str,
    include_usage: bool,
) -> None:
    # Events cut anywhere by the network, or several in one read, CRLF or LF: the client
    # still gets every event whole, and the span the whole message.
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-test-id": test_id, "x-mock-scenario": scenario},
        **extra,
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == mock.CONTENT
    assert any(c.usage is not None for c in chunks) is include_usage
    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert span["status"] == "ok", span["error"]
    assert span["output_text"] == mock.CONTENT
    assert span["finish_reason"] == "stop"
    assert_usage(span)


def test_one_date_header(gateway: GatewayProcess, httpserver: HTTPServer, test_id: str) -> None:
    """The upstream's Date was forwarded next to the one the server writes: two Date
    fields in one response, which RFC 9110 allows only once."""
    httpserver.expect_oneshot_request("/v1/models", method="GET").respond_with_json(
        {"object": "list", "data": []}
    )
    r = httpx.get(
        f"{gateway.base_url}/v1/models",
        headers={
            "authorization": f"Bearer {CLIENT_KEY}",
            "x-spanlab-provider": "werk",
            "x-thread-id": test_id,
        },
    )
    assert r.status_code == 200, r.text
    httpserver.check_assertions()
    assert len(r.headers.get_list("date")) == 1, r.headers.raw
