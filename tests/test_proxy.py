"""The proxy path in process: forwarding, routing, streaming, errors, capture."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.http.server import CONNECTION_KEY
from gateway.proxy.pipeline import ProxyRequest
from tests.conftest import Gateway, GatewayFactory
from tests.fakes import FakeUpstream, chat_chunks, chat_completion, sse, stream_response

# Every test here runs with both upstream clients (tests/conftest.py).
pytestmark = pytest.mark.both_clients

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def data_events(body: bytes) -> list[bytes]:
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]


async def test_non_streaming_call_is_forwarded_and_captured(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions",
        json={**CHAT, "temperature": 0.3, "seed": 7, "unknown_field": {"x": 1}},
        headers={
            "authorization": "Bearer sk-client",
            "x-thread-id": "thread-1",
            "x-label": "smoke",
            "x-tags": "env=test&team=core",
            "x-project-id": "proj",
        },
    )
    assert r.status_code == 200
    assert r.json() == chat_completion()
    upstream = gateway.upstream.last
    assert str(upstream.url) == "http://upstream.test/v1/chat/completions"
    # The body goes upstream exactly as sent, unknown fields included.
    assert gateway.upstream.bodies[-1] == {
        **CHAT,
        "temperature": 0.3,
        "seed": 7,
        "unknown_field": {"x": 1},
    }
    # No configured key: the client's own credential is forwarded.
    assert upstream.headers["authorization"] == "Bearer sk-client"

    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["trace_id"] == r.headers["x-spanlab-trace-id"]
    assert len(span["trace_id"]) == 32 and len(span["span_id"]) == 16
    assert span["status"] == "ok"
    assert span["http_status"] == 200
    assert span["provider"] == "openai"
    assert span["request_model"] == "gpt-4o-mini"
    assert span["response_model"] == "gpt-4o-mini-2024-07-18"
    assert span["output_text"] == "Hello there!"
    assert span["finish_reason"] == "stop"
    assert span["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "cached_tokens": None,
    }
    # gpt-4o-mini: $0.15 / 1M in, $0.60 / 1M out.
    assert span["cost_usd"] == pytest.approx((12 * 0.15 + 3 * 0.60) / 1e6)
    assert span["thread_id"] == "thread-1"
    assert span["label"] == "smoke"
    assert span["project_id"] == "proj"
    assert span["tags"] == {"env": "test", "team": "core"}
    assert span["request"]["unknown_field"] == {"x": 1}
    assert span["request_headers"]["authorization"] == "[REDACTED]"
    assert span["input_preview"] == "hi"
    assert span["duration_ms"] >= 0
    assert span["otel_attributes"]["gen_ai.request.temperature"] == 0.3
    assert span["otel_attributes"]["gen_ai.usage.input_tokens"] == 12


async def test_traceparent_is_honoured_and_replaced_upstream(gateway: Gateway) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    r = await gateway.client.post(
        "/v1/chat/completions", json=CHAT, headers={"traceparent": f"00-{trace_id}-{parent}-01"}
    )
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["trace_id"] == trace_id
    assert span["parent_span_id"] == parent
    # Upstream sees this span as its parent.
    assert gateway.upstream.last.headers["traceparent"] == f"00-{trace_id}-{span['span_id']}-01"


async def test_invalid_traceparent_starts_a_new_trace(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions", json=CHAT, headers={"traceparent": "garbage"}
    )
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["parent_span_id"] is None
    assert len(span["trace_id"]) == 32


async def test_provider_prefix_routes_and_is_stripped(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/chat/completions", json={**CHAT, "model": "local/llama3"})
    assert r.status_code == 200
    assert str(gateway.upstream.last.url) == "http://local.test/v1/chat/completions"
    assert gateway.upstream.bodies[-1]["model"] == "llama3"
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["provider"] == "local"
    assert span["request_model"] == "local/llama3"
    assert span["request"]["model"] == "llama3"  # as sent upstream


async def test_slash_in_a_bare_model_name_is_not_a_provider(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions", json={**CHAT, "model": "meta-llama/Llama-3-8b"}
    )
    assert r.status_code == 200
    assert str(gateway.upstream.last.url).startswith("http://upstream.test/")
    assert gateway.upstream.bodies[-1]["model"] == "meta-llama/Llama-3-8b"


async def test_model_map_routes_bare_names(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(models={"fast": "local/tiny-model"})
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "model": "fast"})
    assert r.status_code == 200
    assert str(gw.upstream.last.url) == "http://local.test/v1/chat/completions"
    assert gw.upstream.bodies[-1]["model"] == "tiny-model"


async def test_configured_key_replaces_the_client_credential(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-configured-provider-key")
    gw = await make_gateway(
        providers={
            "openai": {
                "kind": "openai",
                "base_url": "http://upstream.test/v1",
                "api_key_env": "TEST_PROVIDER_KEY",
            }
        }
    )
    r = await gw.client.post(
        "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-client"}
    )
    assert r.status_code == 200
    assert gw.upstream.last.headers.get_list("authorization") == [
        "Bearer sk-configured-provider-key"
    ]


async def test_hop_by_hop_and_connection_named_headers_are_not_forwarded(
    gateway: Gateway,
) -> None:
    await gateway.client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={
            "connection": "keep-alive, x-private-hop",
            "x-private-hop": "secret-route",
            "te": "trailers",
            "keep-alive": "timeout=5",
            "x-custom": "kept",
            "x-spanlab-provider": "openai",
        },
    )
    sent = gateway.upstream.last.headers
    assert "x-private-hop" not in sent
    assert "te" not in sent
    assert "keep-alive" not in sent
    assert "x-spanlab-provider" not in sent
    assert sent["x-custom"] == "kept"


async def test_streaming_forwards_every_event_and_assembles_the_span(gateway: Gateway) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    r = await gateway.client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    # The client asked for usage: it sees exactly what the upstream sent.
    assert r.content == b"".join(sse(chat_chunks(["Hel", "lo", "!"], usage=usage)))
    assert gateway.upstream.bodies[-1] == body
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["stream"] is True
    assert span["status"] == "ok"
    assert span["output_text"] == "Hello!"
    assert span["finish_reason"] == "stop"
    assert span["usage"]["total_tokens"] == 15
    assert span["ttft_ms"] is not None and span["ttft_ms"] <= span["duration_ms"]
    assert span["response"]["object"] == "chat.completion"
    assert span["response"]["choices"][0]["message"] == {"role": "assistant", "content": "Hello!"}


async def test_stream_without_usage_asks_upstream_and_hides_the_usage_chunk(
    gateway: Gateway,
) -> None:
    r = await gateway.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert gateway.upstream.bodies[-1]["stream_options"] == {"include_usage": True}
    events = data_events(r.content)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all(chunk["choices"] for chunk in chunks), "usage-only chunk reached the client"
    assert r.content == b"".join(sse(chat_chunks(["Hel", "lo", "!"])))
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["usage"]["total_tokens"] == 15  # captured all the same


async def test_streamed_tool_calls_are_joined(make_gateway: GatewayFactory) -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}

    def tool_delta(index: int, **fields: Any) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, **fields}]}}],
        }

    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        tool_delta(
            0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}
        ),
        tool_delta(0, function={"arguments": '{"city": '}),
        tool_delta(0, function={"arguments": '"Paris"}'}),
        tool_delta(
            1, id="call_b", type="function", function={"name": "get_time", "arguments": "{}"}
        ),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50},
        },
    ]
    upstream = FakeUpstream(handler=lambda request: stream_response(sse(chunks)))
    gw = await make_gateway(upstream)
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    span = await gw.span(r.headers["x-spanlab-span-id"])
    message = span["response"]["choices"][0]["message"]
    assert message["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert span["finish_reason"] == "tool_calls"
    assert span["usage"]["total_tokens"] == 50


@pytest.mark.parametrize(
    ("events", "code", "output"),
    [
        (sse(chat_chunks(["a", "b"]), done=False), "upstream_stream_truncated", "ab"),
        (
            [*sse(chat_chunks(["a"]), done=False), b"data: {not json\n\n", b"data: [DONE]\n\n"],
            "upstream_stream_malformed",
            "a",
        ),
        (
            [*sse(chat_chunks(["a"]), done=False), b'data: {"choices": [{"ind'],
            "upstream_stream_truncated",
            "a",
        ),
    ],
    ids=["no-done", "malformed", "cut-mid-event"],
)
async def test_broken_streams_end_with_an_error_event_not_done(
    make_gateway: GatewayFactory, events: list[bytes], code: str, output: str
) -> None:
    upstream = FakeUpstream(handler=lambda request: stream_response(events))
    gw = await make_gateway(upstream)
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200  # the stream had started
    sent = data_events(r.content)
    assert b"[DONE]" not in sent
    error = orjson.loads(sent[-1])["error"]
    assert error["code"] == code
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == code
    assert span["http_status"] == 200  # what the client received
    assert span["output_text"] == output


async def test_reset_mid_stream_is_an_error_with_partial_output(
    make_gateway: GatewayFactory,
) -> None:
    events = sse(chat_chunks(["one ", "two ", "three"]))
    upstream = FakeUpstream(handler=lambda request: stream_response(events, fail_after=3))
    gw = await make_gateway(upstream)
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert b"[DONE]" not in r.content
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "upstream_stream_truncated"
    assert span["output_text"] == "one two "


async def test_upstream_errors_pass_through_with_status_body_and_retry_after(
    make_gateway: GatewayFactory,
) -> None:
    error_body = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "code": "rate_limit_exceeded",
            "param": None,
        }
    }
    upstream = FakeUpstream(
        handler=lambda request: httpx.Response(429, json=error_body, headers={"retry-after": "7"})
    )
    gw = await make_gateway(upstream)
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 429
    assert r.json() == error_body
    assert r.headers["retry-after"] == "7"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 429
    assert span["error"]["message"] == "Rate limit reached"


async def test_upstream_error_while_streaming_is_passed_through(
    make_gateway: GatewayFactory,
) -> None:
    upstream = FakeUpstream(
        handler=lambda request: httpx.Response(500, json={"error": {"message": "boom"}})
    )
    gw = await make_gateway(upstream)
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 500
    assert r.json() == {"error": {"message": "boom"}}


def _raise(exc: Exception) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.httpx_client_only
@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (httpx.ConnectError("connection refused"), 502, "upstream_unreachable"),
        (httpx.ConnectTimeout("connect timed out"), 504, "upstream_timeout"),
        (httpx.ReadTimeout("read timed out"), 504, "upstream_timeout"),
        (httpx.RemoteProtocolError("server disconnected"), 502, "upstream_unreachable"),
    ],
)
async def test_transport_failures_map_to_502_and_504(
    make_gateway: GatewayFactory, exc: Exception, status: int, code: str
) -> None:
    gw = await make_gateway(FakeUpstream(handler=_raise(exc)))
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "code", "param"}
    assert "openai" in error["message"]
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == status
    assert span["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "status", "code", "needle"),
    [
        (b"{not json", 400, "invalid_json", "not valid JSON"),
        (b"[1, 2]", 400, "invalid_json", "JSON object"),
        (b"", 400, "invalid_json", "empty"),
        (b'{"messages": []}', 400, "missing_model", "model"),
        (b'{"model": 5, "messages": []}', 400, "invalid_request", "string"),
    ],
)
async def test_bad_requests_get_a_clear_error_and_a_span(
    gateway: Gateway, body: bytes, status: int, code: str, needle: str
) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code
    assert needle in error["message"]
    assert gateway.upstream.requests == []
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == code


async def test_unknown_model_without_default_provider_is_404(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(default_provider="")
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "model": "mystery"})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "model_not_found"
    assert "provider/model" in error["message"]
    assert gw.upstream.requests == []


async def test_unknown_provider_header_is_404(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions", json=CHAT, headers={"x-spanlab-provider": "nope"}
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "provider_not_found"


async def test_body_over_the_limit_is_413_before_any_upstream_call(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(max_body_bytes=1024)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
    r = await gw.client.post("/v1/chat/completions", json=big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert gw.upstream.requests == []
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 413


async def test_a_client_gone_mid_upload_is_recorded_as_aborted(gateway: Gateway) -> None:
    """Raw ASGI: the body announces 4096 bytes, 100 arrive, then the client hangs up."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"model": "gpt-4o-mini", "mess', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", b"4096"),
            (b"authorization", b"Bearer sk-upload-secret-0123456789"),
        ],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    await gateway.app(scope, receive, send)
    assert sent == []  # nobody is left to answer
    assert gateway.upstream.requests == []
    await gateway.state.writer.flush()
    r = await gateway.client.get("/spans", params={"status": "client_aborted"})
    [span] = r.json()["data"]
    assert span["operation"] == "chat"
    assert "before its request was fully sent" in span["error"]["message"]
    detail = await gateway.span(span["span_id"])
    assert "sk-upload-secret" not in orjson.dumps(detail).decode()


