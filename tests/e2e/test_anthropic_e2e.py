"""End to end: the official `anthropic` and `openai` SDKs against a real `spanlab serve`
in front of a mock Anthropic API on loopback (`anthropic_support`).

* native ``/v1/messages`` (ANTHROPIC_BASE_URL pointed at the gateway): forwarded as
  is, streaming and not, tools included, spans checked field by field;
* OpenAI-format ``/v1/chat/completions`` with ``anthropic/claude-...``: translated both
  ways, and the SDK gets real OpenAI objects (its stream helper assembles them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from gateway.capture.pricing import PriceTable
from tests.e2e.anthropic_support import MockAnthropic, MockAnthropicServer, SpanlabProcess

pytestmark = pytest.mark.e2e

PROVIDER_KEY = "sk-ant-provider-e2e-0123456789"
CLIENT_KEY = "sk-client-key-e2e-9876543210"
MODEL = "claude-3-5-sonnet-latest"
SERVED = "claude-3-5-sonnet-20241022"
CACHED_SYSTEM: list[Any] = [
    {"type": "text", "text": "You answer briefly.", "cache_control": {"type": "ephemeral"}}
]
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
OPENAI_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_TOOL["input_schema"],
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        },
    },
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockAnthropicServer]:
    with MockAnthropicServer(MockAnthropic(api_key=PROVIDER_KEY)) as server:
        yield server


@pytest.fixture
def mock(upstream: MockAnthropicServer) -> MockAnthropic:
    return upstream.mock


@pytest.fixture(scope="module")
def server(
    upstream: MockAnthropicServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SpanlabProcess]:
    config = f"""
default_provider = "openai"

[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[providers.anthropic]
kind = "anthropic"
base_url = "{upstream.base_url}"
api_key_env = "E2E_ANTHROPIC_KEY"
"""
    workdir: Path = tmp_path_factory.mktemp("anthropic-e2e")
    with SpanlabProcess(workdir, config, env={"E2E_ANTHROPIC_KEY": PROVIDER_KEY}) as process:
        yield process


@pytest.fixture
def claude(server: SpanlabProcess) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=server.url, api_key=CLIENT_KEY, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def gpt(server: SpanlabProcess) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    yield client
    client.close()


def expected_cost(model: str, prompt: int, cached: int, completion: int) -> float:
    price = PriceTable().lookup(model)
    assert price is not None and price.cached_input is not None
    usd = (prompt - cached) * price.input + cached * price.cached_input
    return (usd + completion * price.output) / 1_000_000


def assert_no_secrets(span: dict[str, Any]) -> None:
    text = json.dumps(span)
    assert PROVIDER_KEY not in text
    assert CLIENT_KEY not in text


def assert_anthropic_usage(span: dict[str, Any], usage: Any) -> None:
    """The span's usage is the message's, in OpenAI terms (cache reads and writes are
    prompt tokens; reads are cached), and its cost follows from the price table."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    prompt = usage.input_tokens + read + written
    assert span["usage"]["prompt_tokens"] == prompt
    assert span["usage"]["completion_tokens"] == usage.output_tokens
    assert span["usage"]["total_tokens"] == prompt + usage.output_tokens
    assert span["usage"]["cached_tokens"] == read
    assert span["cost_usd"] == pytest.approx(
        expected_cost(span["response_model"], prompt, read, usage.output_tokens)
    )


# --- native /v1/messages with the anthropic SDK ------------------------------------------


def test_native_message(
    claude: anthropic.Anthropic, server: SpanlabProcess, mock: MockAnthropic
) -> None:
    raw = claude.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=64,
        system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": "hello from the SDK"}],
    )
    message = raw.parse()
    block = message.content[0]
    assert block.type == "text"
    assert block.text == "Echo: hello from the SDK"
    assert message.stop_reason == "end_turn"
    assert message.model == SERVED
    assert (message.usage.cache_read_input_tokens or 0) > 0
    assert (message.usage.cache_creation_input_tokens or 0) > 0
    sent = mock.last
    assert sent.headers["x-api-key"] == PROVIDER_KEY  # the configured key, not the client's
    assert sent.headers["anthropic-version"] == claude.default_headers["anthropic-version"]
    assert sent.body["system"] == CACHED_SYSTEM

    span = server.span(raw.headers["x-spanlab-span-id"])
    assert span["operation"] == "messages"
    assert span["path"] == "/v1/messages"
    assert span["provider"] == "anthropic"
    assert span["request_model"] == MODEL
    assert span["response_model"] == SERVED
    assert span["status"] == "ok" and span["http_status"] == 200
    assert span["stream"] is False
    assert span["request"] == sent.body
    assert span["output_text"] == block.text
    assert span["finish_reason"] == message.stop_reason
    assert span["input_preview"] == "hello from the SDK"
    assert_anthropic_usage(span, message.usage)
    assert span["response"]["id"] == message.id
    assert_no_secrets(span)


