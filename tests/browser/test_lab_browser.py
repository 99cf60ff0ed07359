"""The lab pages in a real browser (issue 12): the playground with two models streamed
side by side and a second turn, "Open in playground" from a span, a dataset made from a
Traces selection, a file import with a bad line, and both pages on a phone."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import expect

from tests.browser.conftest import Server, screenshot
from tests.browser.test_shell_browser import PHONE, new_page, overflow
from tests.browser.upstream import LoopbackUpstream

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

KEY = "sk-lab-browser-key"
MODELS = ["fake-small", "fake-large"]
MONEY = re.compile(r"\$\d[\d,]*(\.\d+)?")

# Every text a streaming answer showed, recorded as the page changes: proof the columns
# filled in piece by piece rather than all at once.
RECORD_PARTIALS = """() => {
  window.__partials = [];
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-testid=pg-answer][aria-busy=true]')) {
      const text = el.querySelector('[data-testid=pg-answer-text]')?.textContent ?? '';
      window.__partials.push([el.dataset.model, text]);
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def api(server: Server) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=KEY)


def send(page: Any, text: str) -> None:
    page.get_by_test_id("pg-prompt").fill(text)
    page.get_by_test_id("pg-send").click()


def test_playground_two_models_streamed_then_a_second_turn(
    server: Server, upstream: LoopbackUpstream, page: Any
) -> None:
    page.goto(server.url + "/ui/playground")
    # the sidebar has the page, and the first model offered is picked
    expect(page.get_by_role("link", name="Playground")).to_have_attribute("aria-current", "page")
    first = page.get_by_test_id("pg-model").first
    expect(first).to_have_value(re.compile(r"fake-"), timeout=10_000)
    page.get_by_test_id("add-model").click()
    models = page.get_by_test_id("pg-model")
    expect(models).to_have_count(2)
    models.nth(0).fill(MODELS[0])
    models.nth(1).fill(MODELS[1])
    page.get_by_label("System prompt").fill("Answer as a pirate.")
    page.get_by_label("Temperature").fill("0.4")
    page.get_by_label("API key for the playground").fill(KEY)
    page.evaluate(RECORD_PARTIALS)
    seen_before = len(upstream.seen)

    send(page, "What is a lighthouse for?")
    answers = page.get_by_test_id("pg-turn").nth(0).get_by_test_id("pg-answer")
    expect(answers).to_have_count(2)
    for i, model in enumerate(MODELS):
        answer = answers.nth(i)
        expect(answer).to_have_attribute("aria-busy", "false", timeout=20_000)
        expect(answer).to_have_attribute("data-model", model)
        text = answer.get_by_test_id("pg-answer-text")
        expect(text).to_have_text("Reply at temperature 0.4 to: What is a lighthouse for?")
        figures = answer.get_by_test_id("answer-figures").inner_text()
        assert re.search(r"\d+(\.\d+)? ?m?s", figures), figures
        assert re.search(r"\d+ tokens", figures), figures
        assert MONEY.search(figures) or "\u2013" in figures, figures
        link = answer.get_by_test_id("answer-span-link")
        expect(link).to_have_attribute("href", re.compile(r"/ui/spans/."))
    screenshot(page, "lab-playground-two-models")

    # both columns were shown filling in: a prefix of the final text while streaming
    partials: list[list[str]] = page.evaluate("window.__partials")
    final = "Reply at temperature 0.4 to: What is a lighthouse for?"
    for model in MODELS:
        shown = {text for m, text in partials if m == model}
        assert any(t and t != final and final.startswith(t) for t in shown), (model, shown)

    # each model was called once, streaming, with the system prompt and the key
    calls = upstream.seen[seen_before:]
    assert sorted(c["body"]["model"] for c in calls) == sorted(MODELS)
    for call in calls:
        assert call["body"]["stream"] is True
        assert call["body"]["messages"][0] == {"role": "system", "content": "Answer as a pirate."}
        assert call["authorization"] == f"Bearer {KEY}"
    page.wait_for_url(re.compile(r"/ui/playground\?session=pgs_"))

    # the second turn: each model is sent its own first answer
    seen_before = len(upstream.seen)
    send(page, "And a windmill?")
    second = page.get_by_test_id("pg-turn").nth(1).get_by_test_id("pg-answer")
    expect(second).to_have_count(2)
    for i in range(2):
        expect(second.nth(i)).to_have_attribute("aria-busy", "false", timeout=20_000)
        expect(second.nth(i).get_by_test_id("pg-answer-text")).to_have_text(
            "Reply at temperature 0.4 to: And a windmill?"
        )
    calls = upstream.seen[seen_before:]
    assert len(calls) == 2
    for call in calls:
        roles = [(m["role"], m["content"]) for m in call["body"]["messages"]]
        assert roles == [
            ("system", "Answer as a pirate."),
            ("user", "What is a lighthouse for?"),
            ("assistant", final),
            ("user", "And a windmill?"),
        ], roles
    # the session is listed, and reads back as its two turns after a reload
    sessions = page.get_by_test_id("pg-sessions")
    expect(sessions.get_by_text("What is a lighthouse for?")).to_be_visible()
    other = httpx.post(
        server.url + "/playground/complete",
        json={"model": MODELS[0], "prompt": "Another session entirely"},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=20,
    )
    assert other.status_code == 200, other.text
    page.reload()
    expect(page.get_by_test_id("pg-turn")).to_have_count(2, timeout=10_000)
    expect(page.get_by_test_id("pg-turn").nth(1).get_by_test_id("pg-answer")).to_have_count(2)
    # with each answer's figures, read from its span
    reloaded = page.get_by_test_id("pg-turn").nth(1).get_by_test_id("answer-figures")
    expect(reloaded).to_have_count(2, timeout=10_000)
    expect(reloaded.first).to_contain_text("tokens")
    first_session = page.url
    # another session from the list replaces this one (and the URL names it)
    sessions.get_by_text("Another session entirely").click()
    page.wait_for_url(re.compile(rf"session={other.json()['session_id']}"))
    expect(page.get_by_test_id("pg-turn")).to_have_count(1, timeout=10_000)
    expect(page.get_by_test_id("pg-answer")).to_have_count(1)
    page.go_back()
    page.wait_for_url(first_session)
    expect(page.get_by_test_id("pg-turn")).to_have_count(2, timeout=10_000)

    # "Save as experiment" opens the experiment made from that answer
    page.get_by_test_id("save-experiment").first.click()
    page.wait_for_url(re.compile(r"/ui/experiment\?id="), timeout=10_000)
    page.get_by_test_id("experiment-page").wait_for(timeout=10_000)

    # "New session" empties the page
    page.goto(server.url + "/ui/playground")
    page.get_by_test_id("new-session").click()
    expect(page.get_by_test_id("pg-turn")).to_have_count(0)
    assert not page.errors, page.errors


