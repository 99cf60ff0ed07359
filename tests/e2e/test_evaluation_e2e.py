"""Issue 13 end to end, every part real: a ``spanlab serve`` process in front of the
suite's loopback upstream (scripted as a judge too, `tests.upstream.judge`); a
3 variants x 10 inputs x 2 repetitions matrix scored by three built-in evaluators and an
LLM judge configured on the experiment; ``spanlab experiments run`` as a real process
with ``--assert``, ``--baseline``, ``--fail-on-regression`` and ``--junit``: exit 1 on
a planted regression, 0 without it; then the results (verdicts, flips) and their CSV.

The planted regression: variant v2's system prompt asks to be terse, so the upstream
answers "Briefly: ..." where the others answer "Answer: ...": the ``complete``
evaluator (contains "Answer") fails every v2 cell and the judge (does the answer name
the reference's first word, "Answer") scores them 0.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.experiments_upstream import config_toml
from tests.serve import GatewayProcess
from tests.upstream.judge import VERDICT_MODEL, JudgeScript
from tests.upstream.server import MockUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VARIANTS = (("v1", "gpt-4o-mini"), ("v2", "gpt-4.1"), ("v3", "gpt-4o-mini"))
METRICS = ("complete", "mentions_input", "similar", "judged")


def post(http: httpx.Client, path: str, body: Any, status: int) -> Any:
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def build(http: httpx.Client, name: str, terse: str | None) -> str:
    eid: str = post(http, "/experiments", {"name": name}, 201)["id"]
    for n, (variant, model) in enumerate(VARIANTS, start=1):
        system = "Be terse." if variant == terse else f"System prompt {n}."
        body = {"name": variant, "systemPrompt": system, "config": {"model": model}}
        post(http, f"/experiments/{eid}/variants", body, 201)
    inputs = [
        {
            "key": f"case_{i:02d}",
            "content": f"question number {i}",
            "expectedOutput": f"Answer: question number {i}",
        }
        for i in range(10)
    ]
    post(http, f"/experiments/{eid}/inputs", {"inputs": inputs}, 201)
    base = f"/experiments/{eid}/evaluators"
    evaluators = [
        {"name": "complete", "type": "contains", "params": {"strings": ["Answer"]}},
        {
            "name": "mentions_input",
            "type": "regex",
            "params": {"pattern": r"question number \d+"},
        },
        {"name": "similar", "type": "similarity"},
        {"name": "judged", "type": "llm_judge", "params": {"model": VERDICT_MODEL}},
    ]
    for evaluator in evaluators:
        post(http, base, evaluator, 201)
    return eid


def run(served: GatewayProcess, eid: str, junit: Path) -> Any:
    return served.cli(
        "experiments",
        "run",
        eid,
        "--url",
        served.base_url,
        "--repeat",
        "2",
        "--concurrency",
        "8",
        "--yes",
        "--baseline",
        "v1",
        "--fail-on-regression",
        "--assert",
        "complete>=0.9",
        "--junit",
        str(junit),
        "--json",
        timeout=180,
    )


def test_a_matrix_scored_by_evaluators_and_a_judge_gates_ci_and_explains_itself(
    tmp_path: Path,
) -> None:
    with MockUpstream(script=JudgeScript()) as upstream:
        config = config_toml(upstream.base_url, judge_concurrency=4, judge_timeout_s=30)
        with GatewayProcess(tmp_path / "gw", config, log_level="warning") as served:
            http = httpx.Client(base_url=served.base_url, timeout=30.0)
            planted = build(http, "planted", terse="v2")
            clean = build(http, "clean", terse=None)

            failed = run(served, planted, tmp_path / "planted.xml")
            assert failed.returncode == 1, failed.stdout + failed.stderr
            passed = run(served, clean, tmp_path / "clean.xml")
            assert passed.returncode == 0, passed.stdout + passed.stderr
            summary = orjson.loads(passed.stdout)
            assert summary["passed"] is True

            # The JUnit report names what failed: the assertion and the regressions.
            suites = {
                s.attrib["name"]: s for s in ET.fromstring((tmp_path / "planted.xml").read_bytes())
            }
            failing = {
                case.attrib["name"]
                for suite in suites.values()
                for case in suite
                if case.find("failure") is not None
            }
            assert "v2 vs v1: complete" in failing and "v2 vs v1: judged" in failing
            assert not any(name.startswith("v3 vs v1") for name in failing)

            # Every cell was scored by every evaluator, the judge's calls captured as
            # spans of their own and their cost kept apart.
            cells = [
                c for c in http.get(f"/experiments/{planted}").json()["runs"] if c["variant_id"]
            ]
            assert len(cells) == 60 and {c["status"] for c in cells} == {"completed"}
            scores = http.get(f"/experiments/{planted}/scores").json()["data"]
            assert len(scores) == 60 * len(METRICS)
            assert all(s["error"] is None for s in scores), [s for s in scores if s["error"]]
            judged = [s for s in scores if s["metric_key"] == "judged"]
            assert all(s["judge_span_id"] and s["note"] for s in judged)
            judge_spans = http.get("/spans", params={"origin": "judge", "limit": 200}).json()
            assert len(judge_spans["data"]) >= 60

            results = http.get(f"/experiments/{planted}/results").json()
            names = {v["id"]: v["name"] for v in results["variants"]}
            by = {(names[c["variant"]], c["metric"]): c for c in results["comparisons"]}
            complete = by[("v2", "complete")]
            assert complete["outcome"] == "regression"
            assert complete["test"] == "mcnemar_exact"
            assert complete["p_value"] == pytest.approx(2 / 1024)  # 10 of 10 pairs one way
            assert {f["change"] for f in complete["flips"]} == {"pass_to_fail"}
            assert len(complete["flips"]) == 10
            assert complete["verdict"].startswith("v2 passes complete 100 points less often")
            assert by[("v2", "judged")]["outcome"] == "regression"
            assert by[("v3", "complete")]["outcome"] == "no_difference"
            assert by[("v3", "complete")]["verdict"].startswith("No detectable difference")
            assert "Holm" in results["corrections"]
            for variant in results["variants"]:
                assert (variant["cells"], variant["errors"]) == (20, 0)
                assert variant["judge_cost_usd"] is not None

            r = http.get(f"/experiments/{planted}/results", params={"format": "csv"})
            rows = list(csv.DictReader(io.StringIO(r.text)))
            assert {(row["variant"], row["metric"]) for row in rows} == {
                (v, m) for v, _ in VARIANTS for m in METRICS
            }