def test_native_stream(claude: anthropic.Anthropic, server: SpanlabProcess) -> None:
    with claude.messages.stream(
        model=MODEL,
        max_tokens=64,
        system=CACHED_SYSTEM,
        messages=[{"role": "user", "content": "stream these few words please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        span_id = stream.response.headers["x-spanlab-span-id"]
    assert text == "Echo: stream these few words please"
    assert final.stop_reason == "end_turn"

    span = server.span(span_id)
    assert span["stream"] is True
    assert span["status"] == "ok"
    assert span["output_text"] == text
    assert span["finish_reason"] == final.stop_reason
    assert span["response_model"] == final.model
    assert span["ttft_ms"] is not None and span["ttft_ms"] <= span["duration_ms"]
    assert_anthropic_usage(span, final.usage)
    assert_no_secrets(span)


def test_native_tool_use_round_trip(claude: anthropic.Anthropic, server: SpanlabProcess) -> None:
    question: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    raw = claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=question
    )
    message = raw.parse()
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather"
    assert uses[0].input == {"city": "city for «weather in Oslo?»", "days": 16}
    span = server.span(raw.headers["x-spanlab-span-id"])
    assert span["finish_reason"] == "tool_use"
    assert span["output_text"] == "Let me check."
    stored = [b for b in span["response"]["content"] if b["type"] == "tool_use"]
    assert stored == [
        {"type": "tool_use", "id": uses[0].id, "name": "get_weather", "input": uses[0].input}
    ]

    # The same question streamed: the SDK assembles the same tool input from fragments.
    with claude.messages.stream(
        model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=question
    ) as stream:
        streamed = stream.get_final_message()
        stream_span_id = stream.response.headers["x-spanlab-span-id"]
    streamed_uses = [b for b in streamed.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in streamed_uses] == [(uses[0].name, uses[0].input)]
    stream_span = server.span(stream_span_id)
    assert stream_span["finish_reason"] == "tool_use"
    stored = [b for b in stream_span["response"]["content"] if b["type"] == "tool_use"]
    assert [b["input"] for b in stored] == [uses[0].input]
    assert_anthropic_usage(stream_span, streamed.usage)

    answer = claude.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[
            *question,
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "12C"}],
            },
        ],
    )
    reply = answer.content[0]
    assert reply.type == "text"
    assert reply.text == "The tool said: 12C"


def test_native_error_passes_through(claude: anthropic.Anthropic, server: SpanlabProcess) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        claude.messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "__overloaded__"}]
        )
    assert info.value.status_code == 529
    body: Any = info.value.body
    assert body["error"]["type"] == "overloaded_error"
    span = server.span(info.value.response.headers["x-spanlab-span-id"])
    assert span["status"] == "error" and span["http_status"] == 529
    assert span["error"]["type"] == "overloaded_error"


# --- OpenAI SDK, Claude model: translated ------------------------------------------------


def test_openai_sdk_chat_with_claude(
    gpt: openai.OpenAI, server: SpanlabProcess, mock: MockAnthropic
) -> None:
    raw = gpt.chat.completions.with_raw_response.create(
        model=f"anthropic/{MODEL}",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "hello from openai"},
        ],
        temperature=0.5,
        max_tokens=100,
        seed=3,
    )
    completion = raw.parse()
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.object == "chat.completion"
    assert completion.model == SERVED
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: hello from openai"
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    sent = mock.last.body
    assert sent["system"] == "Answer briefly."
    assert sent["max_tokens"] == 100 and sent["temperature"] == 0.5
    assert "seed" not in sent
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == 5  # the words of "Answer briefly." and "hello from openai"
    assert usage.completion_tokens == 4
    assert usage.total_tokens == 9

    span = server.span(raw.headers["x-spanlab-span-id"])
    assert span["operation"] == "chat"
    assert span["provider"] == "anthropic"
    assert span["request_model"] == f"anthropic/{MODEL}"
    assert span["response_model"] == SERVED
    assert span["request"]["messages"][1]["content"] == "hello from openai"
    assert span["attributes"]["translation"]["upstream_request"] == sent
    assert span["attributes"]["translation"]["dropped"] == ["seed"]
    assert span["output_text"] == choice.message.content
    assert span["finish_reason"] == "stop"
    assert span["usage"]["prompt_tokens"] == usage.prompt_tokens
    assert span["usage"]["completion_tokens"] == usage.completion_tokens
    assert span["cost_usd"] == pytest.approx(
        expected_cost(SERVED, usage.prompt_tokens, 0, usage.completion_tokens)
    )
    assert_no_secrets(span)