def test_open_in_playground_from_a_span(server: Server, page: Any) -> None:
    thread = "lab-open-in-playground"
    api(server).chat.completions.create(
        model="fake-large",
        temperature=0.7,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Another one?"},
        ],
        extra_headers={"x-thread-id": thread},
    )
    span = server.wait_spans(1, thread=thread)[0]
    page.goto(server.url + f"/ui/spans/{span['span_id']}")
    page.get_by_test_id("playground-button").click()
    page.wait_for_url(re.compile(r"/ui/playground\?span_id="))
    expect(page.get_by_test_id("pg-model").first).to_have_value("fake-large", timeout=10_000)
    expect(page.get_by_label("System prompt")).to_have_value("You are terse.")
    expect(page.get_by_test_id("pg-prompt")).to_have_value("Another one?")
    expect(page.get_by_label("Temperature")).to_have_value("0.7")
    context = page.get_by_test_id("pg-context")
    expect(context).to_contain_text("Name a colour.")
    expect(context).to_contain_text("Blue.")
    assert not page.errors, page.errors


def test_dataset_from_a_traces_selection(server: Server, page: Any) -> None:
    thread = "lab-dataset-selection"
    client = api(server)
    for i in range(4):
        client.chat.completions.create(
            model="fake-small",
            messages=[{"role": "user", "content": f"Selection question {i}"}],
            extra_headers={"x-thread-id": thread},
        )
    spans = server.wait_spans(4, thread=thread)
    page.goto(server.url + f"/ui/?thread={thread}")
    rows = page.get_by_test_id("span-row")
    expect(rows).to_have_count(4, timeout=10_000)
    # two by clicking their boxes, the third by keyboard: Space on the focused row's link
    rows.nth(0).get_by_test_id("row-check").check()
    rows.nth(1).get_by_test_id("row-check").check()
    rows.nth(2).locator("a").first.focus()
    page.keyboard.press(" ")
    expect(rows.nth(2).get_by_test_id("row-check")).to_be_checked()
    expect(rows.nth(3).get_by_test_id("row-check")).not_to_be_checked()
    # a click on a box does not open the call
    assert "span=" not in page.url
    chosen = [rows.nth(i).get_attribute("data-span-id") for i in range(3)]

    page.get_by_test_id("add-to-dataset").click()
    choice = page.get_by_test_id("dataset-choice")
    choice.select_option(label="New dataset…")
    page.get_by_test_id("new-dataset-name").fill("from traces")
    page.get_by_test_id("add-confirm").click()
    result = page.get_by_test_id("add-result")
    expect(result).to_contain_text("Added 3 to from traces", timeout=10_000)
    expect(page.get_by_test_id("row-check").and_(page.locator(":checked"))).to_have_count(0)
    screenshot(page, "lab-add-to-dataset")

    result.get_by_role("link", name="from traces").click()
    page.get_by_test_id("dataset-page").wait_for()
    expect(page.get_by_test_id("dataset-summary")).to_contain_text("3 items")
    items = page.get_by_test_id("ds-item")
    expect(items).to_have_count(3)
    sources = set(items.locator("a").all_inner_texts())
    assert sources == set(chosen), (sources, chosen)
    assert {s["span_id"] for s in spans} > sources
    expect(items.first).to_contain_text("Selection question")
    # the datasets list shows it with its count
    page.get_by_role("link", name="Datasets").first.click()
    row = page.get_by_test_id("dataset-row").filter(has_text="from traces")
    expect(row.get_by_test_id("dataset-count")).to_have_text("3")
    assert not page.errors, page.errors