class HookedConnection:
    """What `spanlab serve`'s protocol hands the app in its scope (a DisconnectHook)."""

    def __init__(self) -> None:
        self.on_disconnect: Any = None


@pytest.mark.parametrize("hooked", [True, False], ids=["connection-hook", "watcher-task"])
async def test_a_client_gone_mid_stream_cancels_the_call(gateway: Gateway, hooked: bool) -> None:
    """Raw ASGI: a stream is relayed, the client goes after its first event; told by
    the connection's hook (`spanlab serve`) or by ``http.disconnect`` (other servers)."""
    events = sse(chat_chunks(["a", "b", "c", "d", "e", "f"]))
    gateway.upstream.handler = lambda request: stream_response(events, delay=0.05)
    body = orjson.dumps({**CHAT, "stream": True})
    connection = HookedConnection()
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        if received == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            gone.set()
            if hooked:
                assert connection.on_disconnect is not None
                connection.on_disconnect()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    if hooked:
        scope[CONNECTION_KEY] = connection
    await asyncio.wait_for(gateway.app(scope, receive, send), 5)
    assert connection.on_disconnect is None  # let go of at the end of the call
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert bodies[0] == events[0] and len(bodies) < len(events)
    span_id = dict(sent[0]["headers"])[b"x-spanlab-span-id"].decode()
    span = await gateway.span(span_id)
    assert span["status"] == "client_aborted"
    assert "abcdef".startswith(span["output_text"] or "")


