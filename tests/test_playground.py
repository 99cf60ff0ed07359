"""The playground (issue 12): ``POST /playground/complete`` through the proxy
pipeline, one model or several side by side, streamed or not, multi-turn sessions,
captured as ``playground`` spans in the session's thread, the ``playground.completion``
event, the Prometheus metrics, refusals that write nothing, and "save as experiment"."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from gateway.capture.origin import PLAYGROUND_ATTRIBUTE, origin_from_json, span_origin
from gateway.playground.service import ATTR_MODEL
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import error_of, sse_events
from tests.fakes import FakeUpstream, chat_chunks, chat_completion, sse, stream_response
from tests.sql_helpers import make_gateway_on_each_backend

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL


def answers_by_model(request: httpx.Request) -> httpx.Response:
    """A chat answer naming the model asked (streamed in pieces, slowly, if asked)."""
    body = orjson.loads(request.content)
    model = body["model"]
    if body.get("stream"):
        pieces = [f"{model}:", "one ", "two ", "three"]
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        return stream_response(sse(chat_chunks(pieces, model=model, usage=usage)), delay=0.01)
    return httpx.Response(200, json=chat_completion(f"answer from {model}", model=model))


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=answers_by_model))
    return gateway


async def complete(gw: Gateway, **body: Any) -> dict[str, Any]:
    r = await gw.client.post("/playground/complete", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def rows(gw: Gateway, table: str) -> int:
    found = await gw.state.stores.database.fetch(f"SELECT COUNT(*) AS n FROM {table}")  # type: ignore[attr-defined]
    return int(found[0]["n"])


async def test_the_seeds_body_answers_the_seeds_shape_and_ours(gw: Gateway) -> None:
    data = await complete(
        gw,
        modelProvider="openai",
        modelName="gpt-4o-mini",
        prompt="What is 2+2?",
        systemPrompt="Be brief.",
        temperature=0.3,
        topP=0.9,
        maxTokens=50,
    )
    assert data["output"] == "answer from gpt-4o-mini"
    assert data["sessionId"] == data["session_id"]
    assert data["latencyMs"] == data["outputs"][0]["latency_ms"] >= 0
    [out] = data["outputs"]
    assert out["model"] == "openai/gpt-4o-mini"
    assert out["usage"]["prompt_tokens"] == 12 and out["usage"]["completion_tokens"] == 3
    assert out["error"] is None and out["span_id"]
    sent = gw.upstream.bodies[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.3, 0.9, 50)
    session = (await gw.client.get(f"/playground/sessions/{data['sessionId']}")).json()
    assert session["system_prompt"] == "Be brief."
    assert session["title"] == "What is 2+2?"
    assert session["config"]["models"] == [{"model": "gpt-4o-mini", "provider": "openai"}]
    assert [(m["role"], m["content"], m["model"], m["span_id"]) for m in session["messages"]] == [
        ("user", "What is 2+2?", None, None),
        ("assistant", "answer from gpt-4o-mini", "openai/gpt-4o-mini", out["span_id"]),
    ]


async def test_a_playground_call_is_a_span_of_origin_playground_in_the_sessions_thread(
    gw: Gateway,
) -> None:
    data = await complete(gw, model="gpt-4o-mini", prompt="hi", project_id="proj-a")
    span = await gw.span(data["outputs"][0]["span_id"])
    assert span["origin"] == "playground"
    assert span["label"] == "playground"
    assert span["thread_id"] == f"playground:{data['sessionId']}"
    assert span["project_id"] == "proj-a"
    assert span["attributes"]["spanlab.playground.session.id"] == data["sessionId"]
    assert span["request"]["messages"] == [{"role": "user", "content": "hi"}]
    listed = (await gw.client.get("/spans", params={"thread": span["thread_id"]})).json()
    assert [s["span_id"] for s in listed["data"]] == [span["span_id"]]


async def test_two_models_side_by_side_each_with_its_own_figures_and_span(gw: Gateway) -> None:
    data = await complete(gw, models=["gpt-4o-mini", "local/llama3"], prompt="Compare")
    outputs = data["outputs"]
    assert [o["model"] for o in outputs] == ["gpt-4o-mini", "local/llama3"]
    assert [o["output"] for o in outputs] == ["answer from gpt-4o-mini", "answer from llama3"]
    assert data["output"] == outputs[0]["output"]
    assert len({o["span_id"] for o in outputs}) == 2
    hosts = sorted(r.url.host for r in gw.upstream.requests)
    assert hosts == ["local.test", "upstream.test"]
    spans = [await gw.span(o["span_id"]) for o in outputs]
    assert {s["thread_id"] for s in spans} == {f"playground:{data['sessionId']}"}
    assert [s["provider"] for s in spans] == ["openai", "local"]
    session = (await gw.client.get(f"/playground/sessions/{data['sessionId']}")).json()
    assert [m["model"] for m in session["messages"]] == [None, "gpt-4o-mini", "local/llama3"]


async def test_two_models_streamed_concurrently_each_models_chunks_in_order(gw: Gateway) -> None:
    r = await gw.client.post(
        "/playground/complete",
        json={
            "models": ["gpt-4o-mini", {"model": "llama3", "provider": "local"}],
            "prompt": "Count",
            "stream": True,
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "end"
    assert events[0][1]["models"] == [
        {"index": 0, "model": "gpt-4o-mini"},
        {"index": 1, "model": "local/llama3"},
    ]
    deltas = [data for name, data in events if name == "delta"]
    # Both streams ran at once: their chunks interleave, not one model then the other.
    order = [d["index"] for d in deltas]
    assert order != sorted(order)
    done = {data["index"]: data for name, data in events if name == "done"}
    end = events[-1][1]
    for index, model in ((0, "gpt-4o-mini"), (1, "llama3")):
        text = "".join(d["content"] for d in deltas if d["index"] == index)
        assert text == f"{model}:one two three"
        assert done[index]["output"] == text == end["outputs"][index]["output"]
        assert done[index]["usage"]["completion_tokens"] == 4
        assert done[index]["ttft_ms"] is not None
        # A model's done event comes after each of its chunks.
        last_delta = max(
            i for i, (n, d) in enumerate(events) if n == "delta" and d["index"] == index
        )
        done_at = next(i for i, (n, d) in enumerate(events) if n == "done" and d["index"] == index)
        assert done_at > last_delta
    assert all(b["stream"] for b in gw.upstream.bodies)
    spans = [await gw.span(o["span_id"]) for o in end["outputs"]]
    assert [s["output_text"] for s in spans] == [
        "gpt-4o-mini:one two three",
        "llama3:one two three",
    ]
    assert all(s["origin"] == "playground" and s["stream"] for s in spans)


async def test_a_session_sends_its_history_each_model_its_own_answers(gw: Gateway) -> None:
    first = await complete(
        gw, models=["gpt-4o-mini", "local/llama3"], prompt="Hi", system_prompt="Sys"
    )
    sid = first["sessionId"]
    second = await complete(
        gw, sessionId=sid, models=["gpt-4o-mini", "local/llama3"], prompt="More"
    )
    assert second["sessionId"] == sid
    by_model = {b["model"]: b["messages"] for b in gw.upstream.bodies[2:]}
    assert by_model["gpt-4o-mini"] == [
        {"role": "system", "content": "Sys"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "answer from gpt-4o-mini"},
        {"role": "user", "content": "More"},
    ]
    assert by_model["llama3"][2] == {"role": "assistant", "content": "answer from llama3"}
    session = (await gw.client.get(f"/playground/sessions/{sid}")).json()
    assert [m["seq"] for m in session["messages"]] == [1, 2, 3, 4, 5, 6]
    assert [m["content"] for m in session["messages"] if m["role"] == "user"] == ["Hi", "More"]
    # messages instead of prompt: appended after the history.
    await complete(
        gw,
        session_id=sid,
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Last"}],
    )
    assert gw.upstream.bodies[-1]["messages"][-3:] == [
        {"role": "user", "content": "More"},
        {"role": "assistant", "content": "answer from gpt-4o-mini"},
        {"role": "user", "content": "Last"},
    ]


async def test_a_completion_is_an_event_row_an_events_message_and_metrics(gw: Gateway) -> None:
    listener = asyncio.create_task(gw.client.get("/events"))
    for _ in range(500):  # until the listener is subscribed
        if gw.state.events.listeners:
            break
        await asyncio.sleep(0.01)
    data = await complete(gw, models=["gpt-4o-mini", "local/llama3"], prompt="Hi")
    await gw.flush()
    gw.state.events.close()  # ends the /events stream, so its body can be read whole
    streamed = sse_events((await asyncio.wait_for(listener, 5)).text.split("\n\n", 1)[1])
    [event] = [e for n, e in streamed if n == "playground.completion"]
    assert event["subject_id"] == data["sessionId"]
    assert event["related_ids"] == [o["span_id"] for o in data["outputs"]]
    assert [o["model"] for o in event["payload"]["outputs"]] == ["gpt-4o-mini", "local/llama3"]
    assert {n for n, _ in streamed} == {"playground.completion", "span"}
    [row] = await gw.state.stores.events.list_events(type="playground.completion")
    assert row.as_dict() == event
    metrics = (await gw.client.get("/metrics")).text
    assert 'spanlab_playground_requests_total{model="gpt-4o-mini"} 1.0' in metrics
    assert 'spanlab_playground_requests_total{model="local/llama3"} 1.0' in metrics
    assert 'spanlab_playground_request_duration_seconds_count{model="local/llama3"} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"prompt": "hi"}, 422, "model"),
        ({"model": "gpt-4o-mini"}, 422, "prompt"),
        ({"model": "gpt-4o-mini", "prompt": "hi", "temperature": 2.5}, 422, "temperature"),
        ({"model": "gpt-4o-mini", "prompt": "hi", "topP": -0.1}, 422, "top_p"),
        ({"model": "gpt-4o-mini", "prompt": "hi", "maxTokens": 0}, 422, "max_tokens"),
        ({"model": "gpt-4o-mini", "prompt": "hi", "stream": "yes"}, 422, "stream"),
        ({"model": "gpt-4o-mini", "prompt": "hi", "colour": "red"}, 422, "colour"),
        ({"modelProvider": "nope", "modelName": "x", "prompt": "hi"}, 404, "model"),
        # One bad model of two refuses the whole request: the good one is not called.
        (
            {"models": ["gpt-4o-mini", {"model": "x", "provider": "nope"}], "prompt": "hi"},
            404,
            "model",
        ),
        ({"model": "gpt-4o-mini", "prompt": "hi", "sessionId": "pgs_none"}, 404, "session_id"),
    ],
)
async def test_a_refused_completion_is_a_4xx_and_writes_nothing(
    gw: Gateway, body: dict[str, Any], status: int, param: str
) -> None:
    r = await gw.client.post("/playground/complete", json=body)
    assert r.status_code == status, r.text
    assert error_of(r)["param"] == param
    await gw.flush()
    assert gw.upstream.requests == []
    for table in ("playground_sessions", "playground_messages", "events", "spans"):
        assert await rows(gw, table) == 0, table
    assert "spanlab_playground_requests_total{" not in (await gw.client.get("/metrics")).text


async def test_an_unrouted_model_is_refused_when_no_default_provider(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(default_provider="")
    r = await gw.client.post("/playground/complete", json={"model": "mystery", "prompt": "hi"})
    assert r.status_code == 404
    assert error_of(r)["type"] == "invalid_request_error"
    assert await rows(gw, "playground_sessions") == 0


async def test_an_upstream_error_is_that_models_error_the_other_still_answers(
    make_gateway: GatewayFactory,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "local.test":
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        return answers_by_model(request)

    gw = await make_gateway(FakeUpstream(handler=handler))
    data = await complete(gw, models=["gpt-4o-mini", "local/llama3"], prompt="hi")
    ok, failed = data["outputs"]
    assert ok["error"] is None and ok["output"] == "answer from gpt-4o-mini"
    assert failed["error"] is not None and failed["span_id"]
    session = (await gw.client.get(f"/playground/sessions/{data['sessionId']}")).json()
    # A failed answer is no turn of the conversation (its span is still captured).
    assert [m["model"] for m in session["messages"]] == [None, "gpt-4o-mini"]
    assert (await gw.span(failed["span_id"]))["http_status"] == 503


async def test_sessions_list_get_and_delete(gw: Gateway) -> None:
    a = await complete(gw, model="gpt-4o-mini", prompt="first", project_id="p1")
    b = await complete(gw, model="gpt-4o-mini", prompt="second")
    listed = (await gw.client.get("/playground/sessions")).json()
    assert [s["id"] for s in listed["data"]] == [b["sessionId"], a["sessionId"]]
    assert listed["data"][0]["message_count"] == 2
    only = (await gw.client.get("/playground/sessions", params={"project": "p1"})).json()
    assert [s["id"] for s in only["data"]] == [a["sessionId"]]
    r = await gw.client.delete(f"/playground/sessions/{a['sessionId']}")
    assert r.status_code == 204
    assert (await gw.client.get(f"/playground/sessions/{a['sessionId']}")).status_code == 404
    assert (await gw.client.delete(f"/playground/sessions/{a['sessionId']}")).status_code == 404
    assert await rows(gw, "playground_messages") == 2  # b's only
    await gw.flush()
    # The spans are captured calls like any other: they stay.
    assert (await gw.client.get(f"/spans/{a['outputs'][0]['span_id']}")).status_code == 200


async def test_save_as_experiment_makes_a_seed1_experiment_of_the_answers_span(
    gw: Gateway,
) -> None:
    data = await complete(gw, models=["gpt-4o-mini", "local/llama3"], prompt="Hello there")
    sid = data["sessionId"]
    llama = data["outputs"][1]
    r = await gw.client.post(
        f"/playground/sessions/{sid}/experiment", json={"spanId": llama["span_id"]}
    )
    assert r.status_code == 201, r.text
    experiment = r.json()
    assert experiment["original_span_id"] == llama["span_id"]
    assert experiment["name"] == "Playground: Hello there"
    assert experiment["original_request"]["model"] == "local/llama3"
    got = await gw.client.get(f"/experiments/{experiment['id']}")
    assert got.status_code == 200
    # Default: the latest answer.
    r = await gw.client.post(f"/playground/sessions/{sid}/experiment")
    assert r.status_code == 201
    assert r.json()["original_span_id"] in {o["span_id"] for o in data["outputs"]}
    run = await gw.client.post(f"/experiments/{experiment['id']}/run")
    assert run.status_code == 200 and run.json()["status"] == "completed"


async def test_save_as_experiment_errors(gw: Gateway) -> None:
    r = await gw.client.post("/playground/sessions/pgs_none/experiment")
    assert r.status_code == 404
    data = await complete(gw, model="gpt-4o-mini", prompt="hi")
    r = await gw.client.post(
        f"/playground/sessions/{data['sessionId']}/experiment", json={"span_id": "nope"}
    )
    assert r.status_code == 404 and error_of(r)["param"] == "span_id"
    r = await gw.client.post(
        f"/playground/sessions/{data['sessionId']}/experiment", json={"bogus": 1}
    )
    assert r.status_code == 422
    assert (await gw.client.get("/experiments")).json()["data"] == []


def test_the_playground_attribute_maps_to_origin_playground() -> None:
    assert span_origin({PLAYGROUND_ATTRIBUTE: "pgs_1", ATTR_MODEL: "m"}) == "playground"
    # A row written before the origin column (a spill file) is mapped the same way.
    assert origin_from_json(orjson.dumps({PLAYGROUND_ATTRIBUTE: "pgs_1"}).decode()) == "playground"
    assert span_origin({ATTR_MODEL: "m"}) == "app"