def test_openai_sdk_stream_with_claude(gpt: openai.OpenAI, server: SpanlabProcess) -> None:
    with gpt.chat.completions.with_streaming_response.create(
        model=f"anthropic/{MODEL}",
        messages=[{"role": "user", "content": "count one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        span_id = response.headers["x-spanlab-span-id"]
        chunks = list(response.parse())
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: count one two three"
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [r for r in reasons if r] == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.prompt_tokens == 4 and usage.completion_tokens == 5

    span = server.span(span_id)
    assert span["stream"] is True
    assert span["status"] == "ok"
    assert span["output_text"] == text
    assert span["finish_reason"] == "stop"
    assert span["usage"]["prompt_tokens"] == usage.prompt_tokens
    assert span["usage"]["completion_tokens"] == usage.completion_tokens
    assert span["cost_usd"] == pytest.approx(
        expected_cost(SERVED, usage.prompt_tokens, 0, usage.completion_tokens)
    )


def test_openai_sdk_tool_calls_with_claude(gpt: openai.OpenAI, server: SpanlabProcess) -> None:
    messages: list[Any] = [{"role": "user", "content": "use all tools for Rome"}]
    raw = gpt.chat.completions.with_raw_response.create(
        model=f"anthropic/{MODEL}", messages=messages, tools=OPENAI_TOOLS
    )
    completion = raw.parse()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls: list[Any] = list(choice.message.tool_calls or [])
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    weather = json.loads(calls[0].function.arguments)
    assert weather == {"city": "city for «use all tools for Rome»", "days": 22}
    span = server.span(raw.headers["x-spanlab-span-id"])
    assert span["finish_reason"] == "tool_calls"
    stored = span["response"]["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in stored] == [c.id for c in calls]

    # Streamed, through the SDK's own assembling helper.
    run_id = uuid.uuid4().hex
    with gpt.chat.completions.stream(
        model=f"anthropic/{MODEL}",
        messages=messages,
        tools=OPENAI_TOOLS,
        extra_headers={"x-run-id": run_id},
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in events
    assert "tool_calls.function.arguments.done" in events
    streamed: list[Any] = list(final.choices[0].message.tool_calls or [])
    assert [(c.function.name, json.loads(c.function.arguments)) for c in streamed] == [
        (c.function.name, json.loads(c.function.arguments)) for c in calls
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    (stream_span,) = server.detailed_spans(run=run_id)
    assert stream_span["stream"] is True
    assert stream_span["finish_reason"] == "tool_calls"
    assert stream_span["output_text"] == "Let me check."

    # The SDK's own assistant message and the tool results go back to Claude.
    answer = gpt.chat.completions.create(
        model=f"anthropic/{MODEL}",
        tools=OPENAI_TOOLS,
        messages=[
            *messages,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
            {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
        ],
    )
    assert answer.choices[0].message.content == "The tool said: sunny; noon"
    assert answer.choices[0].finish_reason == "stop"


def test_openai_sdk_bare_claude_name(gpt: openai.OpenAI, mock: MockAnthropic) -> None:
    completion = gpt.chat.completions.create(
        model="claude-3-5-haiku-latest", messages=[{"role": "user", "content": "bare name"}]
    )
    assert completion.choices[0].message.content == "Echo: bare name"
    assert mock.last.body["model"] == "claude-3-5-haiku-latest"


def test_openai_sdk_sees_claude_errors_as_openai_errors(
    gpt: openai.OpenAI, server: SpanlabProcess
) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        gpt.chat.completions.create(
            model=f"anthropic/{MODEL}", messages=[{"role": "user", "content": "__overloaded__"}]
        )
    assert info.value.status_code == 529
    assert info.value.code == "overloaded"
    assert info.value.type == "server_error"
    assert info.value.body == {
        "message": "Overloaded",
        "type": "server_error",
        "code": "overloaded",
        "param": None,
    }

    run_id = uuid.uuid4().hex
    stream = gpt.chat.completions.create(
        model=f"anthropic/{MODEL}",
        messages=[{"role": "user", "content": "__midstream_error__"}],
        stream=True,
        extra_headers={"x-run-id": run_id},
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match="Overloaded"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Echo:"
    (span,) = server.detailed_spans(run=run_id)
    assert span["status"] == "error"
    assert span["error"]["code"] == "overloaded"
    assert span["output_text"] == "Echo:"
