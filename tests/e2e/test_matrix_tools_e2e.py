"""Real traffic replayed through an override variant, tools and all: an app (the
official ``openai`` SDK) makes 20 chat calls with tools through a real ``spanlab
serve`` to the scripted loopback upstream (some answered by tool calls, some
conversations holding an assistant's tool calls and the tools' results); a dataset is
built from their spans with a filter; a matrix experiment takes it as its inputs and an
override variant changes the model and the temperature. The upstream must receive, for
each of the 20 cells, the app's own request (messages, tools, tool_choice...) with only
the variant's changes, and each cell must record the tool calls it was answered with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI

from tests.e2e.experiments_support import spanlab_serve
from tests.e2e.test_matrix_e2e import post, wait_done
from tests.experiments_upstream import ScriptedUpstream, serve_in_thread

pytestmark = pytest.mark.e2e

THREAD = "checkout-app"


def tool(name: str, description: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in properties.items()},
                "required": list(properties),
            },
        },
    }


TOOLS: Any = [
    tool("lookup_order", "Find an order by its number", order_id="string"),
    tool("refund", "Refund part of an order", order_id="string", amount="number"),
    tool("search_docs", "Search the help centre", query="string", limit="integer"),
]


def conversation(i: int) -> tuple[list[Any], dict[str, Any]]:
    """The messages and the other options of the app's call number ``i``."""
    user = {"role": "user", "content": f"Order {1000 + i}: where is it? (case {i})"}
    options: dict[str, Any] = {}
    if i % 4 == 0:  # a question: answered by a tool call
        return [user], options
    if i % 4 == 1:  # the tool was called and answered: the model answers in text
        call = {
            "id": f"call_app_{i}",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": f'{{"order_id": "{1000 + i}"}}'},
        }
        return [
            {"role": "system", "content": "You are the shop's support agent."},
            user,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_app_{i}", "content": '{"status": "shipped"}'},
        ], {"temperature": 0.9}
    if i % 4 == 2:  # tools offered, none allowed: text
        return [user], {"tool_choice": "none", "max_tokens": 200}
    # streamed, a forced tool and a seed
    forced = {"type": "function", "function": {"name": "lookup_order"}}
    return [user], {"stream": True, "tool_choice": forced, "seed": 7}


def case_of(body: dict[str, Any]) -> str:
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    assert isinstance(user, str)
    return user


def test_twenty_captured_calls_with_tools_replayed_through_an_override_variant(
    tmp_path: Path,
) -> None:
    upstream = ScriptedUpstream()
    with (
        serve_in_thread(upstream) as url,
        spanlab_serve(tmp_path, url) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        app = OpenAI(base_url=f"{served.url}/v1", api_key="sk-app-test", max_retries=0)
        answered_by_tools = 0
        for i in range(20):
            messages, options = conversation(i)
            headers = {"x-thread-id": THREAD}
            if options.pop("stream", False):
                stream = app.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    tools=TOOLS,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                    **options,
                )
                calls = [
                    c for chunk in stream for ch in chunk.choices for c in ch.delta.tool_calls or []
                ]
                answered_by_tools += bool(calls)
            else:
                answer = app.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    tools=TOOLS,
                    extra_headers=headers,
                    **options,
                )
                answered_by_tools += bool(answer.choices[0].message.tool_calls)
        # Noise the dataset's filter must leave out: another thread's call.
        app.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "not this one"}],
            tools=TOOLS,
            extra_headers={"x-thread-id": "other-app"},
        )
        assert answered_by_tools == 10  # cases 0 and 3 of every four
        served.wait_spans(20, thread=THREAD)
        originals = {case_of(r["body"]): r["body"] for r in upstream.requests[:20]}
        assert len(originals) == 20
        sent_by_app = len(upstream.requests)

        dataset = post(http, "/datasets", {"name": "checkout traffic"}, 201)["id"]
        r = http.post(f"/datasets/{dataset}/items/from-spans", params={"thread": THREAD}, json={})
        assert r.status_code == 201, r.text
        assert (r.json()["matched"], r.json()["added"]) == (20, 20)

        eid = post(http, "/experiments", {"name": "checkout on gpt-4.1"}, 201)["id"]
        variant = post(
            http,
            f"/experiments/{eid}/variants",
            {
                "name": "gpt-4.1 cooler",
                "kind": "override",
                "config": {"model": "gpt-4.1", "temperature": 0.2},
            },
            201,
        )["variant"]
        inputs = post(http, f"/experiments/{eid}/inputs", {"datasetId": dataset}, 201)["inputs"]
        assert len(inputs) == 20
        started = post(http, f"/experiments/{eid}/run", {"concurrency": 4}, 202)
        assert started["cells"] == 20
        progress = wait_done(http, eid)
        assert (progress["completed"], progress["failed"], progress["total"]) == (20, 0, 20)

        # What reached the upstream: each app request, changed only where the variant said.
        replayed = [r["body"] for r in upstream.requests[sent_by_app:]]
        assert len(replayed) == 20
        assert sorted(case_of(b) for b in replayed) == sorted(originals)
        for body in replayed:
            original = originals[case_of(body)]
            assert original["tools"] == TOOLS
            expected = {**original, "model": "gpt-4.1", "temperature": 0.2}
            assert orjson.dumps(body, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
                expected, option=orjson.OPT_SORT_KEYS
            )

        # Each cell records its answer: the tool calls, or the text.
        cells = http.get(f"/experiments/{eid}").json()["runs"]
        cells = [c for c in cells if c.get("matrix_run_id") == started["run_id"]]
        assert len(cells) == 20 and {c["variant_id"] for c in cells} == {variant["id"]}
        by_input = {i["id"]: i for i in inputs}
        tool_cells = 0
        for cell in cells:
            sent = originals[case_of(cell["request"])]
            assert cell["request"] == {**sent, "model": "gpt-4.1", "temperature": 0.2}
            last = sent["messages"][-1]["role"]
            if sent.get("tool_choice") == "none" or last == "tool":
                assert cell["tool_calls"] is None
                assert cell["output_text"].startswith("Answer: Order ")
                assert "(model gpt-4.1, temperature 0.2)" in cell["output_text"]
                continue
            tool_cells += 1
            arguments = orjson.dumps({"query": case_of(sent), "precise": True}).decode()
            assert cell["tool_calls"] == [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": arguments},
                }
            ]
            # The input's expected output is what the app was answered (at 0.9 / 1.0).
            expected = by_input[cell["input_id"]]["expected_output"]
            assert expected["tool_calls"][0]["function"]["name"] == "lookup_order"
        assert tool_cells == 10
