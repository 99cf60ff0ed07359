"""Threads in a real browser: the list updates live as Traces does, and a thread opens
as a conversation (turns in order, each with its model, tokens, cost, latency and a
link to its span) at a URL that survives a reload, and grows live."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from openai import OpenAI

from tests.browser.conftest import Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def client(server: Server, thread: str) -> OpenAI:
    return OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-test-not-a-secret",
        max_retries=0,
        default_headers={"x-thread-id": thread},
    )


def wait_live(page: Any) -> None:
    page.get_by_test_id("live-state").filter(has_text="Live").wait_for(timeout=10_000)


def call(server: Server, thread: str, messages: list[dict[str, Any]], model: str) -> str:
    raw = client(server, thread).chat.completions.with_raw_response.create(
        model=model, messages=messages
    )
    answer = raw.parse().choices[0].message.content or ""
    messages.append({"role": "assistant", "content": answer})
    return server.wait_span(raw.headers["x-spanlab-span-id"])


def test_the_threads_list_updates_live(server: Server, page: Any) -> None:
    thread = f"live-list-{uuid.uuid4().hex[:8]}"
    page.goto(server.url + "/ui/threads")
    wait_live(page)
    call(server, thread, [{"role": "user", "content": "first"}], "fake-small")
    row = page.locator(f"[data-testid='thread-row'][data-thread-id='{thread}']")
    row.wait_for(timeout=10_000)  # arrived over /events, no reload
    assert row.get_by_test_id("thread-calls").inner_text() == "1"
    call(server, thread, [{"role": "user", "content": "second"}], "fake-small")
    row.get_by_test_id("thread-calls").filter(has_text="2").wait_for(timeout=10_000)
    stored = server.get("/threads").json()["data"]
    mine = next(t for t in stored if t["thread_id"] == thread)
    assert row.get_by_test_id("thread-tokens").inner_text() == f"{mine['total_tokens']:,}"
    assert not page.errors, page.errors


def test_a_thread_reads_as_a_conversation_in_order_and_grows_live(
    server: Server, page: Any
) -> None:
    thread = f"conversation-{uuid.uuid4().hex[:8]}"
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    questions = ["Where is Oslo?", "How cold is it in winter?", "And in summer?"]
    models = ["fake-small", "fake-large", "fake-small"]
    span_ids = []
    for question, model in zip(questions, models, strict=True):
        messages.append({"role": "user", "content": question})
        span_ids.append(call(server, thread, messages, model))

    # opened from the list, by keyboard
    page.goto(server.url + "/ui/threads")
    link = page.locator(f"[data-thread-id='{thread}'] a")
    link.focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("thread-view").wait_for(timeout=10_000)
    assert f"thread={thread}" in page.url
    page.reload()  # the open thread survives a reload
    wait_live(page)
    turns = page.get_by_test_id("turn")
    page.get_by_test_id("turn-output").nth(2).wait_for(timeout=10_000)
    assert turns.count() == 3
    for i, (question, model, span_id) in enumerate(zip(questions, models, span_ids, strict=True)):
        turn = turns.nth(i)
        stored = server.get(f"/spans/{span_id}").json()
        assert turn.get_attribute("data-span-id") == span_id
        assert turn.get_by_test_id("turn-model").inner_text() == model
        assert turn.get_by_test_id("turn-tokens").inner_text() == str(
            stored["usage"]["total_tokens"]
        )
        latency = turn.get_by_test_id("turn-latency").inner_text()
        assert latency.endswith("ms") or latency.endswith(" s"), latency
        assert turn.get_by_test_id("turn-cost").inner_text()  # a figure or a dash
        user = turn.locator(".msg[data-role='user']")
        # each turn shows the message it added, not the whole history again
        assert user.count() == 1 and user.inner_text().endswith(question)
        assert f"to: {question}" in turn.get_by_test_id("turn-output").inner_text()
        assert turn.get_by_test_id("turn-link").get_attribute("href") == f"/ui/spans/{span_id}"
    assert turns.nth(0).locator(".msg[data-role='system']").count() == 1
    assert turns.nth(1).locator(".msg[data-role='system']").count() == 0
    assert page.get_by_test_id("total-calls").inner_text() == "3"
    screenshot(page, "thread-conversation")

    # a new call of this thread appears in the open conversation without a reload
    messages.append({"role": "user", "content": "Thanks!"})
    call(server, thread, messages, "fake-large")
    turns.nth(3).get_by_test_id("turn-output").filter(has_text="to: Thanks!").wait_for(
        timeout=10_000
    )
    page.get_by_test_id("total-calls").filter(has_text="4").wait_for(timeout=10_000)
    assert not page.errors, page.errors
