"""The matrix experiment's inputs panel takes a file, in a real browser against a real
`spanlab serve`: a bad CSV is refused with its row number at the field and nothing is
added; a JSONL file, a CSV and a text file (one input per line) add their inputs. The
estimate goes stale when the repetitions change, and what was estimated is what runs;
a resume of many cells shows its calls and cost and asks first."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser.conftest import Server, screenshot
from tests.browser.upstream import SLOW_PROBE, LoopbackUpstream

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def new_experiment(server: Server, name: str) -> str:
    r = server.client.post(f"{server.url}/experiments", json={"name": name})
    assert r.status_code == 201, r.text
    eid: str = r.json()["id"]
    variant = {"name": "mini", "config": {"model": "gpt-4o-mini", "temperature": 0.3}}
    r = server.client.post(f"{server.url}/experiments/{eid}/variants", json=variant)
    assert r.status_code == 201, r.text
    return eid


def upload(page: Any, name: str, mime: str, content: str) -> None:
    page.get_by_test_id("inputs-file").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": content.encode()}]
    )


def stored_keys(server: Server, eid: str) -> list[str]:
    return [i["key"] for i in server.get(f"/experiments/{eid}/inputs").json()["data"]]


def test_uploading_inputs_files(server: Server, page: Any) -> None:
    if not server.has_experiments_api():
        pytest.skip("this gateway has no experiments API")
    eid = new_experiment(server, "uploads")
    page.goto(f"{server.url}/ui/experiment?id={eid}")
    page.get_by_test_id("matrix-page").wait_for(timeout=10_000)

    # A CSV with a short row: refused at the field with its row, nothing added.
    upload(page, "bad.csv", "text/csv", "question,expected\nWhat is 2+2?,4\nName a river\n")
    error = page.get_by_test_id("inputs-file-error")
    error.wait_for()
    assert error.inner_text() == "bad.csv: Row 3: 1 cells, the header has 2."
    field = page.get_by_test_id("inputs-file")
    assert field.get_attribute("aria-invalid") == "true"
    assert field.get_attribute("aria-describedby") == error.get_attribute("id")
    assert stored_keys(server, eid) == []
    assert page.get_by_test_id("input-item").count() == 0

    # JSONL: objects (with keys, expected output) and a bare string.
    jsonl = (
        '{"key": "capital", "content": "Capital of France?", "expected": "Paris"}\n'
        "\n"
        '"Name a colour"\n'
    )
    upload(page, "cases.jsonl", "application/x-ndjson", jsonl)
    page.get_by_test_id("inputs-file-note").wait_for()
    assert page.get_by_test_id("inputs-file-error").count() == 0
    page.locator("[data-testid=input-item]").nth(1).wait_for()
    panel = page.get_by_test_id("inputs-panel")
    assert "expected: Paris" in panel.inner_text()
    assert "Capital of France?" in panel.inner_text()
    assert "Name a colour" in panel.inner_text()

    # CSV: its one column is each input's text; and a .txt file, one input per line.
    upload(page, "more.csv", "text/csv", 'question\n"Name a fruit, please"\nName a tree\n')
    page.locator("[data-testid=input-item]").nth(3).wait_for()
    upload(page, "lines.txt", "text/plain", "Name a river\r\n\r\nName a mountain\n")
    page.locator("[data-testid=input-item]").nth(5).wait_for()
    keys = stored_keys(server, eid)
    assert len(keys) == 6 and len(set(keys)) == 6 and keys[0] == "capital"
    inputs = server.get(f"/experiments/{eid}/inputs").json()["data"]
    assert [i["content"] for i in inputs] == [
        "Capital of France?",
        "Name a colour",
        "Name a fruit, please",
        "Name a tree",
        "Name a river",
        "Name a mountain",
    ]
    assert inputs[2]["variables"] == {"question": "Name a fruit, please"}
    # A key the experiment has already: the gateway refuses the batch; said at the field.
    upload(page, "again.jsonl", "application/x-ndjson", '{"key": "capital", "content": "x"}\n')
    page.get_by_test_id("inputs-file-error").wait_for()
    assert "again.jsonl:" in page.get_by_test_id("inputs-file-error").inner_text()
    assert len(stored_keys(server, eid)) == 6
    screenshot(page, "matrix-inputs-upload")

    # The estimate: 6 calls and a cost before anything runs; stale once the
    # repetitions change; what was estimated is what runs.
    page.get_by_role("button", name="Estimate").click()
    assert page.get_by_test_id("estimate-calls").inner_text().startswith("6 calls")
    assert re.fullmatch(r"about \$\d[\d,]*\.\d+", page.get_by_test_id("estimate-cost").inner_text())
    page.get_by_label("Repetitions").fill("3")
    page.get_by_test_id("estimate").wait_for(state="detached")
    page.get_by_role("button", name="Estimate").click()
    assert page.get_by_test_id("estimate-calls").inner_text().startswith("18 calls")
    page.get_by_label("Repetitions").fill("2")
    page.get_by_role("button", name="Estimate").click()
    assert page.get_by_test_id("estimate-calls").inner_text().startswith("12 calls")
    page.get_by_test_id("confirm-run").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=progress-done]')?.textContent === '12/12'",
        timeout=20_000,
    )
    assert page.errors == []


def test_a_big_resume_shows_its_calls_and_cost_first(
    server: Server, upstream: LoopbackUpstream, page: Any
) -> None:
    if not server.has_experiments_api():
        pytest.skip("this gateway has no experiments API")
    eid = new_experiment(server, "big resume")
    lines = [f"{SLOW_PROBE} question {n}" for n in range(25)]
    r = server.client.post(f"{server.url}/experiments/{eid}/inputs", json={"inputs": lines})
    assert r.status_code == 201, r.text
    r = server.client.post(f"{server.url}/experiments/{eid}/run", json={"concurrency": 2})
    assert r.status_code == 202, r.text
    r = server.client.post(f"{server.url}/experiments/{eid}/cancel")
    assert r.status_code == 200, r.text
    progress = r.json()
    assert progress["status"] == "cancelled" and progress["completed"] == 0
    page.goto(f"{server.url}/ui/experiment?id={eid}")
    page.get_by_test_id("matrix-page").wait_for(timeout=10_000)
    seen = len(upstream.seen)

    page.get_by_role("button", name="Resume").click()
    box = page.get_by_test_id("resume-estimate")
    box.wait_for()
    assert page.get_by_test_id("resume-calls").inner_text() == "25 calls"
    assert re.search(r"estimated cost about \$\d[\d,]*\.\d+", box.inner_text()), box.inner_text()
    # Nothing ran for asking; Back leaves the run as it was.
    page.get_by_role("button", name="Back").click()
    box.wait_for(state="detached")
    time.sleep(0.3)
    assert len(upstream.seen) == seen
    again = server.get(f"/experiments/{eid}/progress").json()
    assert (again["status"], again["completed"]) == ("cancelled", 0)
    page.get_by_role("button", name="Resume").click()
    page.get_by_test_id("confirm-resume").click()
    page.locator("[data-testid=matrix-progress][data-status=running]").wait_for()
    server.client.post(f"{server.url}/experiments/{eid}/cancel")
    assert page.errors == []
