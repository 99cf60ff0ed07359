"""The OpenAI <-> Anthropic translation functions, in process and without a network."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from gateway.capture.span import assemble_stream
from gateway.errors import InvalidRequest, UpstreamProtocol
from gateway.proxy.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    JSON_OBJECT_INSTRUCTION,
    ChatOverMessages,
    anthropic_credentials,
    chat_to_messages,
)
from gateway.proxy.providers.anthropic_response import (
    ChatStreamTranslator,
    chat_usage,
    error_to_chat,
    finish_reason,
    message_to_chat,
)
from tests.e2e.anthropic_support import stream_events

# A 1x1 PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d4944415478da63606060600000000500010d0a2db40000000049454e44ae426082"
    )
).decode()


def translate(**chat: Any) -> dict[str, Any]:
    chat.setdefault("messages", [{"role": "user", "content": "hi"}])
    body: dict[str, Any] = chat_to_messages(chat, "claude-x").body
    return body


def refused(match: str, **chat: Any) -> InvalidRequest:
    chat.setdefault("messages", [{"role": "user", "content": "hi"}])
    with pytest.raises(InvalidRequest, match=match) as info:
        chat_to_messages(chat, "claude-x")
    return info.value


# --- request: messages ---------------------------------------------------------------


def test_minimal_request() -> None:
    result = chat_to_messages(
        {"model": "anthropic/x", "messages": [{"role": "user", "content": "hi"}]}, "claude-x"
    )
    assert result.body == {
        "model": "claude-x",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert result.stream is False and result.include_usage is False
    assert result.dropped == []
    assert result.notes == [f"max_tokens not given: defaulted to {DEFAULT_MAX_TOKENS}"]


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    result = chat_to_messages(
        {
            "messages": [
                {"role": "system", "content": "Rule one."},
                {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Late rule."},
                {"role": "user", "content": "again"},
            ],
            "max_tokens": 10,
        },
        "claude-x",
    )
    assert result.body["system"] == "Rule one.\n\nRule two.\n\nLate rule."
    assert result.body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}],
        }
    ]
    assert result.notes == ["messages[3]: system message moved into the system prompt"]


def test_system_with_cache_control_stays_as_blocks() -> None:
    body = translate(
        messages=[
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {"role": "user", "content": "hi"},
        ]
    )
    assert body["system"] == [
        {"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}
    ]


def test_user_parts_text_and_images() -> None:
    body = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ]
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_pdf_file_part_becomes_a_document() -> None:
    body = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0=",
                        },
                    }
                ],
            }
        ]
    )
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]


@pytest.mark.parametrize(
    ("part", "match"),
    [
        (
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}},
            "http\\(s\\) URL or a base64",
        ),
        ({"type": "image_url", "image_url": {"url": f"data:image/bmp;base64,{PNG}"}}, "image/bmp"),
        ({"type": "image_url", "image_url": {}}, "needs a url"),
        ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "input_audio"),
        ({"type": "file", "file": {"file_id": "file-123"}}, "file_id"),
        ({"type": "video"}, "'video'"),
    ],
)
def test_untranslatable_user_parts_are_refused(part: dict[str, Any], match: str) -> None:
    error = refused(match, messages=[{"role": "user", "content": [part]}])
    assert error.param == "messages[0].content[0]"


def test_assistant_tool_calls_become_tool_use_blocks() -> None:
    body = translate(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"c": "P", "n": [1, 2]}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "t", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        ],
        tools=[
            {"type": "function", "function": {"name": "w"}},
            {"type": "function", "function": {"name": "t"}},
        ],
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "w", "input": {"c": "P", "n": [1, 2]}},
            {"type": "tool_use", "id": "call_2", "name": "t", "input": {}},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "noon"},
        ],
    }


def test_tool_results_lead_a_merged_user_turn() -> None:
    body = translate(
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "user", "content": "also this"},
            {
                "role": "tool",
                "tool_call_id": "a",
                "content": [
                    {"type": "text", "text": "done"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                ],
            },
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "a",
                "content": [
                    {"type": "text", "text": "done"},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            },
            {"type": "text", "text": "also this"},
        ],
    }


def test_consecutive_assistant_messages_merge_and_empty_ones_are_left_out() -> None:
    result = chat_to_messages(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": ""},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "one"},
                        {"type": "refusal", "refusal": "no"},
                    ],
                },
                {"role": "assistant", "content": "two"},
            ]
        },
        "claude-x",
    )
    assert result.body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "one"},
            {"type": "text", "text": "no"},
            {"type": "text", "text": "two"},
        ],
    }
    assert "messages[1]: empty assistant message left out" in result.notes


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ("{not json", "must be a JSON object"),
        ("[1, 2]", "must be a JSON object"),
        ('"x"', "must be a JSON object"),
    ],
)
def test_tool_call_arguments_must_be_a_json_object(arguments: str, match: str) -> None:
    refused(
        match,
        messages=[
            {"role": "user", "content": "a"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": arguments}}],
            },
        ],
    )


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "non-empty list"),
        ([{"role": "system", "content": "only rules"}], "at least one user message"),
        ([{"role": "narrator", "content": "x"}], "unknown role 'narrator'"),
        (["hello"], "must be an object"),
        ([{"role": "tool", "content": "x"}], "needs a tool_call_id"),
        ([{"role": "function", "name": "f", "content": "x"}], "follows no function_call"),
        ([{"role": "user", "content": 42}], "string or a list"),
        ([{"role": "system", "content": [{"type": "image_url"}]}], "only text parts"),
        ([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}], "needs an id"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "a", "function": {}}]}],
            "needs function.name",
        ),
    ],
)
def test_bad_messages_are_refused_clearly(messages: list[Any], match: str) -> None:
    refused(match, messages=messages)


def test_legacy_function_calling() -> None:
    result = chat_to_messages(
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "function_call": {"name": "w", "arguments": '{"c": "P"}'},
                },
                {"role": "function", "name": "w", "content": "sunny"},
            ],
            "functions": [
                {
                    "name": "w",
                    "parameters": {"type": "object", "properties": {"c": {"type": "string"}}},
                }
            ],
            "function_call": {"name": "w"},
        },
        "claude-x",
    )
    body = result.body
    assert body["tools"] == [
        {"name": "w", "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}}}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "w"}
    use = body["messages"][1]["content"][0]
    assert use["type"] == "tool_use" and use["input"] == {"c": "P"}
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny"}
    ]


# --- request: tools and parameters ---------------------------------------------------


def test_tools_map_to_input_schema() -> None:
    result = chat_to_messages(
        {
            "messages": [{"role": "user", "content": "a"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "description": "does f",
                        "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
                        "strict": True,
                    },
                },
                {"type": "function", "function": {"name": "g"}},
            ],
        },
        "claude-x",
    )
    assert result.body["tools"] == [
        {
            "name": "f",
            "description": "does f",
            "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
        {"name": "g", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in result.body
    assert "tools[0]: strict is not sent (Anthropic has no strict tool mode)" in result.notes


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, True, None),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    chat: dict[str, Any] = {"tools": [{"type": "function", "function": {"name": "f"}}]}
    if choice is not None:
        chat["tool_choice"] = choice
    if parallel is not None:
        chat["parallel_tool_calls"] = parallel
    assert translate(**chat).get("tool_choice") == expected


def test_tool_choice_without_tools_is_left_out() -> None:
    result = chat_to_messages(
        {"messages": [{"role": "user", "content": "a"}], "tool_choice": "required"}, "m"
    )
    assert "tool_choice" not in result.body and "tools" not in result.body
    assert "tool_choice without tools: left out" in result.notes


@pytest.mark.parametrize(
    ("chat", "match"),
    [
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tool type 'custom'"),
        (
            {"tools": [{"type": "function", "function": {"description": "no name"}}]},
            "needs a function with a name",
        ),
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": "sometimes",
            },
            "tool_choice 'sometimes'",
        ),
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {}},
            },
            "needs a name",
        ),
        ({"n": 2}, "one choice"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "json_schema.schema",
        ),
        ({"response_format": {"type": "grammar"}}, "'grammar'"),
    ],
)
def test_untranslatable_parameters_are_refused(chat: dict[str, Any], match: str) -> None:
    refused(match, **chat)


def test_max_tokens_prefers_max_completion_tokens() -> None:
    assert translate(max_tokens=100)["max_tokens"] == 100
    assert translate(max_tokens=100, max_completion_tokens=50)["max_tokens"] == 50
    assert translate()["max_tokens"] == DEFAULT_MAX_TOKENS


def test_sampling_parameters() -> None:
    result = chat_to_messages(
        {
            "messages": [{"role": "user", "content": "a"}],
            "temperature": 1.6,
            "top_p": 0.9,
            "stop": "END",
            "user": "u-42",
        },
        "m",
    )
    body = result.body
    assert body["temperature"] == 1.0
    assert "temperature 1.6 clamped to 1" in result.notes
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-42"}
    assert translate(temperature=0.2, stop=["a", "b"])["temperature"] == 0.2
    assert translate(stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in translate(stop=None)


def test_response_format() -> None:
    assert "system" not in translate(response_format={"type": "text"})
    body = translate(
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "a"}],
        response_format={"type": "json_object"},
    )
    assert body["system"] == f"Be terse.\n\n{JSON_OBJECT_INSTRUCTION}"
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body = translate(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_dropped_fields_are_listed_and_anthropic_fields_pass() -> None:
    result = chat_to_messages(
        {
            "messages": [{"role": "user", "content": "a"}],
            "seed": 1,
            "logprobs": True,
            "frequency_penalty": 0.5,
            "n": 1,
            "my_custom_flag": True,
            "top_k": 40,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
        },
        "m",
    )
    assert result.dropped == ["frequency_penalty", "logprobs", "my_custom_flag", "seed"]
    assert "my_custom_flag: not an OpenAI chat field Spanlab knows; not sent" in result.notes
    assert not any("seed" in note for note in result.notes)
    assert result.body["top_k"] == 40
    assert result.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_stream_flags() -> None:
    result = chat_to_messages(
        {
            "messages": [{"role": "user", "content": "a"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        "m",
    )
    assert result.body["stream"] is True and "stream_options" not in result.body
    assert result.stream and result.include_usage
    result = chat_to_messages({"messages": [{"role": "user", "content": "a"}], "stream": True}, "m")
    assert result.stream and not result.include_usage
    result = chat_to_messages(
        {"messages": [{"role": "user", "content": "a"}], "stream": False}, "m"
    )
    assert "stream" not in result.body and not result.stream


def test_the_client_request_is_not_changed() -> None:
    chat = {
        "model": "anthropic/claude-x",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}],
        "stop": "x",
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
    }
    before = orjson.dumps(chat)
    body = chat_to_messages(chat, "claude-x").body
    body["tools"][0]["input_schema"]["added"] = True
    assert orjson.dumps(chat) == before


# --- response --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, None),
    ],
)
def test_finish_reasons(stop_reason: str | None, expected: str | None) -> None:
    assert finish_reason(stop_reason) == expected


def test_usage_counts_cache_reads_and_writes_as_prompt() -> None:
    usage = chat_usage(
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        }
    )
    assert usage == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert chat_usage({"input_tokens": 3, "output_tokens": 2})["total_tokens"] == 5


def test_message_with_text_tools_and_thinking() -> None:
    completion = message_to_chat(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "look."},
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {"q": "x"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "w",
                    "input": {"city": "Zürich", "n": [1]},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "t", "input": {}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 7, "output_tokens": 9},
        },
        created=123,
    )
    assert completion["id"] == "msg_1"
    assert completion["created"] == 123
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "claude-sonnet-4-5-20250929"
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] == "Let me look."
    assert message["reasoning_content"] == "Hmm."
    assert [c["id"] for c in message["tool_calls"]] == ["toolu_1", "toolu_2"]
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Zürich",
        "n": [1],
    }
    assert message["tool_calls"][1]["function"] == {"name": "t", "arguments": "{}"}
    assert completion["usage"]["total_tokens"] == 16


def test_message_with_only_tool_use_has_null_content_and_no_usage_when_missing() -> None:
    completion = message_to_chat(
        {
            "type": "message",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            "stop_reason": "tool_use",
        }
    )
    assert completion["choices"][0]["message"]["content"] is None
    assert "usage" not in completion
    assert "reasoning_content" not in completion["choices"][0]["message"]


@pytest.mark.parametrize(
    ("kind", "status", "openai_type", "code"),
    [
        ("invalid_request_error", 400, "invalid_request_error", "invalid_request_error"),
        ("authentication_error", 401, "authentication_error", "invalid_api_key"),
        ("permission_error", 403, "permission_error", "permission_error"),
        ("not_found_error", 404, "not_found_error", "not_found_error"),
        ("request_too_large", 413, "invalid_request_error", "request_too_large"),
        ("rate_limit_error", 429, "rate_limit_error", "rate_limit_exceeded"),
        ("api_error", 500, "server_error", "api_error"),
        ("overloaded_error", 529, "server_error", "overloaded"),
        ("brand_new_error", 418, "brand_new_error", "brand_new_error"),
    ],
)
def test_error_bodies(kind: str, status: int, openai_type: str, code: str) -> None:
    body = {"type": "error", "error": {"type": kind, "message": f"about {kind}"}}
    assert error_to_chat(status, body) == {
        "error": {"message": f"about {kind}", "type": openai_type, "code": code, "param": None}
    }


def test_error_bodies_that_are_not_anthropic_errors() -> None:
    error = error_to_chat(502, "<html>Bad gateway</html>")["error"]
    assert error["type"] == "server_error" and error["code"] == "api_error"
    assert error["message"] == "Upstream answered 502: <html>Bad gateway</html>"
    error = error_to_chat(404, {"detail": "nope"})["error"]
    assert error["type"] == "invalid_request_error"
    assert '{"detail":"nope"}' in error["message"]


# --- stream ----------------------------------------------------------------------------


def message(
    content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int
) -> dict[str, Any]:
    return {
        "id": "msg_s",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 4, **usage},
    }


def run_stream(
    events: list[bytes], include_usage: bool = False
) -> tuple[ChatStreamTranslator, list[Any]]:
    """Feed events one by one; the OpenAI SSE data items the client would get."""
    translator = ChatStreamTranslator(include_usage=include_usage, created=5)
    out = b""
    for raw in events:
        assert not translator.done
        out += translator.translate(raw)
    items: list[Any] = []
    for event in out.split(b"\n\n"):
        if event:
            assert event.startswith(b"data: ")
            data = event[6:]
            items.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return translator, items


def test_text_stream() -> None:
    translator, items = run_stream(
        stream_events(message([{"type": "text", "text": "Hello big world"}]), fail=False)
    )
    assert translator.done and not translator.failed
    assert items[-1] == "[DONE]"
    chunks = items[:-1]
    assert chunks[0] == {
        "id": "msg_s",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "claude-3-5-haiku-20241022",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    deltas = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert deltas == [{"content": "Hello"}, {"content": " big"}, {"content": " world"}]
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all("usage" not in c for c in chunks)


def test_usage_chunk_when_asked() -> None:
    events = stream_events(
        message([{"type": "text", "text": "Hi"}], cache_read_input_tokens=50), fail=False
    )
    _, items = run_stream(events, include_usage=True)
    assert items[-1] == "[DONE]"
    assert items[-2]["choices"] == []
    assert items[-2]["usage"] == {
        "prompt_tokens": 61,
        "completion_tokens": 4,
        "total_tokens": 65,
        "prompt_tokens_details": {"cached_tokens": 50},
    }
    assert items[-3]["choices"][0]["finish_reason"] == "stop"


def test_multi_tool_call_stream() -> None:
    content = [
        {"type": "text", "text": "Checking both."},
        {
            "type": "tool_use",
            "id": "toolu_a",
            "name": "weather",
            "input": {"city": "São Paulo", "days": [1, 2, 3]},
        },
        {"type": "tool_use", "id": "toolu_b", "name": "clock", "input": {}},
        {
            "type": "tool_use",
            "id": "toolu_c",
            "name": "news",
            "input": {"topic": {"nested": "yes"}},
        },
    ]
    _, items = run_stream(stream_events(message(content, "tool_use"), fail=False))
    chunks = items[:-1]
    calls: list[dict[str, Any]] = [
        call for c in chunks for call in c["choices"][0]["delta"].get("tool_calls") or []
    ]
    starts = [c for c in calls if "id" in c]
    assert [
        (c["index"], c["id"], c["type"], c["function"]["name"], c["function"]["arguments"])
        for c in starts
    ] == [
        (0, "toolu_a", "function", "weather", ""),
        (1, "toolu_b", "function", "clock", ""),
        (2, "toolu_c", "function", "news", ""),
    ]
    arguments: dict[int, str] = {0: "", 1: "", 2: ""}
    for call in calls:
        if "id" not in call:
            assert set(call) == {"index", "function"}
            arguments[call["index"]] += call["function"]["arguments"]
    assert orjson.loads(arguments[0]) == {"city": "São Paulo", "days": [1, 2, 3]}
    assert arguments[1] == "{}"  # no fragments streamed: an empty object
    assert orjson.loads(arguments[2]) == {"topic": {"nested": "yes"}}
    assert sum(1 for c in calls if c["index"] == 0 and "id" not in c) > 3
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": "Just text, several words here."}],
        [
            {"type": "text", "text": "a"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": "y" * 40}},
        ],
        [
            {"type": "thinking", "thinking": "Let me think.", "signature": "c2ln"},
            {"type": "text", "text": "Answer."},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            {"type": "tool_use", "id": "t2", "name": "g", "input": {"k": [1, {"z": None}]}},
        ],
    ],
)
def test_streamed_and_whole_translations_agree(content: list[dict[str, Any]]) -> None:
    whole = message(
        content, "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    )
    _, items = run_stream(stream_events(whole, fail=False), include_usage=True)
    assert items[-1] == "[DONE]"
    assembled, error = assemble_stream("chat", items[:-1])
    assert error is None
    expected = message_to_chat(whole, created=5)
    expected["choices"][0]["message"].pop("refusal")
    # The span's chat stream assembler (capture.py) does not collect reasoning_content.
    expected["choices"][0]["message"].pop("reasoning_content", None)
    expected["choices"][0].pop("logprobs")
    assert assembled["choices"] == expected["choices"]
    assert assembled["usage"] == expected["usage"]
    assert assembled["id"] == expected["id"] and assembled["model"] == expected["model"]


def test_thinking_stream_becomes_reasoning_content() -> None:
    content = [
        {"type": "thinking", "thinking": "Deep thought.", "signature": "c2ln"},
        {"type": "text", "text": "42"},
    ]
    _, items = run_stream(stream_events(message(content), fail=False))
    deltas = [i["choices"][0]["delta"] for i in items[:-1] if i["choices"]]
    assert {"reasoning_content": "Deep thought."} in deltas
    assert not any("signature" in str(d) for d in deltas)


def test_error_event_ends_the_stream_without_done() -> None:
    translator, items = run_stream(
        stream_events(message([{"type": "text", "text": "a b c"}]), fail=True)
    )
    assert translator.done and translator.failed
    assert "[DONE]" not in items
    assert items[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "server_error",
            "code": "overloaded",
            "param": None,
        }
    }
    assert items[-2]["choices"][0]["delta"] == {"content": "a"}


def test_pings_comments_and_unknown_events_say_nothing() -> None:
    translator = ChatStreamTranslator(include_usage=False)
    assert translator.translate(b'event: ping\ndata: {"type": "ping"}\n\n') == b""
    assert translator.translate(b": keep-alive\n\n") == b""
    assert translator.translate(b'event: future\ndata: {"type": "future_thing"}\n\n') == b""
    assert not translator.done


def test_crlf_events_are_understood() -> None:
    translator = ChatStreamTranslator(include_usage=False)
    data = b'{"type":"message_start","message":{"id":"m","model":"c"}}'
    raw = b"event: message_start\r\ndata: " + data + b"\r\n\r\n"
    out = translator.translate(raw)
    assert orjson.loads(out[6:])["choices"][0]["delta"] == {"role": "assistant", "content": ""}


@pytest.mark.parametrize("raw", [b"data: {oops\n\n", b"data: [1, 2]\n\n"])
def test_malformed_events_are_protocol_errors(raw: bytes) -> None:
    with pytest.raises(UpstreamProtocol) as info:
        ChatStreamTranslator(include_usage=False).translate(raw)
    assert info.value.code == "upstream_stream_malformed"


def test_message_delta_usage_replaces_and_is_recorded() -> None:
    record: dict[str, Any] = {}
    translator = ChatStreamTranslator(include_usage=True, record=record)
    translator.feed(
        {
            "type": "message_start",
            "message": {"id": "m", "model": "c", "usage": {"input_tokens": 5, "output_tokens": 1}},
        }
    )
    assert record["upstream_response"]["usage"] == {"input_tokens": 5, "output_tokens": 1}
    translator.feed(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 30, "input_tokens": 8, "cache_read_input_tokens": None},
        }
    )
    out = translator.feed({"type": "message_stop"})
    assert record["upstream_response"] == {
        "id": "m",
        "model": "c",
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 8, "output_tokens": 30},
    }
    finish, usage, done = out.split(b"\n\n")[:3]
    assert orjson.loads(finish[6:])["choices"][0]["finish_reason"] == "length"
    assert orjson.loads(usage[6:])["usage"]["completion_tokens"] == 30
    assert done == b"data: [DONE]"


def test_whole_tool_input_on_block_start_is_sent_as_arguments() -> None:
    translator = ChatStreamTranslator(include_usage=False)
    translator.feed({"type": "message_start", "message": {"id": "m", "model": "c"}})
    out = translator.feed(
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
        }
    )
    out += translator.feed({"type": "content_block_stop", "index": 0})
    calls = [
        orjson.loads(e[6:])["choices"][0]["delta"]["tool_calls"][0] for e in out.split(b"\n\n") if e
    ]
    assert calls[0]["function"] == {"name": "f", "arguments": ""}
    assert calls[1] == {"index": 0, "function": {"arguments": '{"a":1}'}}
    assert len(calls) == 2  # no "{}" added once arguments were sent


# --- the call and credentials ----------------------------------------------------------


def test_chat_over_messages_record_and_response() -> None:
    call = ChatOverMessages.translate(
        {"messages": [{"role": "user", "content": "a"}], "seed": 3, "api_key": "sk-in-body-secret"},
        "claude-x",
    )
    assert call.record["from"] == "openai.chat.completions"
    assert call.record["to"] == "anthropic.messages"
    assert call.record["dropped"] == ["api_key", "seed"]
    assert orjson.loads(call.upstream_body()) == call.request.body
    body = orjson.dumps(message([{"type": "text", "text": "ok"}]))
    completion = orjson.loads(call.response_body(200, body))
    assert completion["choices"][0]["message"]["content"] == "ok"
    assert call.record["upstream_response"]["stop_reason"] == "end_turn"
    error = orjson.loads(
        call.response_body(
            429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}'
        )
    )
    assert error["error"]["code"] == "rate_limit_exceeded"
    with pytest.raises(UpstreamProtocol):
        call.response_body(200, b"<html>hi</html>")
    assert call.record["upstream_response"] == {"status": 200, "body": "<html>hi</html>"}


def test_bearer_key_moves_to_x_api_key() -> None:
    headers = [("authorization", "Bearer sk-ant-1"), ("content-type", "application/json")]
    assert anthropic_credentials(headers) == [
        ("x-api-key", "sk-ant-1"),
        ("content-type", "application/json"),
    ]
    both = [("authorization", "Bearer a"), ("x-api-key", "b")]
    assert anthropic_credentials(both) == both
    basic = [("authorization", "Basic abc")]
    assert anthropic_credentials(basic) == basic


START = b'{"type":"message_start","message":{"id":"m","model":"c"}}'


@pytest.mark.parametrize(
    "raw",
    [
        b"event: message_start\ndata: " + START + b"\n\n",
        b"data: " + START + b"\n\n",
        b"event: message_start\ndata:" + START + b"\n\n",
        b"event: message_start\ndata: " + START[:24] + b"\ndata: " + START[24:] + b"\n\n",
        b": hello\nevent: message_start\ndata: " + START + b"\n\n",
    ],
)
def test_event_framings(raw: bytes) -> None:
    out = ChatStreamTranslator(include_usage=False).translate(raw)
    chunk = orjson.loads(out[len(b"data: ") :])
    assert chunk["id"] == "m"
    assert chunk["choices"][0]["delta"] == {"role": "assistant", "content": ""}
