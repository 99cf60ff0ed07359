"""The results panel in a real browser against a real `spanlab serve` and upstream: a
2 variants x 10 inputs matrix, scored through the evaluation store (the evaluators are
another slice's), shown per variant with CI bars; the verdict of a planted regression
with its flipped inputs, one of which scrolls the grid to its row (by keyboard); the
baseline picker turning the verdict round; the cost-versus-quality chart; the CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from gateway.store.stores import sqlite_stores
from tests.browser.conftest import Server, screenshot
from tests.browser.test_shell_browser import PHONE, overflow
from tests.results_helpers import define, score

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def build(server: Server) -> tuple[str, dict[str, str]]:
    http = server.client
    base = server.url
    eid: str = http.post(f"{base}/experiments", json={"name": "Results panel"}).json()["id"]
    ids = {}
    for name, model in (("base", "gpt-4o-mini"), ("cand", "gpt-4o")):
        r = http.post(f"{base}/experiments/{eid}/variants",
                      json={"name": name, "config": {"model": model}})  # fmt: skip
        assert r.status_code == 201, r.text
        ids[name] = r.json()["variant"]["id"]
    inputs = [{"key": f"q{i}", "content": f"Question {i}"} for i in range(10)]
    assert http.post(f"{base}/experiments/{eid}/inputs", json={"inputs": inputs}).is_success
    assert http.post(f"{base}/experiments/{eid}/run", json={}).status_code == 202
    deadline = time.monotonic() + 20
    while http.get(f"{base}/experiments/{eid}/progress").json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cells = http.get(f"{base}/experiments/{eid}").json()["runs"]
    names = {v: k for k, v in ids.items()}

    def passed(cell: dict[str, Any]) -> float:
        index = int(cell["config"]["input_key"][1:])
        return 0.0 if names[cell["variant_id"]] == "cand" and index < 8 else 1.0

    def quality(cell: dict[str, Any]) -> float:
        index = int(cell["config"]["input_key"][1:])
        return 0.75 + 0.02 * index - (0.2 if names[cell["variant_id"]] == "cand" else 0.0)

    async def write() -> None:
        stores = sqlite_stores(str(server.db))
        await stores.open()
        try:
            store = stores.evaluation
            await score(store, cells, await define(store, "passed", kind="boolean"), passed)
            await score(store, cells, await define(store, "quality"), quality)
        finally:
            await stores.close()

    # Playwright's sync API keeps an event loop on this thread: write from another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result()
    return eid, ids


def test_results_panel_verdict_flips_baseline_chart_and_csv(server: Server, page: Any) -> None:
    if not server.has_experiments_api():
        pytest.skip("this gateway has no experiments API")
    eid, ids = build(server)
    page.goto(f"{server.url}/ui/experiment?id={eid}")
    panel = page.get_by_test_id("results-panel")
    panel.wait_for(timeout=10_000)
    page.locator("[data-testid=results-verdict]").first.wait_for(timeout=10_000)
    rows = panel.get_by_test_id("results-row")
    assert rows.count() == 2
    assert "baseline" in rows.first.inner_text()
    # Pass rates with their interval bars: base 100%, cand 20%.
    values = panel.get_by_test_id("results-value").all_inner_texts()
    assert values == ["100%", "0.84", "20%", "0.64"]
    assert panel.locator("svg.results-ci").count() == 4
    assert re.search(r"\$\d", rows.first.get_by_test_id("results-cost").inner_text())

    regression = panel.locator("[data-testid=results-verdict][data-metric=passed]")
    assert regression.get_attribute("data-outcome") == "regression"
    text = regression.inner_text()
    assert "cand passes passed 80 points less often than base (20% against 100%)" in text
    assert "a real regression" in text
    assert "2 comparisons were made" in panel.inner_text()
    flips = regression.get_by_test_id("results-flip")
    assert flips.count() == 8 and flips.first.inner_text() == "q0: pass \u2192 fail"

    # A flipped input, by keyboard: the grid scrolls to its row and marks its cell.
    target = flips.nth(5)
    input_id = target.get_attribute("data-input-id")
    target.focus()
    page.keyboard.press("Enter")
    row = page.locator(f"[data-testid=matrix-row][data-input-id='{input_id}']")
    cell = row.locator(f"td[data-variant-id='{ids['cand']}']")
    page.wait_for_function(
        "el => el.classList.contains('results-flash')", arg=cell.element_handle()
    )
    box = row.bounding_box()
    assert box is not None and 0 <= box["y"] < page.viewport_size["height"]
    assert page.url.endswith(f"#input-{input_id}")

    # The cost against quality chart names the variants and the verdict under it.
    assert panel.get_by_test_id("results-dot").count() == 2
    assert panel.get_by_test_id("results-cost-verdict").inner_text()
    screenshot(page, "results-panel")

    # The baseline picker: against cand, base is the improvement.
    panel.get_by_test_id("results-baseline").select_option(ids["cand"])
    page.wait_for_function(
        "() => document.querySelector("
        "'[data-testid=results-verdict][data-metric=passed]')?.dataset.outcome === 'improvement'"
    )
    assert "base passes passed 80 points more often than cand" in panel.inner_text()

    # The CSV link asks the gateway for this view: one row per variant x metric.
    href = panel.get_by_test_id("results-csv").get_attribute("href")
    assert href is not None and "format=csv" in href and f"baseline={ids['cand']}" in href
    rows_csv = list(csv.DictReader(io.StringIO(server.get(href).text)))
    assert [(r["variant"], r["metric"], r["baseline"]) for r in rows_csv] == [
        ("base", "passed", "no"), ("base", "quality", "no"),
        ("cand", "passed", "yes"), ("cand", "quality", "yes"),
    ]  # fmt: skip
    assert page.errors == []

    # On a phone the panel stays in the screen (its table scrolls in its box).
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    width, screen = overflow(page)
    assert width <= screen, f"the page is {width}px wide on a {screen}px screen"