@pytest.mark.parametrize(
    ("path", "operation", "payload"),
    [
        ("/v1/embeddings", "embeddings", {"model": "text-embedding-3-small", "input": "hello"}),
        ("/v1/completions", "completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say"}),
        ("/v1/responses", "responses", {"model": "gpt-4o", "input": "Tell me"}),
    ],
)
async def test_other_endpoints_are_forwarded_and_captured(
    make_gateway: GatewayFactory, path: str, operation: str, payload: dict[str, Any]
) -> None:
    answer = {
        "object": "list",
        "data": [{"embedding": [0.1, 0.2]}],
        "model": payload["model"],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    gw = await make_gateway(FakeUpstream(handler=lambda request: httpx.Response(200, json=answer)))
    r = await gw.client.post(path, json=payload)
    assert r.status_code == 200
    assert r.json() == answer
    assert str(gw.upstream.last.url) == "http://upstream.test" + path
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["operation"] == operation
    assert span["usage"]["prompt_tokens"] == 2
    assert span["input_preview"] == (payload.get("input") or payload.get("prompt"))


async def test_models_list_of_one_provider_is_forwarded(make_gateway: GatewayFactory) -> None:
    # Named by x-spanlab-provider, one provider's list passes through as it is (the
    # merged list of every provider: tests/test_model_list.py).
    models = {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}
    gw = await make_gateway(FakeUpstream(handler=lambda request: httpx.Response(200, json=models)))
    r = await gw.client.get(
        "/v1/models", headers={"authorization": "Bearer sk-x", "x-spanlab-provider": "openai"}
    )
    assert r.status_code == 200
    assert r.json() == models
    assert len(gw.upstream.requests) == 1
    assert gw.upstream.last.method == "GET"
    assert str(gw.upstream.last.url) == "http://upstream.test/v1/models"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["operation"] == "models"


async def test_the_uis_model_list_is_not_recorded(make_gateway: GatewayFactory) -> None:
    models = {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: httpx.Response(200, json=models)),
        providers={"openai": {"kind": "openai", "base_url": "http://upstream.test/v1"}},
    )
    r = await gw.client.get(
        "/models", headers={"authorization": "Bearer sk-ui-key-0123456789", "x-other": "no"}
    )
    assert r.status_code == 200
    assert r.json() == models
    sent = gw.upstream.last
    assert (sent.method, str(sent.url)) == ("GET", "http://upstream.test/v1/models")
    assert sent.headers["authorization"] == "Bearer sk-ui-key-0123456789"
    assert "x-other" not in sent.headers  # only credentials and the provider choice
    # The same list through the proxy is a span; this one is not.
    r = await gw.client.get("/v1/models")
    await gw.flush()
    listed = (await gw.client.get("/spans")).json()["data"]
    assert [s["span_id"] for s in listed] == [r.headers["x-spanlab-span-id"]]


