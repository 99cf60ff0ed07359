"""The GenAI semantic-convention mapping of a stored span (gateway/export/genai.py), for
each dialect, streamed and not, an error, and with message content on and off. Rows are
made as the writer makes them: a `Span` as the proxy fills it, `finalize`, `to_record`
(redaction), `span_rows`."""

from __future__ import annotations

import json
from typing import Any

import orjson

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span, SpanContext, finalize, to_record
from gateway.capture.span_table import span_rows
from gateway.export.genai import content_attributes, span_from_row
from tests.fakes import chat_chunks, chat_completion

KINDS = {"openai": "openai", "claude": "anthropic"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def row(
    operation: str,
    request: dict[str, Any],
    *,
    body: Any = None,
    events: list[dict[str, Any]] | None = None,
    stream_format: str | None = None,
    provider: str = "openai",
    status: str = "ok",
    http_status: int = 200,
    context: SpanContext | None = None,
    secrets: list[str] | None = None,
) -> tuple[Any, ...]:
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    span = Span(
        context or SpanContext.from_headers(headers),
        operation,
        "POST",
        f"/v1/{operation}",
        start_us=1_700_000_000_000_000,
        provider=provider,
        request_model=request.get("model"),
        stream=events is not None,
        request=request,
        end_us=1_700_000_001_500_000,
        status=status,
        http_status=http_status,
        response_body=orjson.dumps(body) if body is not None else None,
        stream_format=stream_format,
        stream_events=[orjson.dumps(e) for e in events] if events is not None else None,
        secrets=secrets or [],
    )
    finalize(span, PriceTable())
    return span_rows([to_record(span)])[0]


def test_a_chat_completion_maps_to_gen_ai_attributes_with_the_app_trace_as_parent() -> None:
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": "[END]",  # one string (that looks like JSON): a list of one
        "seed": 7,
    }
    mapped = span_from_row(row("chat", request, body=chat_completion()), KINDS)
    a = mapped.attributes
    assert mapped.name == "chat gpt-4o-mini"
    assert (mapped.trace_id, mapped.parent_span_id) == (TRACE, PARENT)
    assert mapped.end_ns - mapped.start_ns == 1_500_000_000
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stop_sequences"] == ["[END]"]
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.response.id"] == "chatcmpl-fake"
    assert a["spanlab.origin"] == "app"
    assert a["spanlab.stream"] is False
    assert mapped.error is None
    # Content is left out unless asked for.
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output")) for k in a)
    assert "Say hi" not in json.dumps(a)


def test_a_streamed_chat_maps_usage_and_output_from_the_assembled_stream() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    events = chat_chunks(["Hel", "lo"], usage=usage, finish_reason="length")
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    r = row("chat", request, events=events, stream_format="chat")
    a = span_from_row(r, KINDS).attributes
    assert a["gen_ai.usage.input_tokens"] == 5
    assert a["gen_ai.usage.output_tokens"] == 2
    assert a["gen_ai.response.finish_reasons"] == ["length"]
    assert a["spanlab.stream"] is True
    content = content_attributes(r)
    assert json.loads(content["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello"}],
            "finish_reason": "length",
        }
    ]
    assert json.loads(content["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]


def test_chat_content_has_system_tool_calls_and_tool_results_as_parts() -> None:
    request = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
    }
    call = {"id": "c2", "type": "function", "function": {"name": "w", "arguments": '{"a": 1}'}}
    body = chat_completion(tool_calls=[call], finish_reason="tool_calls")
    content = content_attributes(row("chat", request, body=body))
    inputs = json.loads(content["gen_ai.input.messages"])
    assert [m["role"] for m in inputs] == ["system", "user", "assistant", "tool"]
    assert inputs[1]["parts"] == [{"type": "text", "content": "Weather?"}]
    assert inputs[2]["parts"] == [{"type": "tool_call", "id": "c1", "name": "w", "arguments": {}}]
    assert inputs[3]["parts"] == [{"type": "tool_call_response", "id": "c1", "response": "sunny"}]
    outputs = json.loads(content["gen_ai.output.messages"])
    assert outputs[0]["parts"] == [
        {"type": "tool_call", "id": "c2", "name": "w", "arguments": {"a": 1}}
    ]
    assert outputs[0]["finish_reason"] == "tool_calls"


def test_a_responses_call_maps_instructions_input_output_and_max_output_tokens() -> None:
    request = {
        "model": "gpt-4.1",
        "instructions": "Answer in French.",
        "input": "Hello",
        "max_output_tokens": 64,
    }
    body = {
        "id": "resp_1",
        "object": "response",
        "model": "gpt-4.1-2025",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Bonjour"}],
            }
        ],
        "usage": {"input_tokens": 9, "output_tokens": 1, "total_tokens": 10},
    }
    r = row("responses", request, body=body)
    a = span_from_row(r, KINDS).attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.usage.input_tokens"] == 9
    assert a["gen_ai.usage.output_tokens"] == 1
    assert a["gen_ai.response.id"] == "resp_1"
    assert a["gen_ai.response.finish_reasons"] == ["completed"]
    content = content_attributes(r)
    assert json.loads(content["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Answer in French."}
    ]
    assert json.loads(content["gen_ai.input.messages"])[0]["parts"][0]["content"] == "Hello"
    assert json.loads(content["gen_ai.output.messages"])[0]["parts"][0]["content"] == "Bonjour"


