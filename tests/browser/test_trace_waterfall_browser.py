"""An agent's nested calls (each sent with a `traceparent` naming the previous call's
span as its parent) shown in the span page and the traces drawer as a tree with
timings: rows indented by depth, bars offset and sized by start and duration."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from openai import OpenAI

from tests.browser.conftest import Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def nested_calls(server: Server) -> tuple[str, list[str]]:
    trace_id = uuid.uuid4().hex
    parent = uuid.uuid4().hex[:16]  # the agent's own root span: not a call through here
    api = OpenAI(base_url=server.url + "/v1", api_key="sk-test-not-a-secret", max_retries=0)
    span_ids: list[str] = []
    for i, stream in enumerate([False, True, False]):
        headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
        content = f"Step {i} of the agent"
        if stream:  # streamed word by word: a longer bar
            raw_stream = api.chat.completions.with_raw_response.create(
                model="fake-small",
                messages=[{"role": "user", "content": content}],
                stream=True,
                extra_headers=headers,
            )
            span_id = raw_stream.headers["x-spanlab-span-id"]
            for _ in raw_stream.parse():
                pass
        else:
            raw = api.chat.completions.with_raw_response.create(
                model="fake-small",
                messages=[{"role": "user", "content": content}],
                extra_headers=headers,
            )
            span_id = raw.headers["x-spanlab-span-id"]
        parent = server.wait_span(span_id)
        span_ids.append(span_id)
    return trace_id, span_ids


def bars(page: Any) -> list[dict[str, Any]]:
    rows = page.get_by_test_id("waterfall-row")
    rows.nth(2).wait_for(timeout=10_000)
    return [
        rows.nth(i).evaluate(
            """row => {
                const bar = row.querySelector('.wf-bar').getBoundingClientRect();
                const track = row.querySelector('.wf-track').getBoundingClientRect();
                const name = row.querySelector('.wf-name');
                return {id: row.dataset.spanId, depth: Number(row.dataset.depth),
                        left: (bar.left - track.left) / track.width, width: bar.width / track.width,
                        indent: parseFloat(getComputedStyle(name).paddingLeft)};
            }"""
        )
        for i in range(rows.count())
    ]


def test_nested_calls_show_as_a_waterfall(server: Server, page: Any) -> None:
    trace_id, span_ids = nested_calls(server)
    stored = server.get(f"/traces/{trace_id}").json()["spans"]
    assert [s["parent_span_id"] for s in stored][1:] == span_ids[:2]

    page.goto(f"{server.url}/ui/spans/{span_ids[2]}")
    shown = bars(page)
    assert [b["id"] for b in shown] == span_ids
    assert [b["depth"] for b in shown] == [0, 1, 2]
    assert shown[0]["indent"] < shown[1]["indent"] < shown[2]["indent"]
    # bars follow the calls in time, each where it started, the streamed one longest
    assert 0 <= shown[0]["left"] < shown[1]["left"] < shown[2]["left"] < 1
    assert all(b["width"] > 0 for b in shown)
    assert shown[1]["width"] > shown[0]["width"]
    assert shown[2]["left"] + shown[2]["width"] == pytest.approx(1, abs=0.02)
    current = page.locator("[data-testid=waterfall-row][aria-current=true]")
    assert current.get_attribute("data-span-id") == span_ids[2]
    screenshot(page, "trace-waterfall")

    # in the traces drawer: another span of the trace opens in the drawer
    page.goto(f"{server.url}/ui/?span={span_ids[2]}")
    bars(page)
    page.locator(f"[data-testid=waterfall-row][data-span-id='{span_ids[0]}'] a").click()
    page.wait_for_url(f"**/ui/?span={span_ids[0]}")
    page.locator(f"[data-testid=span-detail][data-span-id='{span_ids[0]}']").wait_for()
    assert not page.errors, page.errors
