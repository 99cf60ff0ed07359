"""The matrix experiment in a real browser against a real `spanlab serve` and upstream:
"New experiment" from the list, two variants and three inputs added in the panels,
estimate then run, the progress bar reaching 6/6, the 3x2 grid with each cell's
output and span; a slow run cancelled mid-way and resumed; and on a phone (390x844)
the matrix page is no wider than the screen."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import Server, screenshot
from tests.browser.test_shell_browser import PHONE, overflow
from tests.browser.upstream import SLOW_PROBE

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

VARIANTS = [("mini", "gpt-4o-mini", "0.2"), ("large", "gpt-4o", "0.9")]
INPUTS = ["Name a colour", "Name a fruit", "Name a river"]


def add_variant(page: Any, name: str, model: str, temperature: str) -> None:
    panel = page.get_by_test_id("variants-panel")
    panel.get_by_role("button", name="+ Variant").click()
    form = page.get_by_test_id("variant-form")
    form.get_by_label("Variant name").fill(name)
    form.get_by_label("Variant model").fill(model)
    form.get_by_label("Variant temperature").fill(temperature)
    form.get_by_label("Variant system prompt").fill(f"You are {name}.")
    form.get_by_role("button", name="Add variant").click()
    panel.locator(f"[data-testid=variant-item]:has-text('{name}')").wait_for()


def wait_slots(page: Any, status: str, count: int, timeout: int = 20_000) -> None:
    page.wait_for_function(
        "([s, n]) => document.querySelectorAll("
        "`[data-testid=matrix-slot][data-status=${s}]`).length === n",
        arg=[status, count],
        timeout=timeout,
    )


def wait_progress(page: Any, text: str, timeout: int = 20_000) -> None:
    page.wait_for_function(
        "t => document.querySelector('[data-testid=progress-done]')?.textContent === t",
        arg=text,
        timeout=timeout,
    )


def test_matrix_from_the_list_estimate_run_grid_cancel_resume(server: Server, page: Any) -> None:
    if not server.has_experiments_api():
        pytest.skip("this gateway has no experiments API")
    page.goto(server.url + "/ui/experiments")
    page.get_by_role("button", name="New experiment").click()
    page.get_by_label("New experiment name").fill("Colours and fruits")
    page.get_by_label("New experiment description").fill("two models, three questions")
    page.get_by_role("button", name="Create").click()
    matrix = page.get_by_test_id("matrix-page")
    matrix.wait_for(timeout=10_000)
    experiment_id = matrix.get_attribute("data-experiment-id")
    assert experiment_id and re.search(rf"id={experiment_id}", page.url)
    assert server.get(f"/experiments/{experiment_id}").json()["kind"] == "matrix"

    for name, model, temperature in VARIANTS:
        add_variant(page, name, model, temperature)
    assert page.get_by_test_id("variant-item").count() == 2
    page.get_by_label("Inputs, one per line").fill("\n".join(INPUTS) + "\n\n")
    page.get_by_role("button", name="Add 3 inputs").click()
    page.locator("[data-testid=input-item]").nth(2).wait_for()
    assert page.get_by_test_id("input-item").count() == 3

    # Estimate first: 6 calls, priced (both models are in the price table); nothing runs.
    seen_before = len(server.get(f"/experiments/{experiment_id}").json()["runs"])
    page.get_by_role("button", name="Estimate").click()
    estimate = page.get_by_test_id("estimate")
    estimate.wait_for()
    assert page.get_by_test_id("estimate-calls").inner_text().startswith("6 calls")
    assert re.fullmatch(r"about \$\d[\d,]*\.\d+", page.get_by_test_id("estimate-cost").inner_text())
    assert "3 approximated (prompt tokens = characters" in estimate.inner_text()
    assert len(server.get(f"/experiments/{experiment_id}").json()["runs"]) == seen_before == 0
    page.get_by_test_id("confirm-run").click()
    wait_progress(page, "6/6")
    grid = page.get_by_test_id("matrix-grid")
    wait_slots(page, "completed", 6)
    assert grid.get_by_test_id("matrix-row").count() == 3
    assert grid.get_by_test_id("matrix-col").count() == 2
    for row, question in enumerate(INPUTS):
        for col, (_, _, temperature) in enumerate(VARIANTS):
            cell = grid.get_by_test_id("matrix-row").nth(row).locator("td").nth(col)
            text = cell.get_by_test_id("matrix-output").inner_text()
            assert text == f"Reply at temperature {temperature} to: {question}"
            assert re.search(r"\d+ ms|\d+\.\d+ s", cell.inner_text())
    assert "$" in page.get_by_test_id("matrix-progress").inner_text()
    screenshot(page, "matrix-grid-desktop")

    # A cell's span opens from the grid.
    first = grid.get_by_test_id("matrix-row").first.locator("td").first
    first.get_by_role("link", name=re.compile("^Span of")).click()
    page.get_by_test_id("span-detail").wait_for(timeout=10_000)
    page.go_back()
    matrix.wait_for()

    # A slow input: run again, cancel with its cells in flight, then resume to the end.
    page.get_by_label("Inputs, one per line").fill(f"{SLOW_PROBE} take your time")
    page.get_by_role("button", name="Add 1 input").click()
    page.locator("[data-testid=input-item]").nth(3).wait_for()
    page.get_by_role("button", name="Estimate").click()
    page.get_by_test_id("confirm-run").click()
    wait_progress(page, "6/8")
    page.get_by_role("button", name="Cancel run").click()
    page.locator("[data-testid=matrix-progress][data-status=cancelled]").wait_for()
    wait_slots(page, "cancelled", 2)
    page.get_by_role("button", name="Resume").click()
    wait_progress(page, "8/8", timeout=30_000)
    wait_slots(page, "completed", 8)
    assert page.get_by_test_id("matrix-row").count() == 4
    assert page.errors == []

    # On a phone the matrix page is no wider than the screen (the grid scrolls in its box).
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    width, screen = overflow(page)
    screenshot(page, "matrix-390")
    assert width <= screen, f"the matrix page is {width}px wide on a {screen}px screen"