def test_import_with_a_bad_line_imports_nothing(server: Server, page: Any) -> None:
    created = httpx.post(server.url + "/datasets", json={"name": "import check"}, timeout=10)
    assert created.status_code == 201, created.text
    dataset = created.json()["id"]
    page.goto(server.url + f"/ui/datasets?id={dataset}")
    page.get_by_test_id("dataset-page").wait_for()
    lines = [
        json.dumps({"key": "a", "variables": {"q": "one"}, "expected": "1"}),
        "{not json",
        json.dumps({"key": "c", "variables": {"q": "three"}}),
    ]
    bad = "\n".join(lines).encode()
    page.get_by_test_id("ds-file").set_input_files(
        {"name": "rows.jsonl", "mimeType": "application/x-ndjson", "buffer": bad}
    )
    page.get_by_test_id("ds-import").click()
    error = page.get_by_test_id("error-note")
    expect(error).to_contain_text("Row 2", timeout=10_000)
    expect(page.get_by_test_id("ds-item")).to_have_count(0)
    answer = httpx.get(server.url + f"/datasets/{dataset}", timeout=10).json()
    assert answer["item_count"] == 0 and answer["version"] == 1, answer

    # the same file fixed imports both rows, listed with their previews
    good = "\n".join([lines[0], lines[2]]).encode()
    page.get_by_test_id("ds-file").set_input_files(
        {"name": "rows.jsonl", "mimeType": "application/x-ndjson", "buffer": good}
    )
    page.get_by_test_id("ds-import").click()
    expect(page.get_by_test_id("ds-import-result")).to_contain_text("Imported 2")
    expect(page.get_by_test_id("ds-item")).to_have_count(2)
    expect(page.get_by_test_id("ds-item").first).to_contain_text("q: one")
    expect(page.get_by_test_id("export-jsonl")).to_have_attribute(
        "href", f"/datasets/{dataset}/export?format=jsonl"
    )
    # delete asks first, then goes
    page.get_by_test_id("ds-delete").click()
    page.get_by_test_id("ds-delete-confirm").click()
    page.wait_for_url(re.compile(r"/ui/datasets$"))
    assert httpx.get(server.url + f"/datasets/{dataset}", timeout=10).status_code == 404
    assert not page.errors, page.errors


def test_lab_pages_fit_a_phone(server: Server, browser: Any) -> None:
    answer = httpx.post(
        server.url + "/playground/complete",
        json={"models": MODELS, "prompt": "A phone-sized question with words"},
        headers={"authorization": f"Bearer {KEY}"},
        timeout=20,
    )
    assert answer.status_code == 200, answer.text
    session = answer.json()["session_id"]
    created = httpx.post(
        server.url + "/datasets",
        json={
            "name": "a dataset with a rather long name for a phone screen",
            "items": [{"key": f"k{i}", "variables": {"q": "word " * 40}} for i in range(3)],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    page = new_page(browser, PHONE)
    try:
        for name, url, ready in [
            ("playground", "/ui/playground", "[data-testid=playground-page]"),
            ("playground-session", f"/ui/playground?session={session}", "[data-testid=pg-answer]"),
            ("datasets", "/ui/datasets", "[data-testid=dataset-row]"),
            ("dataset", f"/ui/datasets?id={created.json()['id']}", "[data-testid=ds-item]"),
        ]:
            page.goto(server.url + url)
            page.locator(ready).first.wait_for(timeout=10_000)
            page.wait_for_timeout(200)
            width, screen = overflow(page)
            screenshot(page, f"lab-390-{name}")
            assert width <= screen, f"{name} is {width}px wide on a {screen}px screen"
        assert not page.errors, page.errors
    finally:
        page.context.close()
