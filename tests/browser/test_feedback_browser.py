"""Rating in a real browser against a real `spanlab serve` and upstream: the matrix
grid's cells rated by keyboard alone (focus, 1, j, 2, n + a note), each change seen
stored through the API; a judge's reason shown as text on a score chip; feedback and
a score given on a span's detail; the metric definitions page creating a metric."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

KEY = "sk-feedback-browser-key"
AUTH = {"authorization": f"Bearer {KEY}"}


def post(server: Server, path: str, body: Any, **kwargs: Any) -> Any:
    r = httpx.post(server.url + path, json=body, timeout=20, **kwargs)
    assert r.status_code < 300, r.text
    return r.json()


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def feedback_of(server: Server, run_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = server.get(f"/experiments/runs/{run_id}/feedback").json()[
        "feedback"
    ]
    return found


def a_matrix(server: Server) -> tuple[str, list[dict[str, Any]]]:
    exp = post(server, "/experiments", {"name": "rate me", "description": "2x2"})
    for name, model in (("mini", "gpt-4o-mini"), ("large", "gpt-4o")):
        post(
            server, f"/experiments/{exp['id']}/variants", {"name": name, "config": {"model": model}}
        )
    post(
        server,
        f"/experiments/{exp['id']}/inputs",
        {
            "inputs": [
                {"key": "colour", "content": "Name a colour", "expected_output": "red"},
                {"key": "fruit", "content": "Name a fruit"},
            ]
        },
    )
    r = httpx.post(server.url + f"/experiments/{exp['id']}/run", json={}, headers=AUTH, timeout=20)
    assert r.status_code == 202, r.text

    def done() -> bool:
        return bool(server.get(f"/experiments/{exp['id']}/progress").json()["status"] != "running")

    until(done, 30)
    cells = [
        c for c in server.get(f"/experiments/{exp['id']}").json()["runs"] if c["matrix_run_id"]
    ]
    assert len(cells) == 4 and all(c["status"] == "completed" for c in cells)
    return exp["id"], cells


def test_rate_grid_cells_by_keyboard(server: Server, page: Any) -> None:
    if not server.has_experiments_api():
        pytest.skip("this gateway has no experiments API")
    experiment_id, cells = a_matrix(server)
    # A judge's reason with markup in it: shown as text.
    judged = cells[0]
    reason = "<b>wrong</b> colour: expected red"
    post(
        server,
        f"/experiments/runs/{judged['id']}/scores",
        {"metricKey": "correctness", "value": 0, "note": reason, "source": "evaluator:judge"},
    )
    page.goto(f"{server.url}/ui/experiment?id={experiment_id}")
    grid = page.get_by_test_id("matrix-grid")
    grid.wait_for(timeout=10_000)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=matrix-slot][data-status=completed]')"
        ".length === 4"
    )
    slots = page.locator("[data-testid=matrix-slot][data-cell-id]")
    order = [slots.nth(i).get_attribute("data-cell-id") for i in range(slots.count())]
    assert sorted(order) == sorted(c["id"] for c in cells)

    # The judge's score on its cell: value and source; the reason on click, as text.
    chip = page.locator(f"[data-cell-id='{judged['id']}'] [data-testid=score-chip]")
    chip.wait_for()
    assert "correctness: 0" in chip.inner_text() and "judge" in chip.inner_text()
    assert chip.get_attribute("title") == reason
    chip.click()
    shown = page.locator(f"[data-cell-id='{judged['id']}'] [data-testid=score-reason]")
    assert shown.inner_text() == reason
    assert shown.locator("b").count() == 0

    # Keyboard only: focus the first cell, 1 = thumbs up, j = next, 2 = thumbs down,
    # n = a note, typed and saved with Enter.
    slots.first.focus()
    page.keyboard.press("1")
    until(lambda: (feedback_of(server, order[0]) or {}).get("thumbs_up") is True)
    page.keyboard.press("j")
    focused = page.evaluate("() => document.activeElement?.getAttribute('data-cell-id')")
    assert focused == order[1]
    page.keyboard.press("2")
    until(lambda: (feedback_of(server, order[1]) or {}).get("thumbs_up") is False)
    page.keyboard.press("n")
    page.keyboard.type("too terse")
    page.keyboard.press("Enter")
    until(lambda: (feedback_of(server, order[1]) or {}).get("note") == "too terse")
    assert (feedback_of(server, order[1]) or {})["thumbs_up"] is False  # the note kept it
    # k goes back; 1 again on a thumbs-up cell clears it.
    page.wait_for_function(
        "id => document.activeElement?.getAttribute('data-cell-id') === id", arg=order[1]
    )
    page.keyboard.press("k")
    page.keyboard.press("1")
    until(lambda: (feedback_of(server, order[0]) or {}).get("thumbs_up", "x") is None)
    second = page.locator(f"[data-cell-id='{order[1]}']")
    assert second.get_attribute("data-thumbs") == "down"
    assert second.get_by_test_id("cell-note").inner_text() == "too terse"
    # The expected output and the diff against it, on the input that has one.
    colour = page.locator("[data-testid=matrix-row]").first
    assert "expected: red" in colour.inner_text()
    colour.get_by_role("button", name="Diff vs expected").first.click()
    colour.get_by_test_id("matrix-diff").first.wait_for()
    screenshot(page, "matrix-grid-rated")
    assert page.errors == []


def test_feedback_and_a_score_on_a_span(server: Server, page: Any) -> None:
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Rate me"}]},
        headers=AUTH,
        timeout=20,
    )
    assert r.status_code == 200, r.text
    span_id = server.wait_span(r.headers["x-spanlab-span-id"])
    page.goto(f"{server.url}/ui/spans/{span_id}")
    section = page.get_by_test_id("span-feedback")
    section.wait_for(timeout=10_000)
    section.get_by_test_id("thumbs-up").click()

    def span_feedback() -> dict[str, Any]:
        found: dict[str, Any] = server.get(f"/spans/{span_id}/evaluation").json()
        return found

    until(lambda: (span_feedback()["feedback"] or {}).get("thumbs_up") is True)
    section.get_by_role("button", name="Add a note").click()
    section.get_by_label("Note for this span").fill("helpful answer")
    section.get_by_label("Note for this span").press("Enter")
    until(lambda: (span_feedback()["feedback"] or {}).get("note") == "helpful answer")
    assert section.get_by_test_id("span-note").inner_text() == "helpful answer"
    section.get_by_test_id("score-metric").fill("helpfulness")
    section.get_by_test_id("score-value").fill("0.9")
    section.get_by_test_id("score-note").fill("clear and short")
    section.get_by_role("button", name="Add score").click()
    until(lambda: len(span_feedback()["scores"]) == 1)
    [score] = span_feedback()["scores"]
    assert (score["metric_key"], score["value"], score["source"]) == ("helpfulness", 0.9, "human")
    chip = section.get_by_test_id("score-chip")
    chip.wait_for()
    assert "helpfulness: 0.9" in chip.inner_text() and "human" in chip.inner_text()
    # A bad value: the gateway's message, nothing stored.
    section.get_by_test_id("score-value").fill("-")
    section.get_by_role("button", name="Add score").click()
    section.get_by_text("numeric").first.wait_for()
    assert len(span_feedback()["scores"]) == 1
    screenshot(page, "span-feedback")
    assert page.errors == []


def test_metric_definitions_page(server: Server, page: Any) -> None:
    page.goto(f"{server.url}/ui/metrics")
    page.get_by_test_id("metrics-page").wait_for(timeout=10_000)
    page.get_by_test_id("metric-key").fill("tone")
    page.get_by_test_id("metric-kind").select_option("categorical")
    page.get_by_test_id("metric-categories").fill("rude, neutral, kind")
    page.get_by_test_id("metric-create").click()
    row = page.locator("[data-testid=metric-row][data-key=tone]")
    row.wait_for()
    assert "rude < neutral < kind" in row.inner_text()
    got = server.get("/metric-definitions/tone").json()["metric"]
    assert got["categories"] == ["rude", "neutral", "kind"]
    row.get_by_role("button", name="Edit").click()
    row.get_by_test_id("metric-name").fill("Tone of voice")
    row.get_by_role("button", name="Save").click()
    until(
        lambda: server.get("/metric-definitions/tone").json()["metric"]["name"] == "Tone of voice"
    )
    row.get_by_role("button", name="Delete metric tone").click()
    until(lambda: server.get("/metric-definitions/tone").status_code == 404)
    assert page.errors == []
