"""``spanlab experiments run ID --evaluator module:function``: Python evaluators run in
the CLI's process over the run's finished cells and post their scores back (source
``evaluator:<module:function>``), through CliRunner with the gateway in process and
the scripted upstream on loopback (the fixtures of tests/test_matrix_cli.py)."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.experiments_upstream import config_toml, serve_in_thread
from tests.test_matrix_cli import Setup, Upstream
from tests.upstream.judge import SLOW_MODEL, JudgeScript

CHECKS = """
    from gateway.cli.evaluators import EvalResult

    def mentions_one(cell):
        return "one" in cell.output

    def words(cell):
        return EvalResult(len(cell.output.split()), note=f"{cell.variant} on {cell.input}")

    def expected_seen(cell):
        return {"value": cell.expected == "1", "note": repr(cell.expected), "metric": "exp"}

    def broken(cell):
        raise ValueError("cannot judge " + cell.input)

    async def later(cell):
        return 0.25 if cell.latency_ms and cell.output_tokens else 0.0

    def text(cell):
        return "not a score"
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    module = tmp_path / "mychecks.py"
    module.write_text(textwrap.dedent(CHECKS), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "mychecks", raising=False)
    upstream = Upstream(chunk_delay=0.0)
    with serve_in_thread(upstream) as url:
        yield Setup(tmp_path, upstream, url)


def scores(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM scores ORDER BY metric_key, note")]
    for row in rows:
        row["error"] = orjson.loads(row["error"]) if row["error"] else None
    return rows


def test_python_evaluators_score_the_run_in_the_cli_process(setup: Setup) -> None:
    exp, _ = setup.matrix({"a": "gpt-4o-mini"}, [])
    setup.api(
        "POST",
        f"/experiments/{exp}/inputs",
        {
            "inputs": [
                {"key": "k1", "content": "one", "expectedOutput": "1"},
                {"key": "k2", "content": "two"},
            ]
        },
    )
    r = setup.invoke(
        "experiments", "run", exp, "--yes",
        "--evaluator", "mychecks:mentions_one",
        "--evaluator", "mychecks:words",
        "--evaluator", "mychecks:expected_seen",
        "--evaluator", "mychecks:broken",
        "--evaluator", "mychecks:later",
        "--evaluator", "mychecks:text",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "evaluator mychecks:mentions_one: 1/2 passed, 0 error(s)" in r.output
    assert "evaluator mychecks:broken: no score, 2 error(s)" in r.output
    found = scores(setup.db)
    assert len(found) == 12
    by = {(s["source"], s["metric_key"], s["note"]): s for s in found}
    sources = {s["source"] for s in found}
    assert sources == {
        f"evaluator:mychecks:{name}"
        for name in ("mentions_one", "words", "expected_seen", "broken", "later", "text")
    }
    mentions = sorted(s["value"] for s in found if s["metric_key"] == "mentions_one")
    assert mentions == [0.0, 1.0]
    # The answer: "Answer: one (model gpt-4o-mini, temperature 1.0)" -> 6 words
    words = {s["note"]: s["value"] for s in found if s["metric_key"] == "words"}
    assert words == {"a on one": 6.0, "a on two": 6.0}
    exp_scores = {s["note"]: s["value"] for s in found if s["metric_key"] == "exp"}
    assert exp_scores == {"'1'": 1.0, "None": 0.0}
    assert ("evaluator:mychecks:later", "later", None) in by
    assert {s["value"] for s in found if s["metric_key"] == "later"} == {0.25}
    errors = [s for s in found if s["metric_key"] in ("broken", "text")]
    assert all(
        s["value"] is None and s["error"]["type"] == "python_evaluator_error" for s in errors
    )
    assert any("cannot judge one" in s["error"]["message"] for s in errors)
    assert any("not a score" in s["error"]["message"] for s in errors)
    with sqlite3.connect(setup.db) as conn:
        kinds = dict(conn.execute("SELECT key, kind FROM metric_definitions").fetchall())
    assert kinds["mentions_one"] == "boolean" and kinds["words"] == "numeric"

    # a second run scores its own cells; the first run's scores stay
    r = setup.invoke("experiments", "run", exp, "--yes", "--evaluator", "mychecks:mentions_one")
    assert r.exit_code == 0, r.output
    assert len(scores(setup.db)) == 14


def test_a_bad_evaluator_is_a_usage_error_before_anything_runs(setup: Setup) -> None:
    exp, _ = setup.matrix({"a": "gpt-4o-mini"}, ["one"])
    for spec, message in (
        ("mychecks", "not module:function"),
        ("no_such_module_xyz:f", "cannot import"),
        ("mychecks:missing", "has no 'missing'"),
    ):
        r = setup.invoke("experiments", "run", exp, "--yes", "--evaluator", spec)
        assert r.exit_code == 2 and message in r.output, r.output
    assert setup.upstream.requests == []


def test_the_run_waits_for_the_gateways_own_evaluators(tmp_path: Path) -> None:
    """A judge configured on the experiment scores each cell after the run's last
    cell ends: the command waits for it (the in-process gateway would stop under it)."""
    judge = JudgeScript(slow_s=1.0)
    with serve_in_thread(judge) as url:
        setup = Setup(tmp_path, judge, url)  # type: ignore[arg-type]
        setup.config.write_text(config_toml(url, judge_timeout_s=10.0), encoding="utf-8")
        exp, _ = setup.matrix({"a": "gpt-4o-mini"}, [])
        inputs = [
            {"key": "fr", "content": "Paris is lovely", "expectedOutput": "Paris"},
            {"key": "it", "content": "Berlin is lovely", "expectedOutput": "Rome"},
        ]
        setup.api("POST", f"/experiments/{exp}/inputs", {"inputs": inputs})
        body = {"name": "judge", "type": "llm_judge", "params": {"model": SLOW_MODEL}}
        setup.api("POST", f"/experiments/{exp}/evaluators", body)
        r = setup.invoke("experiments", "run", exp, "--yes")
        assert r.exit_code == 0, r.output
        assert "waiting for the evaluators to score" in r.output
        found = scores(setup.db)
        assert sorted(s["value"] for s in found) == [0.0, 1.0]
        assert all(s["error"] is None and s["source"] == "evaluator:judge" for s in found)
        assert len(judge.judge_calls) == 2
