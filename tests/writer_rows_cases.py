"""A representative set of finished spans, for tests/test_writer_rows.py: what the proxy
hands the writer for chat, streams (chat with tool calls, completions, Responses,
Anthropic), errors, secrets in every place redaction looks, grouping, and the odd
values (too deep to store, not encodable, not UTF-8 JSON). Deterministic: fixed ids and
times, so the rows they become can be pinned."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.capture.redaction import credential_values, redact_headers
from gateway.capture.span import STATUS_CLIENT_ABORTED, STATUS_ERROR, Span, SpanContext

SECRET = "sk-rows-0123456789abcdefXYZ"
BODY_SECRET = "body-rows-9876543210"
T0 = 1_764_000_000_000_000

HEADERS = [
    ("host", "127.0.0.1:8080"),
    ("content-type", "application/json"),
    ("authorization", f"Bearer {SECRET}"),
    ("user-agent", "rows-test"),
    ("x-amz-date", "20260101T000000Z"),
]


def _span(i: int, operation: str = "chat", path: str = "/v1/chat/completions") -> Span:
    context = SpanContext(trace_id=f"{i:032x}", span_id=f"{i:016x}")
    span = Span(context=context, operation=operation, method="POST", path=path, start_us=T0 + i)
    span.provider = "openai"
    span.request_model = "gpt-4o-mini"
    span.request_headers = redact_headers(HEADERS)
    span.secrets = credential_values(HEADERS)
    span.http_status = 200
    span.response_headers = {"content-type": "application/json", "x-request-id": f"req-{i}"}
    span.end_us = T0 + i + 12_345
    return span


def _chat(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": messages, **extra}


def _events(*events: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def chat() -> Span:
    span = _span(1)
    span.request = _chat(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": 'Tell me about foxes, café ☕ \u2028 "quoted".'},
        ],
        temperature=0.2,
        max_tokens=64,
    )
    span.response_body = orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Foxes are quick. 🦊"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 42,
                "completion_tokens": 30,
                "total_tokens": 72,
                "prompt_tokens_details": {"cached_tokens": 10},
            },
        }
    )
    return span


def chat_spaced_body() -> Span:
    """A body as an upstream may format it (spaces, escapes, a large float): stored as
    re-encoded, not as received."""
    span = _span(2)
    span.request = _chat([{"role": "user", "content": "hi"}])
    span.response_body = (
        b'{ "id": "c2", "model": "gpt-4o", "choices": [ { "index": 0, "message":'
        b' { "role": "assistant", "content": "caf\\u00e9 \\/ 1e400?" }, "finish_reason":'
        b' "length" } ], "usage": { "prompt_tokens": 3.0, "completion_tokens": 1e3 },'
        b' "x": 1.10, "y": -0.0 }'
    )
    return span


def chat_stream_tools() -> Span:
    span = _span(3)
    span.stream = True
    span.stream_format = "chat"
    span.first_token_us = T0 + 3 + 2_000
    span.request = _chat(
        [{"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
        stream=True,
        stream_options={"include_usage": True},
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "parameters": {"type": "object", "properties": {"api_key": {"type": "string"}}},
                },
            }
        ],
    )
    base = {"id": "chatcmpl-3", "object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    span.stream_events = _events(
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ],
        },
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]
                    },
                }
            ],
        },
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
        },
    )
    return span


def chat_stream_parsed() -> Span:
    """Events already parsed (dicts), a refusal and a stream error."""
    span = _span(4)
    span.stream = True
    span.stream_format = "chat"
    span.request = _chat([{"role": "user", "content": "x" * 300}], stream=True)
    span.stream_events = [
        {"id": "c4", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"refusal": "No."}}]},
        {"error": {"message": f"upstream broke, key {SECRET}", "type": "server_error"}},
    ]
    return span


def completions_stream() -> Span:
    span = _span(5, "completions", "/v1/completions")
    span.stream = True
    span.stream_format = "completions"
    span.request = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "stream": True}
    span.request_model = "gpt-3.5-turbo-instruct"
    span.stream_events = _events(
        {"id": "c5", "model": "gpt-3.5-turbo-instruct", "choices": [{"index": 0, "text": "Hi"}]},
        {"id": "c5", "choices": [{"index": 0, "text": " there", "finish_reason": "stop"}]},
    )
    return span


def responses_stream() -> Span:
    span = _span(6, "responses", "/v1/responses")
    span.stream = True
    span.stream_format = "responses"
    span.request = {"model": "gpt-4o", "input": "Write a haiku", "stream": True}
    span.request_model = "gpt-4o"
    final = {
        "id": "resp_6",
        "object": "response",
        "model": "gpt-4o-2024-08-06",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Leaves fall"}],
            }
        ],
        "usage": {
            "input_tokens": 11,
            "output_tokens": 5,
            "total_tokens": 16,
            "input_tokens_details": {"cached_tokens": 0},
        },
    }
    span.stream_events = _events(
        {"type": "response.output_text.delta", "delta": "Leaves"},
        {"type": "response.output_text.delta", "delta": " fall"},
        {"type": "response.completed", "response": final},
    )
    return span


def anthropic_stream() -> Span:
    span = _span(7, "messages", "/v1/messages")
    span.provider = "anthropic"
    span.stream = True
    span.stream_format = "anthropic"
    span.request_model = "claude-3-5-sonnet-20241022"
    span.request = {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 256,
        "system": "Be brief",
        "messages": [{"role": "user", "content": "Use the tool"}],
        "stream": True,
    }
    span.request_headers = redact_headers(
        [("x-api-key", SECRET), ("anthropic-version", "2023-06-01")]
    )
    span.secrets = credential_values([("x-api-key", SECRET)])
    span.stream_events = _events(
        {
            "type": "message_start",
            "message": {
                "id": "msg_7",
                "type": "message",
                "role": "assistant",
                "model": "claude-3-5-sonnet-20241022",
                "content": [],
                "usage": {"input_tokens": 25, "cache_read_input_tokens": 100, "output_tokens": 1},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig"},
        },
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Calling."},
        },
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "tu_1", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"a": '},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "1}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 40},
        },
        {"type": "message_stop"},
    )
    return span


def anthropic_plain() -> Span:
    span = _span(8, "messages", "/v1/messages")
    span.provider = "anthropic"
    span.request_model = "claude-3-5-haiku-latest"
    span.request = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    span.response_body = orjson.dumps(
        {
            "id": "msg_8",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "Hello"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 7},
        }
    )
    return span


def error_json_echo() -> Span:
    """An upstream error echoing the client's key and a body secret back."""
    span = _span(9)
    span.status = STATUS_ERROR
    span.http_status = 401
    span.query = f"key={SECRET}&debug=1&x=Bearer%20{SECRET}"
    span.request = _chat(
        [{"role": "user", "content": "hi"}],
        extra_body={"provider": {"api_key": BODY_SECRET, "Api-Key": "", "n": 1}},
    )
    span.response_body = orjson.dumps(
        {"error": {"message": f"Incorrect API key {SECRET}; also {BODY_SECRET}", "type": "auth"}}
    )
    return span