async def test_the_uis_model_list_reports_upstream_errors_in_the_usual_shape(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: httpx.Response(401, json={"error": "no key"}))
    )
    r = await gw.client.get("/models")
    assert r.status_code == 401
    assert r.json() == {"error": "no key"}  # the upstream's answer, as /v1/models gives it
    r = await gw.client.get("/models", headers={"x-spanlab-provider": "nope"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "provider_not_found"
    await gw.flush()
    assert (await gw.client.get("/spans")).json()["data"] == []


async def test_responses_api_stream_is_assembled(make_gateway: GatewayFactory) -> None:
    final = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt-4o",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi!"}],
            }
        ],
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
    }
    events = [
        b'event: response.created\ndata: {"type": "response.created", "response": {"id": "r"}}\n\n',
        b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", '
        b'"delta": "Hi!"}\n\n',
        b"event: response.completed\ndata: "
        + orjson.dumps({"type": "response.completed", "response": final})
        + b"\n\n",
    ]
    gw = await make_gateway(FakeUpstream(handler=lambda request: stream_response(events)))
    r = await gw.client.post(
        "/v1/responses", json={"model": "gpt-4o", "input": "x", "stream": True}
    )
    assert r.content == b"".join(events)
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["output_text"] == "Hi!"
    assert span["usage"]["total_tokens"] == 7
    assert span["finish_reason"] == "completed"


