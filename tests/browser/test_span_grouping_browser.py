"""A span carrying every grouping header, opened in a real browser: the page shows each
(x-tags as k=v), both as a page of its own and in the traces drawer. The page used to
go blank on `x-tags` (the API gives an object; the UI joined it as a list)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from openai import OpenAI

from tests.browser.conftest import Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

TRACE_ID = uuid.uuid4().hex
PARENT_ID = uuid.uuid4().hex[:16]
HEADERS = {
    "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
    "x-thread-id": "thread-grouping",
    "x-run-id": "run-grouping-7",
    "x-label": "grouping-label",
    "x-tags": "env=prod&team=core",
    "x-project-id": "project-grouping",
}


def grouped_call(server: Server) -> str:
    api = OpenAI(base_url=server.url + "/v1", api_key="sk-test-not-a-secret", max_retries=0)
    raw = api.chat.completions.with_raw_response.create(
        model="fake-small",
        messages=[{"role": "user", "content": "Every grouping header"}],
        extra_headers=HEADERS,
    )
    return server.wait_span(raw.headers["x-spanlab-span-id"])


def identifiers(page: Any) -> dict[str, str]:
    """The Identifiers section of the span detail, label -> text."""
    section = page.locator("section.section").filter(
        has=page.get_by_role("heading", name="Identifiers")
    )
    rows = section.locator(".kv-row")
    return {
        rows.nth(i).locator("dt").inner_text(): rows.nth(i).locator("dd").inner_text()
        for i in range(rows.count())
    }


def check(page: Any, span_id: str) -> None:
    page.get_by_test_id("span-tags").wait_for(timeout=10_000)
    shown = identifiers(page)
    assert shown["span"] == span_id
    assert shown["trace"] == TRACE_ID
    assert shown["parent"] == PARENT_ID
    assert shown["thread"] == "thread-grouping"
    assert shown["run"] == "run-grouping-7"
    assert shown["label"] == "grouping-label"
    assert shown["project"] == "project-grouping"
    assert shown["tags"] == "env=prod, team=core"
    assert page.get_by_test_id("error-card").count() == 0
    assert not page.errors, page.errors


def test_a_span_with_every_grouping_header_renders(server: Server, page: Any) -> None:
    span_id = grouped_call(server)
    stored = server.get(f"/spans/{span_id}").json()
    assert stored["tags"] == {"env": "prod", "team": "core"}  # an object, not a list

    page.goto(f"{server.url}/ui/spans/{span_id}")
    check(page, span_id)
    screenshot(page, "09-span-grouping")

    page.goto(f"{server.url}/ui/?thread=thread-grouping&span={span_id}")
    check(page, span_id)
