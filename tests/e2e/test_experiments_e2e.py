"""Experiments end to end: a real ``spanlab serve`` process, a real upstream on
loopback, originals made by the official ``openai`` SDK (plain, streamed, tool
calling), replays over HTTP and through the ``spanlab`` CLI as a real process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI

from tests.e2e.experiments_support import Served, spanlab_serve
from tests.experiments_upstream import ScriptedUpstream, serve_in_thread

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-e2e-upstream-key-0123456789"
CLIENT_KEY = "sk-e2e-client-key-9876543210"
KEY_ENV = "E2E_EXPERIMENTS_UPSTREAM_KEY"
QUESTION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Name a prime number."},
]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a number up",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


class World:
    def __init__(self, served: Served, upstream: ScriptedUpstream) -> None:
        self.served = served
        self.upstream = upstream
        self.http = httpx.Client(base_url=served.url, timeout=30)
        self.sdk = OpenAI(
            base_url=f"{served.url}/v1",
            api_key=CLIENT_KEY,
            default_headers={"x-thread-id": "e2e-experiments"},
            max_retries=0,
        )

    def span(self, span_id: str) -> dict[str, Any]:
        """The stored span (the gateway stores in the background: wait for it)."""
        deadline = time.monotonic() + 10
        while True:
            r = self.http.get(f"/spans/{span_id}")
            if r.status_code == 200:
                data: dict[str, Any] = r.json()
                return data
            assert time.monotonic() < deadline, f"span {span_id} never stored"
            time.sleep(0.05)

    def experiment(self, **body: Any) -> dict[str, Any]:
        r = self.http.post("/experiments", json=body)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    upstream = ScriptedUpstream(key=UPSTREAM_KEY, chunk_delay=0.02)
    workdir = tmp_path_factory.mktemp("experiments-e2e")
    with (
        serve_in_thread(upstream) as upstream_url,
        spanlab_serve(
            workdir, upstream_url, api_key_env=KEY_ENV, **{KEY_ENV: UPSTREAM_KEY}
        ) as served,
    ):
        w = World(served, upstream)
        yield w
        w.http.close()
        w.sdk.close()


def check_comparison(world: World, comparison: dict[str, Any], original: str, result: str) -> None:
    """Every number of a comparison, against the two spans it compares."""
    a, b = world.span(original), world.span(result)
    fields = {
        "prompt_tokens": ("usage", "prompt_tokens"),
        "completion_tokens": ("usage", "completion_tokens"),
        "total_tokens": ("usage", "total_tokens"),
        "cost_usd": ("cost_usd",),
        "latency_ms": ("duration_ms",),
        "ttft_ms": ("ttft_ms",),
    }
    for name, path in fields.items():
        va: Any = a
        vb: Any = b
        for key in path:
            va, vb = va[key], vb[key]
        metric = comparison["metrics"][name]
        assert (metric["original"], metric["result"]) == (va, vb), name
        if va is None or vb is None:
            assert metric["delta"] is None, name
            continue
        assert metric["delta"] == pytest.approx(vb - va, abs=1e-9), name
        want = None if va == 0 else round((vb - va) / va * 100, 2)
        assert metric["percent_change"] == want, name
    assert comparison["output"]["original"] == a["output_text"]
    assert comparison["output"]["result"] == b["output_text"]
    assert comparison["finish_reason"]["original"] == a["finish_reason"]
    assert comparison["finish_reason"]["result"] == b["finish_reason"]


SEED_CURL_CREATE = """{
    "name": "Test Experiment",
    "original_span_id": "test_span",
    "original_trace_id": "test_trace",
    "original_request": {"model": "gpt-4", "messages": []},
    "modified_request": {"model": "gpt-4", "messages": []}
  }"""


def test_the_seed_curl_examples_against_a_real_server(world: World) -> None:
    r = world.http.post(
        "/experiments", content=SEED_CURL_CREATE, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "Test Experiment" and created["status"] == "draft"
    listed = world.http.get("/experiments").json()["data"]
    assert created["id"] in [e["id"] for e in listed]
    by_span = world.http.get("/experiments/by-span/test_span").json()
    assert [e["id"] for e in by_span["data"]] == [created["id"]]


def test_replay_of_a_plain_call(world: World) -> None:
    raw = world.sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=QUESTION,
        temperature=0.4,
    )
    original_id = raw.headers["x-spanlab-span-id"]
    completion = raw.parse()
    assert completion.choices[0].message.content.startswith("Answer:")
    original = world.span(original_id)
    assert original["request_headers"]["authorization"] == "[REDACTED]"

    exp = world.experiment(
        original_span_id=original_id,
        modified_request={
            **original["request"],
            "messages": [{"role": "system", "content": "Be {{style}}."}, QUESTION[1]],
        },
        prompt_variables={"style": "terse"},
        model_parameters={"temperature": 1.3, "model": "gpt-4o"},
    )
    before = len(world.upstream.requests)
    r = world.http.post(f"/experiments/{exp['id']}/run")
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "completed", run
    (sent,) = world.upstream.requests[before:]
    assert sent["body"]["messages"][0]["content"] == "Be terse."
    assert sent["body"]["model"] == "gpt-4o" and sent["body"]["temperature"] == 1.3
    # The gateway's configured key went upstream; the client's and placeholders never.
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    for request in world.upstream.requests:
        assert "[REDACTED]" not in orjson.dumps(request).decode()

    result = world.span(run["result_span_id"])
    assert result["label"] == "experiment" and result["thread_id"] == "e2e-experiments"
    assert result["trace_id"] != original["trace_id"]
    assert result["attributes"]["spanlab.experiment.id"] == exp["id"]
    assert result["attributes"]["spanlab.original_span.id"] == original_id
    assert result["links"] == [
        {
            "trace_id": original["trace_id"],
            "span_id": original_id,
            "attributes": {"spanlab.link.type": "replay_of", "spanlab.experiment.id": exp["id"]},
        }
    ]
    thread = world.http.get("/spans", params={"thread": "e2e-experiments", "label": "experiment"})
    assert run["result_span_id"] in [s["span_id"] for s in thread.json()["data"]]

    comparison = world.http.get(f"/experiments/{exp['id']}/compare").json()
    check_comparison(world, comparison, original_id, run["result_span_id"])
    assert comparison["output"]["result"].startswith("Briefly:")
    assert comparison["model"]["changed"] is True


def test_replay_of_a_streamed_call_streams_its_output(world: World) -> None:
    with world.sdk.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=QUESTION,
        stream=True,
    ) as response:
        original_id = response.headers["x-spanlab-span-id"]
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    original = world.span(original_id)
    assert original["stream"] is True and original["output_text"] == text

    exp = world.experiment(original_span_id=original_id, model_parameters={"temperature": 0.2})
    events: list[tuple[str, Any, float]] = []
    with world.http.stream("POST", f"/experiments/{exp['id']}/run", params={"stream": "true"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name or "message", orjson.loads(line[6:]), time.monotonic()))
    names = [e[0] for e in events]
    assert names[0] == "start" and names[-1] == "done"
    deltas = [e for e in events if e[0] == "delta"]
    assert len(deltas) >= 5
    # Live, not buffered: the deltas arrived spread over the upstream's pacing.
    assert deltas[-1][2] - deltas[0][2] > 0.04
    done = events[-1][1]
    assert "".join(d[1]["content"] for d in deltas) == done["output_text"]
    assert "temperature 0.2" in done["output_text"]
    comparison = world.http.get(f"/experiments/{exp['id']}/compare").json()
    check_comparison(world, comparison, original_id, done["result_span_id"])
    assert comparison["metrics"]["ttft_ms"]["original"] is not None
    assert comparison["metrics"]["ttft_ms"]["result"] is not None


def test_replay_of_a_tool_calling_call(world: World) -> None:
    raw = world.sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=QUESTION,
        tools=TOOLS,
        temperature=0.5,
    )
    original_id = raw.headers["x-spanlab-span-id"]
    call = raw.parse().choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    exp = world.experiment(original_span_id=original_id, model_parameters={"temperature": 1.5})
    run = world.http.post(f"/experiments/{exp['id']}/run").json()
    assert run["status"] == "completed"
    comparison = world.http.get(f"/experiments/{exp['id']}/compare").json()
    check_comparison(world, comparison, original_id, run["result_span_id"])
    tools = comparison["tool_calls"]
    assert tools["identical"] is False
    assert tools["pairs"][0]["name_changed"] is False
    assert tools["pairs"][0]["arguments_changes"] == [
        {"path": "precise", "op": "changed", "original": True, "result": False}
    ]
    assert comparison["finish_reason"] == {
        "original": "tool_calls",
        "result": "tool_calls",
        "changed": False,
    }


def test_the_cli_as_a_real_process(world: World, tmp_path: Path) -> None:
    raw = world.sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=QUESTION,
    )
    span_id = raw.headers["x-spanlab-span-id"]
    world.span(span_id)
    served = world.served

    remote = served.cli(
        "replay",
        span_id,
        "--url",
        served.url,
        "--set",
        "temperature=1.7",
        "--system",
        "Be terse.",
        "--json",
    )
    assert remote.returncode == 0, remote.stderr + remote.stdout
    out = orjson.loads(remote.stdout)
    assert out["run"]["status"] == "completed"
    assert out["comparison"]["output"]["result"].startswith("Briefly:")
    check_comparison(world, out["comparison"], span_id, out["run"]["result_span_id"])

    streamed = served.cli("replay", span_id, "--url", served.url, "--stream")
    assert streamed.returncode == 0, streamed.stderr
    assert "streaming replay" in streamed.stdout and "word diff" not in streamed.stdout
    assert "output identical" in streamed.stdout and "completion tokens" in streamed.stdout

    # In process, on the same database while the server runs (keys from this env).
    local = served.cli(
        "replay",
        span_id,
        "--config",
        str(served.config_path),
        "--db",
        str(served.db),
        "--set",
        "temperature=0.9",
        "--json",
        **{KEY_ENV: UPSTREAM_KEY},
    )
    assert local.returncode == 0, local.stderr + local.stdout
    local_run = orjson.loads(local.stdout)["run"]
    assert world.span(local_run["result_span_id"])["label"] == "experiment"  # server sees it

    listed = served.cli("experiments", "list", "--url", served.url, "--json")
    ids = [e["id"] for e in orjson.loads(listed.stdout)]
    assert ids[:3] == [
        orjson.loads(local.stdout)["experiment"]["id"],
        ids[1],
        out["experiment"]["id"],
    ]
    exported = tmp_path / "export.json"
    result = served.cli(
        "experiments", "export", out["experiment"]["id"], "--url", served.url, "-o", str(exported)
    )
    assert result.returncode == 0, result.stderr
    copy = served.cli(
        "experiments",
        "import",
        str(exported),
        "--on-conflict",
        "copy",
        "--url",
        served.url,
        "--json",
    )
    assert copy.returncode == 0, copy.stderr
    (copied,) = orjson.loads(copy.stdout)
    assert copied["modified_request"] == out["experiment"]["modified_request"]

    failed = served.cli("replay", "0000000000000000", "--url", served.url)
    assert failed.returncode == 1 and "No span" in failed.stderr
    down = served.cli("experiments", "list", "--url", "http://127.0.0.1:9", "--json")
    assert down.returncode == 1 and "Could not reach" in down.stderr