async def test_capture_off_forwards_without_spans(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(capture=False)
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    await gw.flush()
    assert await gw.state.stores.spans.count_spans() == 0


async def test_concurrent_calls_give_exactly_one_span_each(gateway: Gateway) -> None:
    import asyncio

    async def call(i: int) -> str:
        body = {**CHAT, "stream": i % 2 == 0}
        r = await gateway.client.post(
            "/v1/chat/completions", json=body, headers={"x-thread-id": "burst"}
        )
        assert r.status_code == 200
        return r.headers["x-spanlab-span-id"]

    ids = await asyncio.gather(*(call(i) for i in range(60)))
    await gateway.flush()
    r = await gateway.client.get("/spans", params={"thread": "burst", "limit": 1000})
    stored = [s["span_id"] for s in r.json()["data"]]
    assert sorted(stored) == sorted(ids)
    assert len(set(ids)) == 60


async def test_upstream_slow_to_close_after_done_is_not_an_abort(
    make_gateway: GatewayFactory,
) -> None:
    """After [DONE] the client's response is complete; the gateway reads the rest of
    the upstream body for connection reuse, and that is no client abort."""
    import asyncio

    async def body() -> Any:
        for event in sse(chat_chunks(["ok"])):
            yield event
        await asyncio.sleep(0.3)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    gw = await make_gateway(FakeUpstream(handler=handler))
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.content.endswith(b"data: [DONE]\n\n")
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["output_text"] == "ok"


async def test_overall_deadline_mid_stream_ends_with_an_error_event(
    make_gateway: GatewayFactory,
) -> None:
    events = sse(chat_chunks(["a", "b", "c", "d", "e"]))
    upstream = FakeUpstream(handler=lambda request: stream_response(events, delay=0.1))
    gw = await make_gateway(upstream, request_timeout=0.35)
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200, r.text
    sent = data_events(r.content)
    assert b"[DONE]" not in sent
    assert orjson.loads(sent[-1])["error"]["code"] == "upstream_timeout"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "upstream_timeout"
    assert span["http_status"] == 200
    assert span["output_text"]  # the partial output is kept


async def test_hop_by_hop_response_headers_are_not_forwarded(
    make_gateway: GatewayFactory,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=chat_completion(),
            headers={
                "connection": "x-upstream-hop",
                "x-upstream-hop": "1",
                "keep-alive": "timeout=5",
                "x-request-id": "req-1",
            },
        )

    gw = await make_gateway(FakeUpstream(handler=handler))
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.headers["x-request-id"] == "req-1"
    assert "x-upstream-hop" not in r.headers
    assert "keep-alive" not in r.headers


async def test_non_ascii_header_bytes_are_forwarded_as_received(
    make_gateway: GatewayFactory,
) -> None:
    """HTTP header values may carry any octets (RFC 9110 obs-text); the proxy used to
    decode them as latin-1 and let httpx re-encode them as ASCII (request: 500) or
    re-encode httpx's UTF-8 decoding as latin-1 (response: 500, or altered bytes)."""
    sent = "café ✓".encode()
    returned = "naïve €".encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=chat_completion(), headers=[(b"x-note", returned)])

    gw = await make_gateway(FakeUpstream(handler=handler))
    r = await gw.client.post("/v1/chat/completions", json=CHAT, headers=[(b"x-note", sent)])
    assert r.status_code == 200, r.text
    assert gw.upstream.last.headers.raw.count((b"x-note", sent)) == 1
    assert (b"x-note", returned) in r.headers.raw