def test_an_anthropic_message_streamed_maps_to_the_anthropic_provider() -> None:
    request = {
        "model": "claude-sonnet-4",
        "system": "You are terse.",
        "max_tokens": 100,
        "top_k": 5,
        "stop_sequences": ["\n\nHuman:"],
        "messages": [{"role": "user", "content": "Hi"}],
    }
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-20250514",
                "content": [],
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hey"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    ]
    r = row("messages", request, events=events, stream_format="anthropic", provider="claude")
    mapped = span_from_row(r, KINDS)
    a = mapped.attributes
    assert mapped.name == "chat claude-sonnet-4"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["spanlab.provider"] == "claude"
    assert a["gen_ai.request.max_tokens"] == 100
    assert a["gen_ai.request.top_k"] == 5
    assert a["gen_ai.request.stop_sequences"] == ["\n\nHuman:"]
    assert a["gen_ai.usage.input_tokens"] == 10
    assert a["gen_ai.usage.output_tokens"] == 2
    assert a["gen_ai.response.id"] == "msg_1"
    assert a["gen_ai.response.finish_reasons"] == ["end_turn"]
    content = content_attributes(r)
    assert json.loads(content["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are terse."}
    ]
    assert json.loads(content["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hey"}],
            "finish_reason": "end_turn",
        }
    ]


def test_embeddings_map_to_the_embeddings_operation_without_messages() -> None:
    request = {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 256,
    }
    body = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    r = row("embeddings", request, body=body)
    mapped = span_from_row(r, KINDS)
    a = mapped.attributes
    assert mapped.name == "embeddings text-embedding-3-small"
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.request.encoding_formats"] == ["float"]
    assert a["gen_ai.embeddings.dimension.count"] == 256
    assert a["gen_ai.usage.input_tokens"] == 2
    assert "gen_ai.usage.output_tokens" not in a


def test_an_upstream_error_maps_to_an_error_status_and_error_type() -> None:
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    mapped = span_from_row(row("chat", request, body=body, status="error", http_status=429), KINDS)
    assert mapped.error == "Rate limit reached"
    assert mapped.attributes["error.type"] == "rate_limit"
    assert mapped.attributes["http.response.status_code"] == 429
    assert mapped.attributes["spanlab.status"] == "error"


def test_an_experiment_replay_carries_its_links_and_experiment_variant_input_ids() -> None:
    context = SpanContext(
        trace_id="a" * 32,
        span_id="b" * 16,
        attributes={
            "spanlab.experiment.id": "exp_1",
            "spanlab.experiment.variant.id": "var_1",
            "spanlab.experiment.input.id": "in_1",
            "truncated_capture": True,
        },
        links=[
            {
                "trace_id": "c" * 32,
                "span_id": "d" * 16,
                "attributes": {"spanlab.link.type": "replay_of"},
            }
        ],
        tags={"team": "search"},
        thread_id="th-1",
    )
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    mapped = span_from_row(row("chat", request, body=chat_completion(), context=context), KINDS)
    a = mapped.attributes
    assert a["spanlab.origin"] == "experiment"
    assert a["spanlab.experiment.id"] == "exp_1"
    assert a["spanlab.experiment.variant.id"] == "var_1"
    assert a["spanlab.experiment.input.id"] == "in_1"
    assert a["spanlab.truncated_capture"] is True
    assert a["spanlab.tag.team"] == "search"
    assert a["gen_ai.conversation.id"] == a["spanlab.thread.id"] == "th-1"
    assert mapped.parent_span_id is None
    assert [(link.trace_id, link.span_id, link.attributes) for link in mapped.links] == [
        ("c" * 32, "d" * 16, {"spanlab.link.type": "replay_of"})
    ]


def test_exported_content_is_the_redacted_record_never_a_secret() -> None:
    key = "sk-live-" + "x" * 24
    request = {
        "model": "gpt-4o",
        "api_key": key,
        "messages": [{"role": "user", "content": f"my key is {key}"}],
    }
    r = row("chat", request, body=chat_completion(content=f"echo {key}"), secrets=[key])
    exported = json.dumps({**span_from_row(r, KINDS).attributes, **content_attributes(r)})
    assert "my key is" in exported  # the content is there, with the key scrubbed
    assert key not in exported
