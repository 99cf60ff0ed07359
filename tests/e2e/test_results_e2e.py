"""Results end to end: a real ``spanlab serve`` and the scripted loopback upstream; a
3 variants x 10 inputs x 2 repetitions matrix scored under four metrics, read back as
results (JSON and CSV) with the verdicts; and ``spanlab experiments results`` gating
that run as a real process: exit 1 on the planted regression, 0 without it.

The scores are written here from each cell's output, through the evaluation store on
the gateway's database (as an evaluator writes them), so the figures are known exactly
(tests/e2e/test_evaluation_e2e.py runs the real evaluators and judge): three checks (complete
answer, mentions its input, length in words, lower is better) and a judge-like
correctness score carrying a judge cost. The planted regression: variant v2 asks to be
terse, so the upstream answers "Briefly: ..." instead of "Answer: ...", which fails
the ``complete`` check on every input."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.store.stores import sqlite_stores
from tests.e2e.experiments_support import Served, spanlab_serve
from tests.experiments_upstream import ScriptedUpstream, serve_in_thread
from tests.results_helpers import define, score

pytestmark = pytest.mark.e2e

VARIANTS = (("v1", "gpt-4o-mini"), ("v2", "gpt-4o"), ("v3", "gpt-4.1"))
JUDGE_COST = 0.0001


def build(http: httpx.Client, name: str, terse: str | None) -> str:
    eid: str = http.post("/experiments", json={"name": name}).json()["id"]
    for n, (variant, model) in enumerate(VARIANTS, start=1):
        system = "Be terse." if variant == terse else f"System prompt {n}."
        body = {"name": variant, "systemPrompt": system, "config": {"model": model}}
        assert http.post(f"/experiments/{eid}/variants", json=body).status_code == 201
    inputs = [{"key": f"case_{i:02d}", "content": f"question number {i}"} for i in range(10)]
    assert http.post(f"/experiments/{eid}/inputs", json={"inputs": inputs}).status_code == 201
    r = http.post(f"/experiments/{eid}/run", json={"repetitions": 2, "concurrency": 8})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while http.get(f"/experiments/{eid}/progress").json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return eid


def correctness(cell: dict[str, Any]) -> float:
    """A judge's score stand-in: full answers 0.8-0.98 by input, terse ones 0.5."""
    text = str(cell["output_text"])
    index = int(cell["config"]["input_key"][-2:])
    return (0.8 + 0.02 * index) if text.startswith("Answer") else 0.5


def score_all(served: Served, cells: list[dict[str, Any]]) -> None:
    async def main() -> None:
        stores = sqlite_stores(str(served.db))
        await stores.open()
        try:
            store = stores.evaluation
            complete = await define(store, "complete", kind="boolean")
            mentions = await define(store, "mentions_input", kind="boolean")
            length = await define(store, "length", direction="lower")
            judged = await define(store, "correctness")
            await score(store, cells, complete,
                        lambda c: float(str(c["output_text"]).startswith("Answer")),
                        source="evaluator:complete")  # fmt: skip
            await score(store, cells, mentions,
                        lambda c: float(c["request"]["messages"][-1]["content"]
                                        in str(c["output_text"])),
                        source="evaluator:mentions")  # fmt: skip
            await score(store, cells, length, lambda c: float(len(str(c["output_text"]).split())),
                        source="evaluator:length")  # fmt: skip
            await score(store, cells, judged, correctness, source="evaluator:judge",
                        judge_cost_usd=JUDGE_COST)  # fmt: skip
        finally:
            await stores.close()

    asyncio.run(main())


def test_results_verdicts_csv_and_cli_gating_through_a_real_gateway(tmp_path: Path) -> None:
    upstream = ScriptedUpstream()
    with (
        serve_in_thread(upstream) as url,
        spanlab_serve(tmp_path, url) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        planted = build(http, "planted", terse="v2")
        clean = build(http, "clean", terse=None)
        for eid in (planted, clean):
            cells = http.get(f"/experiments/{eid}").json()["runs"]
            assert len(cells) == 60 and all(c["status"] == "completed" for c in cells)
            score_all(served, cells)

        r = http.get(f"/experiments/{planted}/results")
        assert r.status_code == 200, r.text
        data = r.json()
        names = {v["id"]: v["name"] for v in data["variants"]}
        assert [v["name"] for v in data["variants"]] == ["v1", "v2", "v3"]
        for v in data["variants"]:
            assert (v["cells"], v["errors"], v["completed"]) == (20, 0, 20)
            assert v["judge_cost_usd"] == pytest.approx(20 * JUDGE_COST)
            assert v["metrics"]["complete"]["n_inputs"] == 10
            assert v["latency_p50_ms"] is not None
        by = {(names[c["variant"]], c["metric"]): c for c in data["comparisons"]}
        assert len(by) == 8 and all(c["comparisons"] == 8 for c in by.values())
        worse = by[("v2", "complete")]
        assert worse["outcome"] == "regression" and worse["test"] == "mcnemar_exact"
        assert worse["p_value"] == pytest.approx(2 / 1024)  # 10 discordant pairs, all one way
        assert len(worse["flips"]) == 10
        assert all(f["change"] == "pass_to_fail" for f in worse["flips"])
        assert worse["verdict"].startswith(
            "v2 passes complete 100 points less often than v1 (0% against 100%)"
        )
        # "Briefly: ..." has as many words as "Answer: ...": no difference in length,
        # and with no spread at all there is no detectable size to quote.
        length = by[("v2", "length")]
        assert length["direction"] == "lower" and length["outcome"] == "no_difference"
        assert length["verdict"] == (
            "No detectable difference between v2 and v1 on length over 10 inputs."
        )
        assert by[("v2", "correctness")]["outcome"] == "regression"
        same = by[("v3", "complete")]
        assert same["outcome"] == "no_difference"
        assert same["verdict"].startswith("No detectable difference between v3 and v1")
        assert "Holm" in data["corrections"]

        r = http.get(f"/experiments/{planted}/results", params={"format": "csv"})
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 12
        assert {(row["variant"], row["metric"]) for row in rows} == {
            (v, m)
            for v, _ in VARIANTS
            for m in ("complete", "correctness", "length", "mentions_input")
        }
        assert (
            next(row for row in rows if (row["variant"], row["metric"]) == ("v2", "complete"))[
                "outcome"
            ]
            == "regression"
        )

        gate = ["--url", served.url, "--baseline", "v1", "--fail-on-regression"]
        report = tmp_path / "junit.xml"
        failed = served.cli("experiments", "results", planted, *gate, "--junit", str(report))
        assert failed.returncode == 1, failed.stdout + failed.stderr
        suites = {s.attrib["name"]: s for s in ET.fromstring(report.read_bytes())}
        regressions = suites["spanlab.regressions"]
        assert int(regressions.attrib["tests"]) == 8
        failing = [c.attrib["name"] for c in regressions if c.find("failure") is not None]
        assert "v2 vs v1: complete" in failing
        passed = served.cli(
            "experiments", "results", clean, *gate, "--assert", "complete>=0.9", "--json"
        )
        assert passed.returncode == 0, passed.stdout + passed.stderr
        summary = orjson.loads(passed.stdout)
        assert summary["passed"] and len(summary["checks"]) == 1 + 3 + 8
