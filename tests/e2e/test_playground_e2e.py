"""The playground end to end: a real ``spanlab serve`` and the loopback upstream, two
models side by side (one through a provider with its own key, one passing the call
through), streamed and not, a second turn with its history, the spans captured with
origin ``playground`` in the session's thread, and ``spanlab playground --url`` (a
real process) against the same gateway."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import PROVIDER_KEY, GatewayProcess
from tests.experiments_helpers import sse_events

pytestmark = pytest.mark.e2e

MODELS = ["gpt-4o-mini", "passthru/gpt-4o"]


def received_with(upstream: mock.MockUpstream, text: str) -> list[Any]:
    return [r for r in list(upstream.received) if r.body and text.encode() in r.body]


def test_two_models_streamed_then_a_second_turn_through_a_real_gateway(
    gateway: GatewayProcess, mock_upstream: mock.MockUpstream, test_id: str
) -> None:
    url = f"{gateway.base_url}/playground/complete"
    r = gateway.client.post(
        url, json={"models": MODELS, "prompt": f"Hello {test_id}", "systemPrompt": "Be kind"}
    )
    assert r.status_code == 200, r.text
    first = r.json()
    sid = first["sessionId"]
    assert [o["output"] for o in first["outputs"]] == [mock.CONTENT, mock.CONTENT]
    assert all(o["error"] is None and o["usage"]["total_tokens"] for o in first["outputs"])

    r = gateway.client.post(
        url, json={"models": MODELS, "prompt": f"Again {test_id}", "sessionId": sid, "stream": True}
    )
    assert r.status_code == 200, r.text
    events = sse_events(r.text)
    assert events[0][0] == "start" and events[-1][0] == "end"
    for index in (0, 1):
        text = "".join(d["content"] for n, d in events if n == "delta" and d["index"] == index)
        assert text == mock.CONTENT
    second = events[-1][1]

    sent = received_with(mock_upstream, f"Again {test_id}")
    assert sorted(orjson.loads(s.body)["model"] for s in sent) == ["gpt-4o", "gpt-4o-mini"]
    for request in sent:
        body = orjson.loads(request.body)
        assert body["stream"] is True
        assert body["messages"] == [
            {"role": "system", "content": "Be kind"},
            {"role": "user", "content": f"Hello {test_id}"},
            {"role": "assistant", "content": mock.CONTENT},
            {"role": "user", "content": f"Again {test_id}"},
        ]
    by_model = {orjson.loads(s.body)["model"]: s for s in sent}
    # The configured provider's own key went upstream; no key was stored anywhere.
    assert by_model["gpt-4o-mini"].header("authorization") == f"Bearer {PROVIDER_KEY}"

    spans = gateway.wait_spans(4, thread=f"playground:{sid}")
    assert {s["origin"] for s in spans} == {"playground"}
    ids = {o["span_id"] for o in first["outputs"] + second["outputs"]}
    assert {s["span_id"] for s in spans} == ids
    session = gateway.client.get(f"{gateway.base_url}/playground/sessions/{sid}").json()
    assert [m["role"] for m in session["messages"]] == ["user", "assistant", "assistant"] * 2
    metrics = gateway.client.get(f"{gateway.base_url}/metrics").text
    assert 'spanlab_playground_requests_total{model="passthru/gpt-4o"}' in metrics


def test_the_cli_against_a_running_gateway(gateway: GatewayProcess, test_id: str) -> None:
    done = gateway.cli(
        "playground",
        f"Hi {test_id}",
        *[a for m in MODELS for a in ("--model", m)],
        "--url",
        gateway.base_url,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert [o["model"] for o in result["outputs"]] == MODELS
    shown = gateway.cli(
        "playground",
        f"Hi {test_id}",
        "--model",
        "gpt-4o-mini",
        "--url",
        gateway.base_url,
        "--stream",
    )
    assert shown.returncode == 0, shown.stderr
    assert mock.CONTENT in shown.stdout and "latency" in shown.stdout
