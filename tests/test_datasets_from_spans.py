"""Dataset items from captured calls, in process: GET /spans's filters, a seeded random
sample, an explicit selection, tools kept intact, tool calls as the expected output,
and no secret carried over."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from gateway.datasets.from_spans import item_from_span, tool_calls
from tests.conftest import Gateway, GatewayFactory
from tests.fakes import FakeUpstream, chat_chunks, chat_completion, sse, stream_response

Json = dict[str, Any]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
CLIENT_KEY = "sk-client-datasets-canary-5f0e1d2c3b4a"


def answer(request: httpx.Request) -> httpx.Response:
    """A tool call when the request offers tools, else text naming the question."""
    if request.method == "GET":
        return httpx.Response(
            200, json={"object": "list", "data": [{"id": "m", "object": "model"}]}
        )
    body = orjson.loads(request.content)
    question = body["messages"][-1]["content"]
    if body.get("tools"):
        if body.get("stream"):
            base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
            chunks = [
                {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **CALL}]}}],
                },
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            ]
            return stream_response(sse(chunks))
        return httpx.Response(
            200, json=chat_completion(tool_calls=[CALL], finish_reason="tool_calls")
        )
    if body.get("stream"):
        return stream_response(sse(chat_chunks([f"re: {question}"])))
    return httpx.Response(200, json=chat_completion(f"re: {question}"))


async def call(
    gateway: Gateway, question: str, *, thread: str, model: str = "gpt-4o-mini", **extra: Any
) -> str:
    r = await gateway.client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": question}], **extra},
        headers={"x-thread-id": thread, "authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert r.status_code == 200, r.text
    return r.headers["x-spanlab-span-id"]


@pytest.fixture
async def world(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=answer))
    return gateway


async def new_dataset(gateway: Gateway, name: str = "from traffic") -> str:
    r = await gateway.client.post("/datasets", json={"name": name})
    assert r.status_code == 201, r.text
    dataset_id: str = r.json()["id"]
    return dataset_id


async def from_spans(
    gateway: Gateway, dataset_id: str, params: Json | None = None, **body: Any
) -> httpx.Response:
    return await gateway.client.post(
        f"/datasets/{dataset_id}/items/from-spans", params=params or {}, json=body
    )


async def test_a_span_with_tool_calls_keeps_its_tools_and_expects_its_tool_calls(
    world: Gateway,
) -> None:
    plain = await call(world, "hello", thread="t1")
    tooled = await call(world, "weather in Paris?", thread="t1", tools=TOOLS, tool_choice="auto")
    streamed = await call(world, "weather, streamed", thread="t1", tools=TOOLS, stream=True)
    await call(world, "elsewhere", thread="t2")
    dataset_id = await new_dataset(world)
    r = await from_spans(world, dataset_id, {"thread": "t1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["matched"], body["added"], body["version"], body["skipped"]) == (3, 3, 2, [])
    by_key = {item["key"]: item for item in body["data"]}
    assert list(by_key) == [plain, tooled, streamed]  # oldest first

    for span_id in (tooled, streamed):
        item = by_key[span_id]
        stored = await world.span(span_id)
        assert item["source_span_id"] == span_id
        assert item["operation"] == "chat"
        assert item["request"] == stored["request"]
        assert item["request"]["tools"] == TOOLS  # intact
        assert item["variables"] is None
        [expected_call] = item["expected_output"]["tool_calls"]
        assert expected_call["function"] == CALL["function"]
        assert expected_call["id"] == "call_1"
        assert item["metadata"]["span"]["thread_id"] == "t1"
        assert item["metadata"]["span"]["finish_reason"] == "tool_calls"
    assert by_key[tooled]["request"]["tool_choice"] == "auto"
    assert by_key[plain]["expected_output"] == "re: hello"
    assert by_key[plain]["metadata"]["span"]["usage"]["total_tokens"] == 15

    # The same spans again: already in the dataset, no new version.
    again = await from_spans(world, dataset_id, {"thread": "t1"})
    assert again.status_code == 201
    assert (again.json()["added"], again.json()["version"]) == (0, 2)
    assert {s["reason"] for s in again.json()["skipped"]} == {"already in the dataset"}


async def test_the_filters_are_those_of_get_spans(world: Gateway) -> None:
    await call(world, "a", thread="f", model="gpt-4o-mini")
    other = await call(world, "b", thread="f", model="local/llama")
    await call(world, "c", thread="g", model="local/llama")
    dataset_id = await new_dataset(world)
    r = await from_spans(world, dataset_id, {"thread": "f", "model": "local/llama"})
    spans = (
        await world.client.get("/spans", params={"thread": "f", "model": "local/llama"})
    ).json()
    assert [i["key"] for i in r.json()["data"]] == [s["span_id"] for s in spans["data"]]
    assert [i["key"] for i in r.json()["data"]] == [other]
    r = await from_spans(world, await new_dataset(world, "q"), {"q": "re: c"})
    assert [i["request"]["messages"][0]["content"] for i in r.json()["data"]] == ["c"]
    r = await from_spans(world, dataset_id, {"status": "bogus"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "status"
    r = await from_spans(world, dataset_id, {"since": "yesterday"})
    assert r.status_code == 400


async def test_a_sample_is_random_its_size_and_the_same_for_the_same_seed(
    world: Gateway,
) -> None:
    ids = [await call(world, f"q{i}", thread="s") for i in range(12)]
    picks = []
    for seed in (7, 7, 8):
        dataset_id = await new_dataset(world, f"sample {len(picks)}")
        r = await from_spans(world, dataset_id, {"thread": "s"}, sample=5, seed=seed)
        assert r.status_code == 201, r.text
        assert (r.json()["matched"], r.json()["added"]) == (12, 5)
        keys = [item["key"] for item in r.json()["data"]]
        assert set(keys) <= set(ids)
        assert keys == [i for i in ids if i in keys]  # in the order of the calls
        picks.append(keys)
    assert picks[0] == picks[1]
    assert picks[0] != picks[2]
    everything = await new_dataset(world, "all")
    r = await from_spans(world, everything, {"thread": "s"}, sample=50)
    assert r.json()["added"] == 12
    for bad in (0, -1, "3", True, 10_001):
        r = await from_spans(world, everything, {"thread": "s"}, sample=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["param"] == "sample"


async def test_selected_span_ids_become_items(world: Gateway) -> None:
    a = await call(world, "a", thread="sel")
    await call(world, "b", thread="sel")
    c = await call(world, "c", thread="sel")
    dataset_id = await new_dataset(world)
    r = await from_spans(world, dataset_id, spanIds=[c, a, c])
    assert r.status_code == 201, r.text
    assert [i["key"] for i in r.json()["data"]] == [c, a]
    r = await from_spans(world, dataset_id, {"thread": "sel"}, span_ids=[a])
    assert r.status_code == 422
    r = await from_spans(world, dataset_id, span_ids=["0" * 16])
    assert r.status_code == 404 and r.json()["error"]["param"] == "span_ids"
    r = await from_spans(world, dataset_id, span_ids=[])
    assert r.status_code == 422
    r = await from_spans(world, dataset_id, colour="red")
    assert r.status_code == 422
    versions = (await world.client.get(f"/datasets/{dataset_id}/versions")).json()["data"]
    assert [v["action"] for v in versions] == ["from_spans", "created"]


async def test_a_call_that_is_no_model_call_is_skipped_with_its_reason(world: Gateway) -> None:
    r = await world.client.get("/v1/models", headers={"x-thread-id": "mixed"})
    assert r.status_code == 200
    kept = await call(world, "q", thread="mixed")
    dataset_id = await new_dataset(world)
    r = await from_spans(world, dataset_id, {"thread": "mixed"})
    assert r.status_code == 201, r.text
    assert [i["key"] for i in r.json()["data"]] == [kept]
    [skipped] = r.json()["skipped"]
    assert "not a model call" in skipped["reason"]


async def test_a_dataset_from_spans_holds_no_client_key(world: Gateway) -> None:
    await call(world, "secret?", thread="keys", api_key=CLIENT_KEY)
    dataset_id = await new_dataset(world)
    r = await from_spans(world, dataset_id, {"thread": "keys"})
    assert r.status_code == 201, r.text
    [item] = r.json()["data"]
    assert item["request"]["api_key"] == "[REDACTED]"
    exported = await world.client.get(f"/datasets/{dataset_id}/export")
    assert CLIENT_KEY not in exported.text
    rows = await world.state.stores.database.fetch(  # type: ignore[attr-defined]
        "SELECT * FROM dataset_items"
    )
    assert rows and CLIENT_KEY not in repr([tuple(row) for row in rows])


def test_tool_calls_of_every_dialect_come_out_in_the_openai_chat_shape() -> None:
    anthropic = {
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ]
    }
    responses = {
        "output": [
            {"type": "function_call", "call_id": "fc_1", "name": "get_weather", "arguments": "{}"}
        ]
    }
    assert tool_calls(anthropic) == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert tool_calls(responses)[0]["function"] == {"name": "get_weather", "arguments": "{}"}
    assert tool_calls({"choices": [{"message": {"content": "hi"}}]}) == []
    span = {
        "span_id": "s1",
        "operation": "messages",
        "request": {"model": "claude", "messages": [], "tools": [{"name": "get_weather"}]},
        "response": anthropic,
        "output_text": "Let me look.",
    }
    item = item_from_span(span)
    assert item.operation == "messages"
    assert item.expected_output["content"] == "Let me look."
    assert item.request == span["request"]


async def test_too_many_matching_spans_without_a_sample_is_a_422(
    world: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.datasets import service

    monkeypatch.setattr(service, "MAX_ITEMS_PER_CALL", 2)
    for i in range(3):
        await call(world, f"q{i}", thread="many")
    dataset_id = await new_dataset(world)
    r = await from_spans(world, dataset_id, {"thread": "many"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_spans"
    r = await from_spans(world, dataset_id, {"thread": "many"}, sample=2, seed=1)
    assert r.status_code == 201 and r.json()["added"] == 2