def error_html() -> Span:
    span = _span(10)
    span.status = STATUS_ERROR
    span.http_status = 502
    span.response_headers = {"content-type": "text/html"}
    span.request = _chat([{"role": "user", "content": "hi"}])
    span.response_body = b"<html><body>Bad gateway \xff\xfe</body></html>"
    return span


def aborted() -> Span:
    span = _span(11)
    span.status = STATUS_CLIENT_ABORTED
    span.http_status = None
    span.response_headers = {}
    span.request = _chat([{"role": "user", "content": "hang on"}], stream=True)
    span.stream = True
    span.stream_format = "chat"
    span.stream_events = []
    span.error = {"type": "client_aborted", "message": "the client went away"}
    return span


def grouped() -> Span:
    """Grouping, tags, links and attributes (an experiment's replay); secrets in fields
    named every way `is_secret_name` knows, a Kelvin sign in one."""
    span = _span(12)
    ctx = span.context
    ctx.parent_span_id = "00000000000000aa"
    ctx.project_id = "proj-1"
    ctx.thread_id = "thread-1"
    ctx.run_id = "run-1"
    ctx.label = "café"
    ctx.tags = {"env": "prod", "team": "a b"}
    ctx.links = [{"trace_id": "1" * 32, "span_id": "2" * 16, "attributes": {"k": 1}}]
    ctx.attributes = {
        "spanlab.experiment.id": "exp-1",
        "client_secret": "attr-secret-value",
        "nested": {"PASSWORD": "hunter2-hunter2", "ok": [1, 2.5, None, True]},
    }
    span.request = _chat(
        [{"role": "user", "content": "hi"}],
        metadata={
            "x-goog-foo": "g-value-123456",
            "refresh-token": "r-value-123456",
            "api_\u212aey": "kelvin-value-123456",
            "session_token": 12345,
            "access_token": "",
        },
    )
    span.response_body = orjson.dumps(
        {
            "id": "c12",
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "r-value-123456"}}
            ],
            "auth_token": "resp-secret-123456",
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
    )
    return span


