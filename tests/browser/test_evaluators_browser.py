"""The evaluators panel of a matrix experiment in a real browser against a real
`spanlab serve`: add a "contains" evaluator with the type picker and its params form,
an LLM judge whose rubric starts from a template and is edited, a bad regex refused
with the gateway's message; the cells scored after a run; "Re-run evaluators" with its
progress; disable by keyboard; delete."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def api(server: Server, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    r = httpx.request(method, server.url + path, json=body, timeout=10)
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def wait_until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def test_evaluators_panel_add_rerun_disable_delete(server: Server, page: Any) -> None:
    if not server.has_experiments_api():
        pytest.skip("this gateway has no experiments API")
    eid = api(server, "POST", "/experiments", {"name": "Evaluated"}, 201)["id"]
    api(
        server,
        "POST",
        f"/experiments/{eid}/variants",
        {"name": "small", "config": {"model": "fake-small"}},
        201,
    )
    inputs = [{"key": "c", "content": "Name a colour"}, {"key": "f", "content": "Name a fruit"}]
    api(server, "POST", f"/experiments/{eid}/inputs", {"inputs": inputs}, 201)
    page.goto(f"{server.url}/ui/experiment?id={eid}")
    panel = page.get_by_test_id("evaluators-panel")
    panel.wait_for(timeout=10_000)
    assert "No evaluators" in panel.inner_text()

    # a "contains" evaluator through the type picker and its params
    panel.get_by_role("button", name="+ Evaluator").click()
    form = page.get_by_test_id("evaluator-form")
    form.get_by_label("Evaluator type").select_option("contains")
    form.get_by_label("Evaluator name").fill("Says colour")
    form.get_by_label("Evaluator strings").fill("colour\nhue")
    form.get_by_label("Evaluator mode").select_option("any")
    form.get_by_role("button", name="Add evaluator").click()
    panel.locator("[data-testid=evaluator-item]:has-text('Says colour')").wait_for()

    # a bad regex: the gateway's 400 is shown, nothing is added
    panel.get_by_role("button", name="+ Evaluator").click()
    form = page.get_by_test_id("evaluator-form")
    form.get_by_label("Evaluator type").select_option("regex")
    form.get_by_label("Evaluator name").fill("broken")
    form.get_by_label("Evaluator pattern").fill("(unclosed")
    form.get_by_role("button", name="Add evaluator").click()
    form.get_by_text("not a valid regular expression").wait_for()
    form.get_by_role("button", name="Cancel").click()

    # the judge: the rubric starts from a template, follows the template picked, is editable
    panel.get_by_role("button", name="+ Evaluator").click()
    form = page.get_by_test_id("evaluator-form")
    form.get_by_label("Evaluator type").select_option("llm_judge")
    rubric = form.get_by_label("Evaluator rubric")
    assert "Reference answer" in rubric.input_value()
    form.get_by_label("Evaluator template").select_option("style")
    assert "grade the style" in rubric.input_value()
    rubric.fill("Is this polite? {{output}} (question: {{input}})")
    form.get_by_label("Evaluator name").fill("Polite")
    form.get_by_label("Evaluator model").fill("fake-large")
    form.get_by_role("button", name="Add evaluator").click()
    panel.locator("[data-testid=evaluator-item]:has-text('Polite')").wait_for()
    stored = api(server, "GET", f"/experiments/{eid}/evaluators")["data"]
    assert [e["name"] for e in stored] == ["Says colour", "Polite"]
    assert stored[0]["params"]["strings"] == ["colour", "hue"]
    judge = stored[1]
    assert judge["params"]["rubric"] == "Is this polite? {{output}} (question: {{input}})"
    assert judge["params"]["template"] == "style" and judge["type"] == "llm_judge"

    # disable the judge by keyboard (this upstream is no judge): focus, Space
    toggle = panel.get_by_label("Enable evaluator Polite")
    toggle.focus()
    page.keyboard.press("Space")
    wait_until(
        lambda: (
            not api(server, "GET", f"/experiments/{eid}/evaluators/{judge['id']}")["evaluator"][
                "enabled"
            ]
        )
    )

    # a run: each cell scored after it finishes
    api(server, "POST", f"/experiments/{eid}/run", {}, 202)
    wait_until(lambda: api(server, "GET", f"/experiments/{eid}/progress")["status"] == "completed")
    wait_until(lambda: api(server, "GET", f"/experiments/{eid}/evaluate")["pending_cells"] == 0)

    # Re-run evaluators: the job's progress reaches 2/2, completed
    page.get_by_test_id("rerun-evaluators").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=evaluators-progress]')"
        "?.dataset.status === 'completed'",
        timeout=20_000,
    )
    assert page.get_by_test_id("evaluators-done").inner_text() == "2/2"
    assert "2 scores" in page.get_by_test_id("evaluators-progress").inner_text()

    # delete: gone from the panel and the API
    panel.get_by_role("button", name="Delete evaluator Polite").click()
    panel.locator("[data-testid=evaluator-item]:has-text('Polite')").wait_for(state="detached")
    assert [e["name"] for e in api(server, "GET", f"/experiments/{eid}/evaluators")["data"]] == [
        "Says colour"
    ]
    assert page.errors == []
