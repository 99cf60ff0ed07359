"""The management API: one error shape everywhere, traces, threads, stats, live
events, health and metrics."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import capture, create, error_of
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


@pytest.mark.parametrize("value", ["inf", "-inf", "1e30"])
async def test_a_time_filter_out_of_range_is_a_400(gateway: Gateway, value: str) -> None:
    """`since`/`until` as Unix seconds went through int(float(x) * 1e6) unchecked: inf
    raised OverflowError, 1e30 an integer SQLite cannot bind; both answered 500."""
    for name in ("since", "until"):
        r = await gateway.client.get("/spans", params={name: value})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == name


# --- issue 9 #8: inputs that answered 500 ---------------------------------------------

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
IMPORTED = {"original_span_id": "s-1", "original_trace_id": "t-1", "original_request": REQUEST}
HISTORY = {"version": 1, "action": "created", "at": "2025-01-01T00:00:00Z", "snapshot": {}}
RUN = {"id": "run-1", "status": "completed", "request": REQUEST, "started_at": "2025-01-01"}


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


async def send_json(gateway: Gateway, method: str, path: str, text: str) -> httpx.Response:
    return await gateway.client.request(
        method, path, content=text.encode(), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("path", ["/spans", "/experiments"])
@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of("[[1], [2]]"),  # a list where SQLite binds a value: ProgrammingError
        cursor_of('[{"a": 1}, "x"]'),
        cursor_of(f"[{2**63}, 1]"),  # past 64 bits: OverflowError
        cursor_of("[true, 1]"),
        cursor_of("[1, 2, 3]"),
        "5",
        "not base64 at all!",
    ],
)
async def test_a_cursor_of_the_wrong_type_is_a_400(
    gateway: Gateway, path: str, cursor: str
) -> None:
    await capture(gateway)
    r = await gateway.client.get(path, params={"cursor": cursor})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "cursor"


@pytest.mark.parametrize("path", ["/spans", "/stats", "/experiments", "/experiments/export"])
async def test_a_search_text_past_1000_characters_is_a_400(gateway: Gateway, path: str) -> None:
    """A 60k-character q made SQLite refuse the LIKE pattern ("too complex"): 500."""
    await capture(gateway)
    await create(gateway, original_span_id="s-1", original_trace_id="t-1", original_request=REQUEST)
    r = await gateway.client.get(path, params={"q": "a" * 60_000})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "q"
    assert (await gateway.client.get(path, params={"q": "%" * 1000})).status_code == 200


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({**IMPORTED, "runs": 5}, "runs"),  # TypeError: 'int' object is not iterable
        ({**IMPORTED, "history": 5}, "history"),
        ({**IMPORTED, "runs": {"id": "run-1"}}, "runs"),  # iterated over its keys
        ({**IMPORTED, "history": [{**HISTORY, "run_id": ["r"]}]}, "history.run_id"),
        ({**IMPORTED, "version": 2**63}, "version"),  # OverflowError binding it
        ({**IMPORTED, "history": [{**HISTORY, "version": 2**63}]}, "history.version"),
        ({**IMPORTED, "runs": [{**RUN, "duration_ms": 2**63}]}, "runs.duration_ms"),
        ({**IMPORTED, "history": [HISTORY, HISTORY]}, "history.version"),  # UNIQUE failed
        ({**IMPORTED, "runs": [RUN, RUN]}, "runs.id"),
    ],
)
async def test_an_import_of_the_wrong_shape_is_a_4xx_and_stores_nothing(
    gateway: Gateway, item: dict[str, Any], param: str
) -> None:
    r = await gateway.client.post(
        "/experiments/import",
        content=json.dumps(item).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert error_of(r)["param"] == param
    assert (await gateway.client.get("/experiments")).json()["data"] == []


async def test_an_empty_project_id_names_no_project(gateway: Gateway) -> None:
    """project_id "" failed the projects foreign key: 500 on update and import, a
    wrong 409 ("already exists") on duplicate."""
    created = await create(gateway, **IMPORTED, project_id="")
    assert created["project_id"] is None
    exp_id = created["id"]
    r = await gateway.client.put(f"/experiments/{exp_id}", json={"project_id": "p-1"})
    assert r.json()["project_id"] == "p-1"
    r = await gateway.client.put(f"/experiments/{exp_id}", json={"project_id": ""})
    assert r.status_code == 200, r.text
    assert r.json()["project_id"] is None
    r = await gateway.client.post(f"/experiments/{exp_id}/duplicate", json={"project_id": ""})
    assert r.status_code == 201, r.text
    assert r.json()["project_id"] is None
    r = await gateway.client.post("/experiments/import", json={**IMPORTED, "project_id": ""})
    assert r.status_code == 201, r.text
    assert r.json()["data"][0]["project_id"] is None


@pytest.mark.parametrize("levels", [129, 300, 1000])
@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("POST", "/experiments", json.dumps(IMPORTED).replace('"hi"}', '"hi", "x": %s}')),
        ("PUT", "/experiments/{id}", '{"prompt_variables": {"v": %s}}'),
        ("POST", "/experiments/{id}/duplicate", '{"name": %s}'),
        ("POST", "/experiments/import", json.dumps([IMPORTED]).replace('"hi"}', '"hi", "x": %s}')),
    ],
)
async def test_a_body_nested_too_deeply_is_a_400(
    gateway: Gateway, method: str, path: str, template: str, levels: int
) -> None:
    """Bodies nested 255-1,024 levels: orjson reads them but writes 254 levels at most,
    and redaction recursed into a RecursionError; both answered 500."""
    exp_id = (await create(gateway, **IMPORTED))["id"]
    r = await send_json(gateway, method, path.replace("{id}", exp_id), template % deep(levels))
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == "too_deeply_nested"


async def test_a_request_nested_too_deeply_is_a_400_however_it_comes(gateway: Gateway) -> None:
    """As JSON text in a field (parsed past the body's check), or from a captured span
    (which may nest 254 levels): refused before anything is stored."""
    text = json.dumps({**REQUEST, "metadata": "x"}).replace('"x"', deep(150))
    r = await gateway.client.post("/experiments", json={**IMPORTED, "modified_request": text})
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "modified_request"
    r = await send_json(
        gateway,
        "POST",
        "/v1/chat/completions",
        json.dumps({**REQUEST, "metadata": "x"}).replace('"x"', deep(120)),
    )
    assert r.status_code == 200, r.text
    r = await gateway.client.post(
        "/experiments", json={"original_span_id": r.headers["x-spanlab-span-id"]}
    )
    assert r.status_code == 400, r.text
    assert error_of(r)["param"] == "original_request"
    assert (await gateway.client.get("/experiments")).json()["data"] == []


@pytest.mark.parametrize("value", ["terse\r\nx-injected: 1", "a\nb", "nul\x00", "euro €"])
async def test_a_header_that_renders_to_a_line_break_is_refused_before_the_run(
    gateway: Gateway, value: str
) -> None:
    """Saved header values are checked for line breaks, but not once the prompt
    variables are rendered into them: a variable could add header lines to the request
    the gateway's own HTTP client writes upstream."""
    created = await create(
        gateway, **IMPORTED, headers={"x-note": "be {{tone}}"}, prompt_variables={"tone": value}
    )
    r = await gateway.client.post(f"/experiments/{created['id']}/run")
    assert r.status_code == 422, r.text
    assert error_of(r)["param"] == "headers.x-note"
    assert gateway.upstream.requests == []
    assert (await gateway.client.get(f"/experiments/{created['id']}/runs")).json()["data"] == []
    r = await gateway.client.put(
        f"/experiments/{created['id']}", json={"headers": {"x-note": "nul\x00"}}
    )
    assert r.status_code == 422, r.text
