"""Running experiments through the proxy pipeline, in process: rendering, routing,
credentials, the result span and its links, streaming, failures, concurrency,
shutdown and recovery."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from gateway.experiments.runner import (
    ATTR_EXPERIMENT,
    ATTR_ORIGINAL_SPAN,
    ATTR_ORIGINAL_TRACE,
    ATTR_RUN,
    LINK_TYPE,
)
from gateway.store.experiments import SqlExperimentStore, now_iso
from tests.conftest import Gateway, GatewayFactory
from tests.e2e.anthropic_support import MockAnthropic
from tests.experiments_helpers import CHAT, capture, create, error_of, run, sse_events
from tests.experiments_upstream import compose
from tests.fakes import FakeUpstream, chat_chunks, sse, stream_response

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search {{corpus}} for an answer",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def scripted(request: httpx.Request, *, delay: float = 0.0) -> httpx.Response:
    """The fake upstream answering like tests/experiments_upstream.py."""
    body = orjson.loads(request.content)
    answer = compose(body)
    model = f"{body['model']}-2025-01-01"
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": answer["content"]}
        if answer["tool_calls"]:
            message["tool_calls"] = answer["tool_calls"]
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "finish_reason": answer["finish_reason"]}
                ],
                "usage": answer["usage"],
            },
        )
    words = answer["content"].split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    chunks = chat_chunks(
        pieces, model=model, usage=answer["usage"], finish_reason=answer["finish_reason"]
    )
    return stream_response(sse(chunks), delay=delay)


def slow_after_first(delay: float) -> Any:
    """The original call answers at once; the replays stream ``delay`` s per chunk."""
    seen = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        return scripted(request, delay=delay if seen > 1 else 0.0)

    return handler


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=scripted))
    return gateway


async def test_run_renders_merges_and_links_the_result_span(gw: Gateway) -> None:
    original = await capture(
        gw,
        {**CHAT, "tools": TOOLS, "tool_choice": "none", "max_tokens": 50},
        **{"x-thread-id": "thread-7", "x-project-id": "proj-7"},
    )
    system = {"role": "system", "content": "Be {{tone}} about {{#topics}}{{.}}, {{/topics}}ok?"}
    exp = await create(
        gw,
        original_span_id=original["span_id"],
        modified_request={**original["request"], "messages": [system, *CHAT["messages"][1:]]},
        prompt_variables={"tone": "terse <&>", "corpus": "the wiki", "topics": ["a", "b"]},
        model_parameters={"temperature": 1.5, "max_tokens": None},
        headers={"x-experiment-note": "{{tone}}"},
    )
    done = await run(gw, exp["id"])
    assert done["status"] == "completed", done
    sent = gw.upstream.bodies[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be terse <&> about a, b, ok?"}
    assert sent["tools"][0]["function"]["description"] == "Search the wiki for an answer"
    assert sent["temperature"] == 1.5
    assert "max_tokens" not in sent  # a null parameter removes the key
    assert gw.upstream.last.headers["x-experiment-note"] == "terse <&>"
    assert done["request"] == sent  # the run records what was sent
    assert done["output_text"] == compose(sent)["content"]

    result = await gw.span(done["result_span_id"])
    assert result["trace_id"] == done["result_trace_id"] != original["trace_id"]
    assert result["parent_span_id"] is None
    assert result["label"] == "experiment"
    assert result["thread_id"] == "thread-7"
    assert result["project_id"] == "proj-7"
    assert result["attributes"] == {
        ATTR_EXPERIMENT: exp["id"],
        ATTR_RUN: done["id"],
        ATTR_ORIGINAL_SPAN: original["span_id"],
        ATTR_ORIGINAL_TRACE: original["trace_id"],
    }
    assert result["links"] == [
        {
            "trace_id": original["trace_id"],
            "span_id": original["span_id"],
            "attributes": {LINK_TYPE: "replay_of", ATTR_EXPERIMENT: exp["id"]},
        }
    ]
    # The upstream saw the result span as its W3C parent.
    assert gw.upstream.last.headers["traceparent"] == (
        f"00-{result['trace_id']}-{result['span_id']}-01"
    )

    after = (await gw.client.get(f"/experiments/{exp['id']}")).json()
    assert after["status"] == "completed"
    assert after["result_span_id"] == result["span_id"]
    assert after["result_trace_id"] == result["trace_id"]
    assert after["error"] is None
    runs = (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"]
    assert [r["id"] for r in runs] == [done["id"]]
    assert runs[0]["started_at"] <= runs[0]["ended_at"] and runs[0]["duration_ms"] > 0
    one = (await gw.client.get(f"/experiments/{exp['id']}/runs/{done['id']}")).json()
    assert one == runs[0]
    # Counted by the pipeline like any call: the original and the replay.
    metrics = (await gw.client.get("/metrics")).text
    counted = 'spanlab_requests_total{model="gpt-4o-mini",provider="openai",status="ok"} 2.0'
    assert counted in metrics


async def test_every_run_is_kept(gw: Gateway) -> None:
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    first = await run(gw, exp["id"])
    await gw.client.put(
        f"/experiments/{exp['id']}", json={"model_parameters": {"temperature": 0.1}}
    )
    second = await run(gw, exp["id"])
    runs = (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"]
    assert [r["id"] for r in runs] == [second["id"], first["id"]]
    assert runs[0]["request"]["temperature"] == 0.1
    assert runs[1]["request"]["temperature"] == 0.7
    assert first["result_span_id"] != second["result_span_id"]
    latest = (await gw.client.get(f"/experiments/{exp['id']}")).json()
    assert latest["result_span_id"] == second["result_span_id"]
    r = await gw.client.get(f"/experiments/{exp['id']}/runs/exprun_nope")
    assert r.status_code == 404


async def test_run_streams_server_sent_events(gw: Gateway) -> None:
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    r = await gw.client.post(f"/experiments/{exp['id']}/run?stream=true")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    assert set(names[1:-1]) == {"delta"} and len(names) > 3
    start, done = events[0][1], events[-1][1]
    assert start["status"] == "running" and start["id"] == done["id"]
    text = "".join(data["content"] for name, data in events if name == "delta")
    assert text == done["output_text"] == compose(gw.upstream.bodies[-1])["content"]
    sent = gw.upstream.bodies[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert done["request"]["stream"] is True
    assert "stream_options" not in done["request"]  # what the experiment sent, not the proxy
    result = await gw.span(done["result_span_id"])
    assert result["stream"] is True and result["ttft_ms"] is not None
    assert result["usage"]["completion_tokens"] == len(text.split())


async def test_a_streamed_original_replays_as_a_stream(gw: Gateway) -> None:
    original = await capture(gw, {**CHAT, "stream": True})
    assert original["request"]["stream_options"] == {"include_usage": True}
    exp = await create(gw, original_span_id=original["span_id"])
    done = await run(gw, exp["id"])
    assert done["status"] == "completed"
    assert gw.upstream.bodies[-1]["stream"] is True
    result = await gw.span(done["result_span_id"])
    assert result["stream"] is True and result["output_text"] == done["output_text"]
    # Turned off, the recorded stream_options go too (OpenAI refuses them alone).
    await gw.client.put(f"/experiments/{exp['id']}", json={"model_parameters": {"stream": False}})
    done = await run(gw, exp["id"])
    assert done["status"] == "completed"
    assert gw.upstream.bodies[-1]["stream"] is False
    assert "stream_options" not in gw.upstream.bodies[-1]


async def test_a_failed_upstream_call_fails_the_run_with_its_error(
    make_gateway: GatewayFactory,
) -> None:
    answers = [scripted]

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop()(request)
        return httpx.Response(
            400,
            json={"error": {"message": "temperature too high", "type": "invalid_request_error"}},
        )

    gw = await make_gateway(FakeUpstream(handler=handler))
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    failed = await run(gw, exp["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "temperature too high"
    after = (await gw.client.get(f"/experiments/{exp['id']}")).json()
    assert after["status"] == "failed" and after["error"] == failed["error"]
    assert after["result_span_id"] == failed["result_span_id"]
    result = await gw.span(failed["result_span_id"])
    assert result["status"] == "error" and result["http_status"] == 400

    r = await gw.client.post(f"/experiments/{exp['id']}/run?stream=true")
    events = sse_events(r.text)
    assert [name for name, _ in events] == ["start", "error"]
    assert events[1][1]["error"]["message"] == "temperature too high"
    assert events[1][1]["run"]["status"] == "failed"


async def test_unreachable_provider_fails_the_run(make_gateway: GatewayFactory) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise httpx.ConnectError("connection refused")
        return scripted(request)

    gw = await make_gateway(FakeUpstream(handler=handler))
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    failed = await run(gw, exp["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "upstream_unreachable"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"prompt_variables": {"other": "x"}}, 422, "missing_variable"),
        (
            {"model_parameters": {"model": "nowhere-model"}, "_no_default": True},
            404,
            "model_not_found",
        ),
        ({"headers": {"x-spanlab-provider": "evil"}}, 404, "provider_not_found"),
        ({"modified_request": {"model": "gpt-4o-mini", "messages": []}}, 422, "missing_messages"),
    ],
)
async def test_refused_runs_write_nothing(
    make_gateway: GatewayFactory, change: dict[str, Any], status: int, code: str
) -> None:
    overrides = {"default_provider": ""} if change.pop("_no_default", False) else {}
    gw = await make_gateway(FakeUpstream(handler=scripted), **overrides)
    original = await capture(gw, {**CHAT, "model": "openai/gpt-4o-mini"})
    messages = [{"role": "user", "content": "Say {{word}}"}]
    exp = await create(
        gw,
        original_span_id=original["span_id"],
        modified_request={**original["request"], "messages": messages},
        prompt_variables={"word": "hi"},
    )
    r = await gw.client.put(f"/experiments/{exp['id']}", json=change)
    assert r.status_code == 200, r.text
    before = r.json()
    calls = len(gw.upstream.requests)
    r = await gw.client.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == status, r.text
    assert error_of(r)["code"] == code
    r = await gw.client.post(f"/experiments/{exp['id']}/run?stream=true")
    assert r.status_code == status and r.headers["content-type"].startswith("application/json")
    assert len(gw.upstream.requests) == calls  # nothing went upstream
    assert (await gw.client.get(f"/experiments/{exp['id']}")).json() == before
    assert (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"] == []
    assert (await gw.client.post("/experiments/exp_nope/run")).status_code == 404


async def test_a_dialect_the_provider_does_not_serve_is_refused(gw: Gateway) -> None:
    messages_call = await create(
        gw,
        original_span_id="elsewhere",
        original_trace_id="t",
        operation="messages",
        original_request={"model": "anthropic/claude-3-5-haiku", "max_tokens": 9, "messages": []},
        modified_request={
            "model": "openai/gpt-4o-mini",
            "max_tokens": 9,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    completions_call = await create(
        gw,
        original_span_id="elsewhere",
        original_trace_id="t",
        operation="completions",
        original_request={"model": "anthropic/claude-3-5-haiku", "prompt": "Say hi"},
    )
    for exp in (messages_call, completions_call):
        r = await gw.client.post(f"/experiments/{exp['id']}/run")
        assert r.status_code == 400, r.text
        assert error_of(r)["param"] == "model"
        assert (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"] == []
    assert gw.upstream.requests == []


async def test_model_comparison_gpt_to_claude(make_gateway: GatewayFactory) -> None:
    """The seed's example 3: a GPT call replayed on Claude (OpenAI chat translated to
    the Messages API by the pipeline), then compared."""
    claude = MockAnthropic()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "anthropic.test":
            return claude.httpx_handler(request)
        return scripted(request)

    gw = await make_gateway(FakeUpstream(handler=handler))
    original = await capture(gw)
    exp = await create(
        gw,
        original_span_id=original["span_id"],
        model_parameters={"model": "anthropic/claude-3-5-sonnet-latest", "max_tokens": 200},
    )
    r = await gw.client.post(
        f"/experiments/{exp['id']}/run?stream=true",
        headers={"authorization": "Bearer sk-ant-replay-key"},
    )
    events = sse_events(r.text)
    assert events[-1][0] == "done", events[-1]
    done = events[-1][1]
    text = "".join(data["content"] for name, data in events if name == "delta")
    assert text and text == done["output_text"]
    assert claude.last.path == "/v1/messages"
    assert claude.last.headers["x-api-key"] == "sk-ant-replay-key"
    assert claude.last.body["model"] == "claude-3-5-sonnet-latest"
    cmp = (await gw.client.get(f"/experiments/{exp['id']}/compare")).json()
    assert cmp["model"]["changed"] is True

    # And the other way: an experiment on the Claude result replays on Claude.
    back = await create(gw, original_span_id=done["result_span_id"])
    assert back["original_request"]["model"] == "anthropic/claude-3-5-sonnet-latest"
    again = await run(gw, back["id"], authorization="Bearer sk-ant-replay-key")
    assert again["status"] == "completed" and claude.last.body["model"] == (
        "claude-3-5-sonnet-latest"
    )
    assert cmp["original"]["provider"] == "openai" and cmp["result"]["provider"] == "anthropic"
    result = await gw.span(done["result_span_id"])
    assert cmp["metrics"]["completion_tokens"]["result"] == result["usage"]["completion_tokens"]
    assert result["usage"]["completion_tokens"] and result["cost_usd"]


async def test_replays_never_send_redacted_credentials(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await make_gateway(FakeUpstream(handler=scripted))
    original = await capture(gw, authorization="Bearer sk-original-client-key")
    assert original["request_headers"]["authorization"] == "[REDACTED]"
    exp = await create(gw, original_span_id=original["span_id"])
    calls = len(gw.upstream.requests)
    r = await gw.client.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == 400
    error = error_of(r)
    assert error["code"] == "missing_credential"
    assert "authorization" in error["message"] and "--api-key" in error["message"]
    assert len(gw.upstream.requests) == calls
    assert (await gw.client.get(f"/experiments/{exp['id']}")).json()["status"] == "draft"

    done = await run(gw, exp["id"], authorization="Bearer sk-replay-caller-key")
    assert done["status"] == "completed"
    assert gw.upstream.last.headers["authorization"] == "Bearer sk-replay-caller-key"
    result = await gw.span(done["result_span_id"])
    assert result["request_headers"]["authorization"] == "[REDACTED]"

    # A provider with a configured key: that key goes, whatever the caller sends.
    monkeypatch.setenv("SPANLAB_TEST_KEY", "sk-configured-provider-key")
    keyed = await make_gateway(
        FakeUpstream(handler=scripted),
        db=str(gw.state.settings.db) + ".keyed",
        providers={
            "openai": {
                "kind": "openai",
                "base_url": "http://upstream.test/v1",
                "api_key_env": "SPANLAB_TEST_KEY",
            }
        },
    )
    original = await capture(keyed)
    exp = await create(keyed, original_span_id=original["span_id"])
    await run(keyed, exp["id"])
    assert keyed.upstream.last.headers["authorization"] == "Bearer sk-configured-provider-key"
    await run(keyed, exp["id"], authorization="Bearer sk-other")
    assert keyed.upstream.last.headers["authorization"] == "Bearer sk-configured-provider-key"
    monkeypatch.delenv("SPANLAB_TEST_KEY")
    r = await keyed.client.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == 400 and "SPANLAB_TEST_KEY" in error_of(r)["message"]


async def test_a_running_experiment_refuses_a_second_run(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(FakeUpstream(handler=slow_after_first(0.05)))
    original = await capture(gw, {**CHAT, "stream": True})
    exp = await create(gw, original_span_id=original["span_id"])
    handle = await gw.state.experiments.start_run(exp["id"])
    assert (await gw.client.get(f"/experiments/{exp['id']}")).json()["status"] == "running"
    r = await gw.client.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == 409 and error_of(r)["code"] == "experiment_running"
    r = await gw.client.put(f"/experiments/{exp['id']}", json={"status": "draft"})
    assert r.status_code == 409
    r = await gw.client.get(f"/experiments/{exp['id']}/compare")
    assert r.status_code == 409
    # Edits other than status are fine meanwhile; the run keeps what it started with.
    r = await gw.client.put(f"/experiments/{exp['id']}", json={"name": "meanwhile"})
    assert r.status_code == 200
    done = await handle.task
    assert done["status"] == "completed"
    after = (await gw.client.get(f"/experiments/{exp['id']}")).json()
    assert after["status"] == "completed" and after["name"] == "meanwhile"


async def test_a_caller_going_away_does_not_cut_the_run_short(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(FakeUpstream(handler=slow_after_first(0.02)))
    original = await capture(gw, {**CHAT, "stream": True})
    exp = await create(gw, original_span_id=original["span_id"])
    first_delta = asyncio.Event()

    async def on_delta(text: str) -> None:
        first_delta.set()

    caller = asyncio.create_task(gw.state.experiments.run(exp["id"], on_delta=on_delta))
    await asyncio.wait_for(first_delta.wait(), 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(200):
        status = (await gw.client.get(f"/experiments/{exp['id']}")).json()["status"]
        if status != "running":
            break
        await asyncio.sleep(0.02)
    assert status == "completed"
    (only,) = (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"]
    assert only["output_text"] == compose(gw.upstream.bodies[-1])["content"]


async def test_shutdown_records_runs_in_flight_as_interrupted(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(FakeUpstream(handler=slow_after_first(0.5)))
    original = await capture(gw, {**CHAT, "stream": True})
    exp = await create(gw, original_span_id=original["span_id"])
    handle = await gw.state.experiments.start_run(exp["id"])
    await asyncio.sleep(0.05)
    await gw.state.experiments.close(grace_s=0.01)
    assert handle.task.cancelled() or isinstance(handle.task.exception(), BaseException)
    after = (await gw.client.get(f"/experiments/{exp['id']}")).json()
    assert after["status"] == "failed" and after["error"]["code"] == "run_interrupted"
    (only,) = (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"]
    assert only["status"] == "failed" and only["ended_at"] is not None
    assert after["result_span_id"] == only["result_span_id"]
    result = await gw.span(only["result_span_id"])
    assert result["status"] == "interrupted" and result["label"] == "experiment"


async def test_runs_left_running_by_a_stopped_gateway_are_failed(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(FakeUpstream(handler=scripted))
    original = await capture(gw)
    exp = await create(gw, original_span_id=original["span_id"])
    store = gw.state.stores.experiments
    assert isinstance(store, SqlExperimentStore)
    ancient = "2000-01-01T00:00:00.000000Z"
    await store.start_experiment_run(
        {
            "id": "exprun_orphan",
            "experiment_id": exp["id"],
            "status": "running",
            "request": CHAT,
            "started_at": ancient,
        },
        stale_before=ancient,
    )
    assert (await gw.client.get(f"/experiments/{exp['id']}")).json()["status"] == "running"
    done = await run(gw, exp["id"])  # the stale run is failed, the new one goes
    assert done["status"] == "completed"
    runs = {
        r["id"]: r for r in (await gw.client.get(f"/experiments/{exp['id']}/runs")).json()["data"]
    }
    assert runs["exprun_orphan"]["status"] == "failed"
    assert runs["exprun_orphan"]["error"]["code"] == "run_interrupted"

    # And at start: a new gateway on this database fails what was left running.
    await store.start_experiment_run(
        {
            "id": "exprun_orphan2",
            "experiment_id": exp["id"],
            "status": "running",
            "request": CHAT,
            "started_at": ancient,
        },
        stale_before=ancient,
    )
    assert await gw.state.experiments.recover() == 1
    assert (await gw.client.get(f"/experiments/{exp['id']}")).json()["status"] == "failed"
    assert now_iso() > ancient


async def test_anthropic_messages_experiments_replay_in_their_dialect(
    make_gateway: GatewayFactory,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        text = f"claude says {body.get('temperature')}"
        if body.get("stream"):
            events = [
                {
                    "type": "message_start",
                    "message": {
                        "id": "m",
                        "model": body["model"],
                        "usage": {"input_tokens": 9, "output_tokens": 1},
                    },
                },
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 3},
                },
                {"type": "message_stop"},
            ]
            raw = [
                b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
                for e in events
            ]
            return stream_response(raw)
        return httpx.Response(
            200,
            json={
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 9, "output_tokens": 3},
            },
        )

    gw = await make_gateway(FakeUpstream(handler=handler))
    r = await gw.client.post(
        "/v1/messages",
        json={
            "model": "anthropic/claude-3-5-haiku",
            "max_tokens": 64,
            "system": "Be brief",
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers={"x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 200, r.text
    original = await gw.span(r.headers["x-spanlab-span-id"])
    exp = await create(
        gw, original_span_id=original["span_id"], model_parameters={"temperature": 0.3}
    )
    assert exp["operation"] == "messages"
    assert exp["headers"] == {"anthropic-version": "2023-06-01"}
    r = await gw.client.post(
        f"/experiments/{exp['id']}/run?stream=true", headers={"x-api-key": "sk-ant-replay"}
    )
    events = sse_events(r.text)
    assert [n for n, _ in events] == ["start", "delta", "done"]
    assert events[1][1] == {"content": "claude says 0.3"}
    assert gw.upstream.last.url.path == "/v1/messages"
    assert gw.upstream.last.headers["x-api-key"] == "sk-ant-replay"
    assert gw.upstream.last.headers["anthropic-version"] == "2023-06-01"
    result = await gw.span(events[-1][1]["result_span_id"])
    assert result["operation"] == "messages" and result["output_text"] == "claude says 0.3"
