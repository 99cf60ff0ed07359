"""The LLM judge end to end: a real ``spanlab serve`` in front of the suite's fake
upstream on loopback, scripted as a judge (`tests.upstream.judge`): a good verdict, a
garbage verdict and a judge that times out, each scoring the matrix's cells after
they finish; then a re-run that calls the judge again but not the model."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.experiments_upstream import config_toml
from tests.serve import GatewayProcess
from tests.upstream.judge import GARBAGE_MODEL, SLOW_MODEL, VERDICT_MODEL, JudgeScript
from tests.upstream.server import MockUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def post(http: httpx.Client, path: str, body: Any, status: int) -> Any:
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def wait_for(http: httpx.Client, eid: str, done: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        progress: dict[str, Any] = http.get(f"/experiments/{eid}/evaluate").json()
        if done(progress):
            return progress
        assert time.monotonic() < deadline, progress
        time.sleep(0.05)


def scores(db: Path, eid: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT * FROM scores WHERE experiment_id = ? ORDER BY metric_key, input_id", (eid,)
        ).fetchall()
    out = [dict(row) for row in rows]
    for row in out:
        row["error"] = orjson.loads(row["error"]) if row["error"] else None
    return out


def test_the_judge_through_a_real_serve(tmp_path: Path) -> None:
    judge = JudgeScript(slow_s=8.0)
    with MockUpstream(script=judge) as upstream:
        config = config_toml(upstream.base_url, judge_timeout_s=2.5, judge_concurrency=2)
        with GatewayProcess(tmp_path, config, log_level="warning") as served:
            http = httpx.Client(base_url=served.base_url, timeout=10.0)
            eid = post(http, "/experiments", {"name": "judged"}, 201)["id"]
            post(
                http,
                f"/experiments/{eid}/variants",
                {"name": "mini", "config": {"model": "gpt-4o-mini"}},
                201,
            )
            inputs = [
                {"key": "fr", "content": "Paris is lovely", "expectedOutput": "Paris"},
                {"key": "it", "content": "Berlin is lovely", "expectedOutput": "Rome"},
            ]
            stored = post(http, f"/experiments/{eid}/inputs", {"inputs": inputs}, 201)["inputs"]
            keys = {i["id"]: i["key"] for i in stored}
            base = f"/experiments/{eid}/evaluators"
            good = post(
                http,
                base,
                {"name": "correct", "type": "llm_judge", "params": {"model": VERDICT_MODEL}},
                201,
            )["evaluator"]
            post(
                http,
                base,
                {"name": "garbage", "type": "llm_judge", "params": {"model": GARBAGE_MODEL}},
                201,
            )
            post(
                http,
                base,
                {"name": "slow", "type": "llm_judge", "params": {"model": SLOW_MODEL}},
                201,
            )

            run_id = post(http, f"/experiments/{eid}/run", {}, 202)["run_id"]
            deadline = time.monotonic() + 20
            while http.get(f"/experiments/{eid}/progress").json()["status"] == "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            progress = http.get(f"/experiments/{eid}/progress").json()
            assert progress["completed"] == 2 and progress["failed"] == 0  # judged apart
            wait_for(http, eid, lambda p: p["pending_cells"] == 0)
            found = scores(served.db, eid)
            by = {(s["metric_key"], keys[s["input_id"]]): s for s in found}
            assert len(found) == 6

            # a good verdict: the score and the judge's reason; the judge's cost apart
            assert by[("correct", "fr")]["value"] == 1.0
            assert by[("correct", "it")]["value"] == 0.0
            assert by[("correct", "fr")]["note"] == "The answer names Paris."
            assert by[("correct", "it")]["note"] == "The answer does not name Rome."
            fr = by[("correct", "fr")]
            assert fr["error"] is None and fr["judge_cost_usd"] > 0
            assert fr["source"] == "evaluator:correct" and fr["evaluator_id"] == good["id"]
            span = http.get(f"/spans/{fr['judge_span_id']}").json()
            assert span["origin"] == "judge" and span["request_model"] == VERDICT_MODEL
            assert span["attributes"]["spanlab.judge.run.id"] == fr["run_id"]
            assert span["attributes"]["spanlab.judge.experiment.id"] == eid
            assert span["cost_usd"] == pytest.approx(fr["judge_cost_usd"])
            assert span["request"]["response_format"]["json_schema"]["name"] == "verdict"
            cell = http.get(f"/experiments/{eid}/runs/{fr['run_id']}").json()
            assert cell["cost_usd"] != fr["judge_cost_usd"]
            # the judge's calls are not the app's traffic
            apps = http.get("/spans", params={"origin": "app"}).json()["data"]
            assert apps == []

            # garbage and timeout: evaluator errors, never a low score
            for key in ("fr", "it"):
                garbage, slow = by[("garbage", key)], by[("slow", key)]
                assert garbage["value"] is None and garbage["error"]["type"] == "judge_unparseable"
                assert "reads well" in garbage["error"]["message"]
                assert slow["value"] is None and slow["error"]["type"] == "judge_timeout"

            # re-run the good judge: the judge is called again, the model is not
            model_calls = len(judge.requests)  # the judge's own calls are apart
            judge_calls = len(judge.judge_calls)
            job = post(
                http,
                f"/experiments/{eid}/evaluate",
                {"evaluatorIds": [good["id"]], "matrixRunId": run_id},
                202,
            )["job"]
            assert job["total"] == 2 and job["status"] == "running"
            final = wait_for(http, eid, lambda p: p["job"]["status"] != "running")["job"]
            assert final["status"] == "completed" and final["scores"] == 2 and final["errors"] == 0
            assert len(judge.judge_calls) == judge_calls + 2
            assert len(judge.requests) == model_calls == 2
            again = scores(served.db, eid)
            assert len(again) == 6
            assert {s["id"] for s in again if s["metric_key"] == "correct"}.isdisjoint(
                {s["id"] for s in found if s["metric_key"] == "correct"}
            )