def _corrupt_gzip(request: httpx.Request) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"this is not gzip"

    streamed = orjson.loads(request.content).get("stream")
    return httpx.Response(
        200,
        content=body(),
        headers={
            "content-encoding": "gzip",
            "content-type": "text/event-stream" if streamed else "application/json",
        },
    )


async def test_undecodable_upstream_body_is_a_502_not_an_internal_error(
    make_gateway: GatewayFactory,
) -> None:
    """httpx.DecodingError is no TransportError: a body that does not match its
    Content-Encoding used to end as a 500 "internal error" (and a stream without an
    error event)."""
    gw = await make_gateway(FakeUpstream(handler=_corrupt_gzip))
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_protocol_error"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "upstream_protocol_error"

    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    last = [line for line in r.content.split(b"\n") if line.startswith(b"data: ")][-1]
    assert orjson.loads(last[6:])["error"]["code"] == "upstream_protocol_error"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "upstream_protocol_error"


async def test_ttft_is_not_taken_from_a_keep_alive_comment(make_gateway: GatewayFactory) -> None:
    """Providers (OpenRouter, proxies) send SSE comments while the model has not started;
    the time to first token used to be the time of that comment."""
    wait_s = 0.3

    async def body() -> AsyncIterator[bytes]:
        yield b": PROCESSING\n\n"
        await asyncio.sleep(wait_s)
        for event in sse(chat_chunks(["Hi"])):
            yield event

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    gw = await make_gateway(FakeUpstream(handler=handler))
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.content.startswith(b": PROCESSING\n\n")  # still forwarded
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["output_text"] == "Hi"
    assert span["ttft_ms"] >= wait_s * 1000


