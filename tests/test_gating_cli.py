"""CI gating: ``spanlab experiments run ID --assert ... --baseline ... --fail-on-regression
--junit FILE --json`` through click's CliRunner, the gateway in process and a real
loopback upstream.

The evaluators are another slice's work: here a stand-in scores each cell as it
finishes (wrapped around the matrix store's `finish_cell`, in this process), the way an
evaluator will: ``complete`` passes when the answer is a full "Answer: ..." (the
scripted upstream answers "Briefly: ..." to a system prompt asking to be terse, which
is the planted regression)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result

from gateway.cli.gating import GateOptions, evaluate, parse_assertion
from gateway.store.matrix import SqlMatrixStore
from gateway.store.sqlite_evaluation import SqlEvaluationStore
from tests.experiments_upstream import serve_in_thread
from tests.results_helpers import define, score
from tests.test_matrix_cli import Setup, Upstream


def complete(cell: Mapping[str, Any]) -> float:
    return 1.0 if str(cell.get("output_text") or "").startswith("Answer") else 0.0


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    original = SqlMatrixStore.finish_cell

    async def finish_and_score(self: SqlMatrixStore, cell: Mapping[str, Any]) -> None:
        await original(self, cell)
        if cell.get("status") == "completed":
            store = SqlEvaluationStore(self.db)
            metric = await define(store, "complete", kind="boolean")
            await score(store, [cell], metric, complete)

    monkeypatch.setattr(SqlMatrixStore, "finish_cell", finish_and_score)
    upstream = Upstream(chunk_delay=0.0)
    with serve_in_thread(upstream) as url:
        yield Setup(tmp_path, upstream, url)


INPUTS = [f"question {i}" for i in range(10)]


def run(setup: Setup, exp: str, *extra: str) -> Result:
    return setup.invoke("experiments", "run", exp, "--yes", *extra)


def junit(path: Path) -> dict[str, list[tuple[str, str | None]]]:
    """suite name -> [(testcase name, failure message or None)]."""
    root = ET.fromstring(path.read_bytes())
    assert root.tag == "testsuites"
    out: dict[str, list[tuple[str, str | None]]] = {}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        assert int(suite.attrib["tests"]) == len(cases)
        failed = [c.find("failure") for c in cases]
        assert int(suite.attrib["failures"]) == sum(1 for f in failed if f is not None)
        out[suite.attrib["name"]] = [
            (c.attrib["name"], None if f is None else f.attrib["message"])
            for c, f in zip(cases, failed, strict=True)
        ]
    return out


GATE = [
    "--assert", "complete>=0.8",
    "--assert", "v2:cost_per_cell<=1",
    "--baseline", "v1",
    "--fail-on-regression",
]  # fmt: skip


def test_no_regression_exits_0_with_junit_and_json(gated: Setup, tmp_path: Path) -> None:
    exp, _ = gated.matrix({"v1": "gpt-4o-mini", "v2": "gpt-4o"}, INPUTS)
    report = tmp_path / "junit.xml"
    r = run(gated, exp, *GATE, "--junit", str(report), "--json")
    assert r.exit_code == 0, r.output
    summary = orjson.loads(r.stdout)
    assert summary["exit_code"] == 0 and summary["passed"] is True
    checks = {c["name"]: c for c in summary["checks"]}
    assert checks["v1: complete>=0.8"]["value"] == 1.0
    assert checks["v2: complete>=0.8"]["passed"] and checks["v2: cost_per_cell<=1"]["passed"]
    assert checks["v2 vs v1: complete"]["outcome"] == "no_difference"
    suites = junit(report)
    assert suites["spanlab.run"] == [("at most 10% of the cells failed", None)]
    assert sorted(suites["spanlab.assertions"]) == [
        ("v1: complete>=0.8", None), ("v2: complete>=0.8", None), ("v2: cost_per_cell<=1", None),
    ]  # fmt: skip
    assert suites["spanlab.regressions"] == [("v2 vs v1: complete", None)]


def test_a_planted_regression_exits_1(gated: Setup, tmp_path: Path) -> None:
    exp, _ = gated.matrix({"v1": "gpt-4o-mini", "v2": "gpt-4o"}, INPUTS)
    # v2 now asks to be terse: every answer is "Briefly: ...", which the check fails.
    variants = gated.api("GET", f"/experiments/{exp}/variants")["data"]
    v2 = next(v for v in variants if v["name"] == "v2")
    gated.api("PATCH", f"/experiments/{exp}/variants/{v2['id']}", {"systemPrompt": "Be terse."})
    report = tmp_path / "junit.xml"
    r = run(gated, exp, *GATE, "--junit", str(report))
    assert r.exit_code == 1, r.output
    assert "FAIL v2 vs v1: complete" in r.stdout
    assert "a real regression" in r.stdout
    suites = junit(report)
    [(name, failure)] = suites["spanlab.regressions"]
    assert name == "v2 vs v1: complete" and failure is not None
    assert failure.startswith("v2 passes complete 100 points less often than v1 (0% against 100%)")
    assert dict(suites["spanlab.assertions"])["v2: complete>=0.8"] == "complete is 0, not >= 0.8"
    # Without --fail-on-regression and with an assertion only on v1, the same run passes.
    r = run(gated, exp, "--assert", "v1:complete>=0.8", "--json")
    assert r.exit_code == 0, r.output


def test_run_errors_beyond_the_threshold_exit_2(gated: Setup) -> None:
    exp, _ = gated.matrix({"v1": "gpt-4o-mini", "v2": "broken"}, INPUTS)
    r = run(gated, exp, *GATE, "--json")
    assert r.exit_code == 2, r.output
    summary = orjson.loads(r.stdout)
    run_check = next(c for c in summary["checks"] if c["group"] == "run")
    assert run_check["error_rate"] == 0.5 and run_check["message"] == "50% of the cells failed"
    # Allowing that many errors, the gate judges the rest: v2 has no values.
    r = run(gated, exp, *GATE, "--max-error-rate", "0.6", "--json")
    assert r.exit_code == 1, r.output
    checks = {c["name"]: c for c in orjson.loads(r.stdout)["checks"]}
    assert checks["v2: complete>=0.8"]["message"] == "no value"


def test_a_malformed_assertion_is_a_usage_error(gated: Setup) -> None:
    exp, _ = gated.matrix({"v1": "gpt-4o-mini"}, INPUTS[:1])
    r = run(gated, exp, "--assert", "complete=>0.8")
    assert r.exit_code == 2 and "NAME OP NUMBER" in r.output
    assert not gated.upstream.requests  # nothing was run


def test_assertions_parse_and_an_unknown_figure_fails() -> None:
    a = parse_assertion(" v2 : latency_p95 < 1.5e3 ")
    assert (a.variant, a.name, a.op, a.threshold) == ("v2", "latency_p95", "<", 1500.0)
    results = {
        "variants": [
            {"id": "a", "name": "A", "cells": 4, "errors": 0, "not_run": 0, "metrics": {},
             "latency_p95_ms": 900.0},
        ],
        "comparisons": [],
    }  # fmt: skip
    gate = GateOptions((parse_assertion("A:latency_p95<1000"), parse_assertion("corectness>=1")))
    code, checks = evaluate(results, gate)
    assert code == 1
    assert [c.failure for c in checks] == [None, None, "no figure 'corectness' in the results"]


def test_results_command_shows_and_gates_a_run_already_done(gated: Setup, tmp_path: Path) -> None:
    exp, _ = gated.matrix({"v1": "gpt-4o-mini", "v2": "gpt-4o"}, INPUTS)
    variants = gated.api("GET", f"/experiments/{exp}/variants")["data"]
    v2 = next(v for v in variants if v["name"] == "v2")
    gated.api("PATCH", f"/experiments/{exp}/variants/{v2['id']}", {"systemPrompt": "Be terse."})
    assert run(gated, exp).exit_code == 0  # no gating: the cells all completed
    shown = gated.invoke("experiments", "results", exp, "--csv", str(tmp_path / "r.csv"))
    assert shown.exit_code == 0, shown.output
    assert "v1 (baseline)" in shown.stdout and "a real regression" in shown.stdout
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0].startswith("variant_id,variant,baseline,metric") and len(rows) == 3
    gate = gated.invoke("experiments", "results", exp, "--baseline", "v1", "--fail-on-regression")
    assert gate.exit_code == 1 and "FAIL v2 vs v1: complete" in gate.stdout
    # Against v2 as the baseline, v1 is the improvement: nothing regresses.
    ok = gated.invoke("experiments", "results", exp, "--baseline", "v2", "--fail-on-regression")
    assert ok.exit_code == 0, ok.output