def unpriced_embeddings() -> Span:
    span = _span(13, "embeddings", "/v1/embeddings")
    span.request_model = "my-local-embedder"
    span.request = {"model": "my-local-embedder", "input": ["one", "two"]}
    span.response_body = orjson.dumps(
        {
            "object": "list",
            "model": "my-local-embedder",
            "data": [{"embedding": [0.1, -2e-7]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
    )
    return span


def priced_by_request() -> Span:
    """The upstream names a model the table does not know: priced by the one sent."""
    span = _span(14)
    span.request = _chat([{"role": "user", "content": "hi"}])
    span.response_body = orjson.dumps(
        {
            "model": "some-deployment",
            "choices": [{"message": {"content": None}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 2000},
        }
    )
    return span


def too_deep() -> Span:
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    span = _span(15)
    span.request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "d"}],
        "x": deep,
    }
    span.response_body = b"[" * 300 + b"]" * 300
    span.response_headers = {}
    return span


def just_deep_enough() -> Span:
    deep: Any = {"api_key": "deep-secret-1234"}
    for _ in range(250):
        deep = [deep]
    span = _span(16)
    span.request = {"model": "gpt-4o-mini", "x": deep}
    return span


def not_encodable() -> Span:
    span = _span(17)
    span.request = {"model": "gpt-4o-mini", "when": datetime(2026, 1, 2, tzinfo=UTC), "big": 2**70}
    return span


def empty() -> Span:
    span = _span(18, "models", "/v1/models")
    span.method = "GET"
    span.request = None
    span.request_headers = {}
    span.response_headers = {}
    span.response_body = b""
    span.secrets = []
    return span


def no_secrets_list_body() -> Span:
    span = _span(19)
    span.secrets = []
    span.request_headers = {"content-type": "application/json"}
    span.request = [{"odd": "a list body"}, 1, "two"]
    span.response_body = b'"just a string"'
    return span


def many_choices() -> Span:
    span = _span(20)
    span.request = _chat([{"role": "user", "content": "x"}], n=2)
    span.response_body = orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    },
                    "finish_reason": "stop",
                },
                {"index": 1, "message": {"role": "assistant", "content": "c"}},
            ],
            "usage": {"prompt_tokens": 2**60, "completion_tokens": True, "total_tokens": 1.5},
        }
    )
    return span


CASES: dict[str, Callable[[], Span]] = {
    f.__name__: f
    for f in (
        chat,
        chat_spaced_body,
        chat_stream_tools,
        chat_stream_parsed,
        completions_stream,
        responses_stream,
        anthropic_stream,
        anthropic_plain,
        error_json_echo,
        error_html,
        aborted,
        grouped,
        unpriced_embeddings,
        priced_by_request,
        too_deep,
        just_deep_enough,
        not_encodable,
        empty,
        no_secrets_list_body,
        many_choices,
    )
}