async def test_an_upstream_error_that_is_not_json_still_gives_the_span_an_error(
    make_gateway: GatewayFactory,
) -> None:
    """A load balancer's HTML 502 page, or an empty 503: the span said status error with
    error null, so nothing told why the call failed."""
    answers = iter(
        [
            httpx.Response(
                502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"}
            ),
            httpx.Response(503),
        ]
    )
    gw = await make_gateway(FakeUpstream(handler=lambda request: next(answers)))
    first = await gw.client.post("/v1/chat/completions", json=CHAT)
    second = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert first.text == "<html>Bad Gateway</html>"  # passed through as is
    span = await gw.span(first.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert "502" in span["error"]["message"]
    assert "Bad Gateway" in span["error"]["message"]
    span = await gw.span(second.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert "503" in span["error"]["message"]


@pytest.mark.httpx_client_only
async def test_no_free_upstream_connection_is_not_blamed_on_the_provider(
    make_gateway: GatewayFactory,
) -> None:
    """httpx.PoolTimeout (every one of max_connections busy) was reported as 504
    "Provider 'openai' timed out", sending the operator after a healthy provider."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.PoolTimeout("no connection available")

    gw = await make_gateway(FakeUpstream(handler=handler), max_connections=7)
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert "max_connections" in error["message"] and "7" in error["message"]
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 503


class _CollectingSink:
    def __init__(self) -> None:
        self.started = False
        self.client_gone = False
        self.status = 0
        self.body = b""

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.status = status

    async def send(self, data: bytes) -> None:
        self.body += data

    async def end(self) -> None:
        pass


async def test_an_in_process_payload_is_not_changed_by_the_call(gateway: Gateway) -> None:
    """An in-process caller's payload (experiments, the playground) was edited in place:
    its "local/" prefix removed and stream_options added. Sent again (a repeat, the next
    input), "llama3" then went to the default provider."""
    payload = {"model": "local/llama3", "messages": [{"role": "user", "content": "hi"}]}
    payload["stream"] = True
    original = orjson.loads(orjson.dumps(payload))
    for _ in range(2):
        sink = _CollectingSink()
        request = ProxyRequest(
            operation="chat",
            method="POST",
            path="/v1/chat/completions",
            headers=[],
            payload=payload,
        )
        span = await gateway.state.pipeline.handle(request, sink)
        assert sink.status == 200
        assert span.provider == "local"
        assert str(gateway.upstream.last.url) == "http://local.test/v1/chat/completions"
        assert payload == original


async def test_a_key_in_a_provider_header_is_scrubbed_when_echoed_back(
    make_gateway: GatewayFactory,
) -> None:
    """A key configured as a provider header (Azure's api-key) was not among the values
    scrubbed from the span, so an upstream error repeating it was stored as is."""
    secret = "azure-key-0123456789abcdef"

    def echo(request: httpx.Request) -> httpx.Response:
        message = f"Incorrect API key provided: {request.headers['api-key']}"
        return httpx.Response(401, json={"error": {"message": message}})

    gw = await make_gateway(
        FakeUpstream(handler=echo),
        providers={
            "azure": {
                "kind": "openai",
                "base_url": "http://azure.test/v1",
                "headers": {"api-key": secret},
            }
        },
        default_provider="azure",
    )
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 401
    assert gw.upstream.last.headers["api-key"] == secret  # it did go upstream
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["error"]["message"].startswith("Incorrect API key provided")
    assert secret not in orjson.dumps(span).decode()
