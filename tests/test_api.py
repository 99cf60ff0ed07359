"""The management API: one error shape everywhere, traces, threads, stats, live
events, health and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.fakes import FakeUpstream, chat_completion

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def call(gateway: Gateway, **headers: str) -> str:
    r = await gateway.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 200
    return r.headers["x-spanlab-span-id"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/nowhere", {}, 404, "not_found"),
        ("DELETE", "/spans", {}, 405, "method_not_allowed"),
        ("GET", "/v1/chat/completions", {}, 405, "method_not_allowed"),
        ("GET", "/spans/0000000000000000", {}, 404, "not_found"),
        ("GET", "/traces/00000000000000000000000000000000", {}, 404, "not_found"),
        ("GET", "/spans?limit=0", {}, 400, "invalid_request"),
        ("GET", "/spans?limit=ten", {}, 400, "invalid_request"),
        ("GET", "/spans?status=weird", {}, 400, "invalid_request"),
        ("GET", "/spans?since=yesterday", {}, 400, "invalid_request"),
        ("GET", "/spans?since=2025-01-01T00:00:00", {}, 400, "invalid_request"),
        ("GET", "/spans?cursor=@@", {}, 400, "invalid_request"),
        ("GET", "/stats?group_by=colour", {}, 400, "invalid_request"),
        (
            "POST",
            "/v1/chat/completions",
            {"content": b"{", "headers": {"content-type": "application/json"}},
            400,
            "invalid_json",
        ),
        ("POST", "/v1/chat/completions", {"content": b"{"}, 415, "unsupported_media_type"),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {}, "headers": {"origin": "null"}},
            403,
            "origin_not_allowed",
        ),
        ("POST", "/v1/chat/completions", {"json": {"messages": []}}, 400, "missing_model"),
    ],
)
async def test_every_error_has_the_one_shape(
    gateway: Gateway, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    r = await gateway.client.request(method, path, **kwargs)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_spans_list_filters_and_paginates_over_http(gateway: Gateway) -> None:
    ids = [await call(gateway, **{"x-thread-id": "t-api"}) for _ in range(5)]
    await call(gateway, **{"x-thread-id": "other"})
    await gateway.flush()
    r = await gateway.client.get("/spans", params={"thread": "t-api", "limit": 2})
    first = r.json()
    assert [s["span_id"] for s in first["data"]] == ids[::-1][:2]
    assert "request" not in first["data"][0]  # lists are summaries
    r = await gateway.client.get(
        "/spans", params={"thread": "t-api", "limit": 10, "cursor": first["next_cursor"]}
    )
    assert [s["span_id"] for s in r.json()["data"]] == ids[::-1][2:]
    assert r.json()["next_cursor"] is None


async def test_trace_threads_and_stats(gateway: Gateway) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    for _ in range(2):
        await call(
            gateway, traceparent=f"00-{trace_id}-00f067aa0ba902b7-01", **{"x-thread-id": "conv"}
        )
    await gateway.flush()
    trace = (await gateway.client.get(f"/traces/{trace_id}")).json()
    assert len(trace["spans"]) == 2
    assert all(s["parent_span_id"] == "00f067aa0ba902b7" for s in trace["spans"])
    threads = (await gateway.client.get("/threads")).json()["data"]
    assert threads[0]["thread_id"] == "conv"
    assert threads[0]["calls"] == 2
    assert threads[0]["total_tokens"] == 30
    stats = (await gateway.client.get("/stats", params={"group_by": "provider"})).json()
    assert stats["data"][0]["group"] == "openai"
    assert stats["data"][0]["calls"] == 2


async def test_health_metrics_and_root_redirect(gateway: Gateway) -> None:
    await call(gateway)
    await gateway.flush()
    health = (await gateway.client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["spans_written"] == 1
    metrics = (await gateway.client.get("/metrics")).text
    assert 'spanlab_requests_total{model="gpt-4o-mini",provider="openai",status="ok"} 1.0' in (
        metrics
    )
    assert 'spanlab_tokens_total{kind="prompt",model="gpt-4o-mini",provider="openai"} 12.0' in (
        metrics
    )
    assert "spanlab_spans_written_total 1.0" in metrics
    assert "spanlab_span_queue_depth 0.0" in metrics
    assert "spanlab_in_flight_requests 0.0" in metrics
    r = await gateway.client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307)
    assert r.headers["location"] == "/ui/"


async def test_events_stream_announces_each_stored_span(gateway: Gateway) -> None:
    """Drive GET /events as raw ASGI (the test client would wait for the end)."""
    received: list[bytes] = []
    got_span = asyncio.Event()
    disconnect = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            received.append(message.get("body", b""))
            if b"event: span" in message.get("body", b""):
                got_span.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/events",
        "raw_path": b"/events",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("test", 80),
        "client": ("test", 1),
        "root_path": "",
        "app": gateway.app,
    }
    task = asyncio.create_task(gateway.app(scope, receive, send))
    for _ in range(100):  # wait until subscribed
        if gateway.state.events.listeners:
            break
        await asyncio.sleep(0.01)
    span_id = await call(gateway)
    await asyncio.wait_for(got_span.wait(), timeout=5)
    disconnect.set()
    await asyncio.wait_for(task, timeout=5)
    body = b"".join(received)
    event = next(e for e in body.split(b"\n\n") if e.startswith(b"event: span"))
    data = orjson.loads(event.split(b"data: ", 1)[1])
    assert data["span_id"] == span_id
    assert data["status"] == "ok"
    assert data["usage"]["total_tokens"] == 15
    assert gateway.state.events.listeners == 0


async def test_metrics_model_labels_are_bounded(gateway: Gateway) -> None:
    from gateway.metrics import MAX_MODEL_LABELS

    metrics = gateway.state.metrics
    names = [metrics.model_label(f"client-invented-{i}") for i in range(MAX_MODEL_LABELS + 5)]
    assert names[:MAX_MODEL_LABELS] == [f"client-invented-{i}" for i in range(MAX_MODEL_LABELS)]
    assert set(names[MAX_MODEL_LABELS:]) == {"other"}
    assert metrics.model_label("client-invented-3") == "client-invented-3"  # already seen
    assert metrics.model_label(None) == "none"


async def test_a_span_says_which_model_its_cost_is_for(make_gateway: GatewayFactory) -> None:
    """Issue 9 #15: an upstream answering under a name the price table does not know
    (a dated alias of its own) left the call without a cost; the requested model's
    price is used and GET /spans/{id} names the model priced."""
    upstream = FakeUpstream(
        handler=lambda request: httpx.Response(
            200, json=chat_completion(model="gpt-4o-mini-mock-2024", prompt_tokens=1000)
        )
    )
    gateway: Gateway = await make_gateway(upstream)
    r = await gateway.client.post(
        "/v1/chat/completions",
        json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["response_model"] == "gpt-4o-mini-mock-2024"
    assert span["attributes"]["spanlab.cost.priced_model"] == "gpt-4o-mini"
    # 1000 prompt tokens at $0.15/M and 3 completion tokens at $0.60/M.
    assert span["cost_usd"] == pytest.approx((1000 * 0.15 + 3 * 0.6) / 1_000_000)
    listed = (await gateway.client.get("/spans")).json()["data"]
    assert listed[0]["cost_usd"] == span["cost_usd"]


def nested_json(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


async def test_a_request_too_deep_to_store_is_proxied_and_its_span_says_so(
    gateway: Gateway,
) -> None:
    """Issue 9 #8: a request nested 255-1,024 levels (orjson reads 1,024, writes 254)
    was proxied but its span kept only its outline, with status ok and no word of why;
    when the proxy had to rewrite it (a provider prefix, stream usage) the client got
    a 500."""
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "x": %s}'
    r = await gateway.client.post(
        "/v1/chat/completions",
        content=(body % nested_json(600)).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["error"]["code"] == "too_deeply_nested"
    assert "request too deeply nested to store" in span["error"]["message"]
    assert span["attributes"]["spanlab.capture.dropped"] == ["request"]
    assert span["request"] is None
    assert span["output_text"] == "Hello there!" and span["usage"]["total_tokens"] == 15

    rewritten = body.replace("gpt-4o-mini", "openai/gpt-4o-mini", 1)
    streamed = body.replace("{", '{"stream": true, ', 1)
    for text in (rewritten, streamed):
        r = await gateway.client.post(
            "/v1/chat/completions",
            content=(text % nested_json(300)).encode(),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "too_deeply_nested"
        span = await gateway.span(r.headers["x-spanlab-span-id"])
        assert span["status"] == "error"
        assert span["attributes"]["spanlab.capture.dropped"] == ["request"]
