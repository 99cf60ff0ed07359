"""The proxy with a provider of kind anthropic, in process: OpenAI chat calls
translated to /v1/messages and back, native /v1/messages, routing of Claude names,
credentials, errors, and what the spans record."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import orjson
import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.span import SpanContext
from gateway.proxy.pipeline import ProxyRequest
from gateway.proxy.providers.anthropic_response import chat_usage
from tests.conftest import Gateway, GatewayFactory
from tests.e2e.anthropic_support import MockAnthropic
from tests.fakes import FakeUpstream, stream_response

# Every test here runs with both upstream clients (tests/conftest.py).
pytestmark = pytest.mark.both_clients

MODEL = "anthropic/claude-3-5-sonnet-latest"
SERVED = "claude-3-5-sonnet-20241022"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


async def anthropic_gateway(
    make_gateway: GatewayFactory, mock: MockAnthropic | None = None, **overrides: Any
) -> tuple[Gateway, MockAnthropic]:
    mock = mock or MockAnthropic()
    gw: Gateway = await make_gateway(FakeUpstream(handler=mock.httpx_handler), **overrides)
    gw.client.headers["authorization"] = "Bearer sk-ant-test-key"  # as an OpenAI SDK sends
    return gw, mock


def sse_chunks(text: str) -> tuple[list[dict[str, Any]], bool]:
    """(data objects, ended with [DONE]) of an OpenAI SSE body."""
    chunks: list[dict[str, Any]] = []
    done = False
    for event in text.split("\n\n"):
        if not event.strip():
            continue
        assert event.startswith("data: "), event
        data = event[len("data: ") :]
        assert not done, "data after [DONE]"
        if data == "[DONE]":
            done = True
        else:
            chunks.append(orjson.loads(data))
    return chunks, done


def expected_cost(model: str, usage: dict[str, Any]) -> float:
    price = PriceTable().lookup(model)
    assert price is not None and price.cached_input is not None
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    uncached = usage["prompt_tokens"] - cached
    usd = uncached * price.input + cached * price.cached_input
    return (usd + usage["completion_tokens"] * price.output) / 1_000_000


async def test_chat_call_is_translated_and_answered_in_openai_format(
    make_gateway: GatewayFactory,
) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    request = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        "temperature": 0.3,
        "seed": 7,
    }
    r = await gw.client.post(
        "/v1/chat/completions", json=request, headers={"authorization": "Bearer sk-ant-client-1"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == SERVED
    assert body["id"] == "msg_mock_1"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "Echo: hello there",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"

    sent = mock.last
    assert sent.path == "/v1/messages"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == "sk-ant-client-1"  # the OpenAI SDK's bearer key
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-3-5-sonnet-latest",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "hello there"}],
        "system": "Be brief.",
        "temperature": 0.3,
    }
    upstream_usage = {"input_tokens": 4, "output_tokens": 3}
    assert body["usage"] == chat_usage(upstream_usage)

    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["operation"] == "chat"
    assert span["provider"] == "anthropic"
    assert span["request_model"] == MODEL
    assert span["response_model"] == SERVED
    assert span["request"] == request  # the client's request: replayable as it is
    assert span["status"] == "ok"
    assert span["output_text"] == "Echo: hello there"
    assert span["finish_reason"] == "stop"
    assert span["usage"]["prompt_tokens"] == body["usage"]["prompt_tokens"]
    assert span["usage"]["completion_tokens"] == body["usage"]["completion_tokens"]
    assert span["usage"]["total_tokens"] == body["usage"]["total_tokens"]
    assert span["cost_usd"] == pytest.approx(expected_cost(SERVED, body["usage"]))
    translation = span["attributes"]["translation"]
    assert translation["upstream_request"] == sent.body
    assert translation["dropped"] == ["seed"]
    assert "max_tokens not given: defaulted to 4096" in translation["notes"]
    assert translation["upstream_response"]["stop_reason"] == "end_turn"
    assert translation["upstream_response"]["usage"]["input_tokens"] == 4
    assert span["response"] == body
    assert "sk-ant-client-1" not in orjson.dumps(span).decode()


async def test_streamed_chat_call_gets_openai_chunks_with_usage(
    make_gateway: GatewayFactory,
) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    request = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "one two three four"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 50,
    }
    r = await gw.client.post("/v1/chat/completions", json=request)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks, done = sse_chunks(r.text)
    assert done
    assert mock.last.body["stream"] is True
    assert mock.last.body["max_tokens"] == 50
    assert "stream_options" not in mock.last.body
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert {c["id"] for c in chunks} == {"msg_mock_1"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Echo: one two three four"
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens"] == 4 and usage["completion_tokens"] == 5
    assert usage["total_tokens"] == 9

    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["stream"] is True
    assert span["status"] == "ok"
    assert span["output_text"] == text
    assert span["finish_reason"] == "stop"
    assert span["usage"]["prompt_tokens"] == 4
    assert span["usage"]["completion_tokens"] == 5
    assert span["cost_usd"] == pytest.approx(expected_cost(SERVED, usage))
    assert span["ttft_ms"] is not None
    assert span["response"]["choices"][0]["message"]["content"] == text
    assert span["attributes"]["translation"]["upstream_response"]["stop_reason"] == "end_turn"


async def test_stream_without_include_usage_hides_the_usage_chunk_but_records_usage(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await anthropic_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a b"}], "stream": True},
    )
    chunks, done = sse_chunks(r.text)
    assert done
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["usage"]["prompt_tokens"] == 2
    assert span["usage"]["completion_tokens"] == 3
    assert span["cost_usd"] is not None and span["cost_usd"] > 0


async def test_tool_calls_non_streamed(make_gateway: GatewayFactory) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "use all tools for Paris"}],
            "tools": [WEATHER, TIME],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        },
    )
    assert r.status_code == 200, r.text
    sent = mock.last.body
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["input_schema"] == WEATHER["function"]["parameters"]
    assert sent["tools"][0]["description"] == "Weather in a city"
    assert sent["tool_choice"] == {"type": "auto"}
    message = r.json()["choices"][0]["message"]
    assert r.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] == "Let me check."
    calls = message["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert [c["id"] for c in calls] == ["toolu_mock_1_0", "toolu_mock_1_1"]
    assert all(c["type"] == "function" for c in calls)
    weather = orjson.loads(calls[0]["function"]["arguments"])
    assert weather == {"city": "city for «use all tools for Paris»", "days": 23}
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["finish_reason"] == "tool_calls"
    assert span["output_text"] == "Let me check."
    assert span["response"]["choices"][0]["message"]["tool_calls"] == calls


async def test_tool_calls_streamed_arrive_as_openai_tool_call_deltas(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await anthropic_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "use all tools for Paris"}],
            "tools": [WEATHER, TIME],
            "stream": True,
        },
    )
    chunks, done = sse_chunks(r.text)
    assert done
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for call in chunk["choices"][0]["delta"].get("tool_calls") or []:
            if call["index"] not in calls:
                # The first delta of a call names it; the rest carry arguments only.
                assert call["id"].startswith("toolu_mock_")
                assert call["type"] == "function"
                calls[call["index"]] = {"id": call["id"], "name": call["function"]["name"]}
                calls[call["index"]]["arguments"] = call["function"]["arguments"]
            else:
                assert set(call) == {"index", "function"}
                assert set(call["function"]) == {"arguments"}
                calls[call["index"]]["arguments"] += call["function"]["arguments"]
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "get_weather" and calls[1]["name"] == "get_time"
    assert orjson.loads(calls[1]["arguments"]) == {"zone": "zone for «use all tools for Paris»"}
    argument_chunks = sum(
        1
        for c in chunks
        for call in c["choices"][0]["delta"].get("tool_calls") or []
        if call["function"].get("arguments")
    )
    assert argument_chunks > 4  # fragments, as they came
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    stored = span["response"]["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in stored] == [
        (calls[i]["id"], calls[i]["name"], calls[i]["arguments"]) for i in (0, 1)
    ]
    assert span["finish_reason"] == "tool_calls"


async def test_tool_results_go_back_as_one_user_turn(make_gateway: GatewayFactory) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    calls = [
        {
            "id": "toolu_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "toolu_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    r = await gw.client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [
                {"role": "user", "content": "weather and time?"},
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "toolu_a", "content": "sunny"},
                {
                    "role": "tool",
                    "tool_call_id": "toolu_b",
                    "content": [{"type": "text", "text": "noon"}],
                },
            ],
            "tools": [WEATHER, TIME],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "The tool said: sunny; noon"
    turns = mock.last.body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": "sunny"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_b",
            "content": [{"type": "text", "text": "noon"}],
        },
    ]


async def test_upstream_error_comes_back_in_openai_shape(make_gateway: GatewayFactory) -> None:
    gw, _ = await anthropic_gateway(make_gateway)
    for stream in (False, True):
        r = await gw.client.post(
            "/v1/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "__overloaded__"}],
                "stream": stream,
            },
        )
        assert r.status_code == 529
        assert r.json() == {
            "error": {
                "message": "Overloaded",
                "type": "server_error",
                "code": "overloaded",
                "param": None,
            }
        }
        span = await gw.span(r.headers["x-spanlab-span-id"])
        assert span["status"] == "error"
        assert span["http_status"] == 529
        assert span["error"]["code"] == "overloaded"


async def test_invalid_request_error_from_anthropic_is_passed_on(
    make_gateway: GatewayFactory,
) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_request_error"
    assert "max_tokens" in error["message"]
    assert mock.last.body["max_tokens"] == 0  # sent as given: Anthropic judged it


async def test_anthropic_fields_pass_through_from_extra_body(make_gateway: GatewayFactory) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "think"}],
            "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
    )
    assert r.status_code == 200, r.text
    assert mock.last.body["top_k"] == 5
    assert mock.last.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    message = r.json()["choices"][0]["message"]
    assert message["reasoning_content"] == "Thinking about: think"
    assert message["content"] == "Echo: think"


async def test_error_event_mid_stream_ends_the_stream_with_an_openai_error(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await anthropic_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "__midstream_error__"}],
            "stream": True,
        },
    )
    chunks, done = sse_chunks(r.text)
    assert not done
    assert chunks[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "server_error",
            "code": "overloaded",
            "param": None,
        }
    }
    assert chunks[1]["choices"][0]["delta"] == {"content": "Echo:"}
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "overloaded"
    assert span["output_text"] == "Echo:"


async def test_truncated_stream_ends_with_an_error_not_done(make_gateway: GatewayFactory) -> None:
    mock = MockAnthropic()

    def cut(request: httpx.Request) -> httpx.Response:
        reply = mock.handle("POST", "/v1/messages", dict(request.headers), request.content)
        assert reply.status == 200
        return stream_response(reply.chunks[:4])  # no message_delta, no message_stop

    gw: Gateway = await make_gateway(FakeUpstream(handler=cut))
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a b c"}], "stream": True},
        headers={"authorization": "Bearer sk-ant-test-key"},
    )
    chunks, done = sse_chunks(r.text)
    assert not done
    assert chunks[-1]["error"]["code"] == "upstream_stream_truncated"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["output_text"] == "Echo:"


async def test_malformed_stream_event_is_a_protocol_error(make_gateway: GatewayFactory) -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return stream_response([b"event: message_start\ndata: {not json\n\n"])

    gw: Gateway = await make_gateway(FakeUpstream(handler=bad))
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a"}], "stream": True},
    )
    chunks, done = sse_chunks(r.text)
    assert not done and chunks[-1]["error"]["code"] == "upstream_stream_malformed"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"


async def test_a_200_that_is_not_a_message_is_a_502(make_gateway: GatewayFactory) -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"hello": "world"})

    gw: Gateway = await make_gateway(FakeUpstream(handler=odd))
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a"}]},
    )
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_protocol_error"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    kept = span["attributes"]["translation"]["upstream_response"]
    assert kept == {"status": 200, "body": '{"hello":"world"}'}


async def test_untranslatable_request_is_refused_before_any_upstream_call(
    make_gateway: GatewayFactory,
) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a"}], "n": 3},
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "n"
    assert mock.requests == []
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["request"]["n"] == 3


async def test_configured_provider_key_replaces_the_clients(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-provider-secret")
    mock = MockAnthropic(api_key="sk-ant-provider-secret")
    providers = {
        "openai": {"kind": "openai", "base_url": "http://upstream.test/v1"},
        "anthropic": {
            "kind": "anthropic",
            "base_url": "http://anthropic.test/v1",
            "api_key_env": "TEST_ANTHROPIC_KEY",
        },
    }
    gw, _ = await anthropic_gateway(make_gateway, mock, providers=providers)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a"}]},
        headers={"authorization": "Bearer sk-client-openai-key"},
    )
    assert r.status_code == 200, r.text
    assert mock.last.headers["x-api-key"] == "sk-ant-provider-secret"
    assert "authorization" not in mock.last.headers
    span = await gw.span(r.headers["x-spanlab-span-id"])
    text = orjson.dumps(span).decode()
    assert "sk-ant-provider-secret" not in text and "sk-client-openai-key" not in text


async def test_bare_claude_name_routes_to_the_anthropic_provider(
    make_gateway: GatewayFactory,
) -> None:
    gw, mock = await anthropic_gateway(make_gateway)  # default_provider is openai
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "claude-3-5-haiku-latest", "messages": [{"role": "user", "content": "a"}]},
    )
    assert r.status_code == 200, r.text
    assert mock.last.body["model"] == "claude-3-5-haiku-latest"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["provider"] == "anthropic"
    assert span["cost_usd"] is not None


async def test_models_table_overrides_the_claude_default(make_gateway: GatewayFactory) -> None:
    upstream = FakeUpstream()  # answers like OpenAI
    gw: Gateway = await make_gateway(upstream, models={"claude-3-opus": "local"})
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": "claude-3-opus", "messages": [{"role": "user", "content": "a"}]},
    )
    assert r.status_code == 200, r.text
    assert str(upstream.last.url) == "http://local.test/v1/chat/completions"
    assert upstream.bodies[-1]["messages"] == [{"role": "user", "content": "a"}]


async def test_openai_calls_are_not_touched_by_translation(gateway: Gateway) -> None:
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "n": 2}
    r = await gateway.client.post("/v1/chat/completions", json=request)
    assert r.status_code == 200
    assert gateway.upstream.bodies[-1] == request
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["attributes"] is None or "translation" not in span["attributes"]


async def test_other_openai_endpoints_are_still_refused_for_anthropic(
    make_gateway: GatewayFactory,
) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    r = await gw.client.post("/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert r.status_code == 400
    assert "/v1/messages" in r.json()["error"]["message"]
    assert mock.requests == []


# --- native /v1/messages, in process -------------------------------------------------------


async def test_native_messages_are_forwarded_untranslated(make_gateway: GatewayFactory) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    request = {
        "model": "claude-3-5-sonnet-latest",
        "max_tokens": 20,
        "system": [
            {"type": "text", "text": "cached rules", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": "hi you"}],
    }
    r = await gw.client.post("/v1/messages", json=request, headers={"x-api-key": "sk-ant-native"})
    assert r.status_code == 200, r.text
    message = r.json()
    assert message["type"] == "message"
    assert mock.last.body == request
    assert mock.last.headers["x-api-key"] == "sk-ant-native"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["operation"] == "messages"
    assert span["finish_reason"] == "end_turn"
    assert span["output_text"] == "Echo: hi you"
    usage = message["usage"]
    read, written = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
    assert read > 0 and written > 0
    assert span["usage"]["prompt_tokens"] == usage["input_tokens"] + read + written
    assert span["usage"]["cached_tokens"] == read
    assert "translation" not in (span["attributes"] or {})


class _LeavingSink:
    """A client that goes away as soon as the response has ended, as SDKs do after
    ``[DONE]``: the task running the call is cancelled (what `ProxyEndpoint` does on
    ``http.disconnect``)."""

    def __init__(self, scope: anyio.CancelScope) -> None:
        self.scope = scope
        self.started = False
        self.client_gone = False
        self.body = b""

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True

    async def send(self, data: bytes) -> None:
        self.body += data

    async def end(self) -> None:
        self.client_gone = True
        self.scope.cancel()


async def test_client_leaving_after_the_whole_stream_is_not_an_abort(
    make_gateway: GatewayFactory,
) -> None:
    mock = MockAnthropic()

    def slow_close(request: httpx.Request) -> httpx.Response:
        reply = mock.handle("POST", "/v1/messages", dict(request.headers), request.content)

        async def body() -> Any:
            for chunk in reply.chunks:
                yield chunk
            await anyio.sleep(0.5)  # the upstream is slow to close after message_stop

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    gw: Gateway = await make_gateway(FakeUpstream(handler=slow_close))
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "a b"}], "stream": True}
    request = ProxyRequest(
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        headers=[("authorization", "Bearer sk-ant-test-key")],
        body=orjson.dumps(chat),
        context=SpanContext.from_headers({}),
    )
    assert request.context is not None
    with anyio.CancelScope() as scope:
        sink = _LeavingSink(scope)
        await gw.state.pipeline.handle(request, sink)
    assert scope.cancelled_caught
    assert sink.body.endswith(b"data: [DONE]\n\n")
    span = await gw.span(request.context.span_id)
    assert span["status"] == "ok"
    assert span["error"] is None
    assert span["output_text"] == "Echo: a b"


async def test_deadline_mid_stream_ends_a_translated_stream_with_an_openai_error(
    make_gateway: GatewayFactory,
) -> None:
    mock = MockAnthropic()

    def stalls(request: httpx.Request) -> httpx.Response:
        reply = mock.handle("POST", "/v1/messages", dict(request.headers), request.content)

        async def body() -> Any:
            yield reply.chunks[0]  # message_start
            await anyio.sleep(5)

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    gw: Gateway = await make_gateway(FakeUpstream(handler=stalls), request_timeout=0.3)
    r = await gw.client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "a"}], "stream": True},
        headers={"authorization": "Bearer sk-ant-test-key"},
    )
    chunks, done = sse_chunks(r.text)
    assert not done
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["error"]["code"] == "upstream_timeout"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "upstream_timeout"


async def test_secret_fields_in_the_translated_request_are_redacted(
    make_gateway: GatewayFactory,
) -> None:
    gw, mock = await anthropic_gateway(make_gateway)
    call = {
        "id": "toolu_k",
        "function": {"name": "login", "arguments": '{"password": "hunter2-pw"}'},
    }
    r = await gw.client.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [
                {"role": "user", "content": "log in"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "toolu_k", "content": "ok"},
            ],
            "tools": [{"type": "function", "function": {"name": "login"}}],
        },
    )
    assert r.status_code == 200, r.text
    assert mock.last.body["messages"][1]["content"][0]["input"] == {"password": "hunter2-pw"}
    span = await gw.span(r.headers["x-spanlab-span-id"])
    stored = span["attributes"]["translation"]["upstream_request"]["messages"][1]["content"][0]
    assert stored["input"] == {"password": "[REDACTED]"}
