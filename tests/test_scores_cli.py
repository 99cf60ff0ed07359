"""``spanlab scores ...`` and ``spanlab metrics ...`` through click's CliRunner, with
the gateway in process (no --url) on a database that captured a call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result

from tests.experiments_upstream import ScriptedUpstream, serve_in_thread
from tests.test_experiments_cli import Setup


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    upstream = ScriptedUpstream(chunk_delay=0.0)
    with serve_in_thread(upstream) as url:
        yield Setup(tmp_path, upstream, url)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def json_of(result: Result) -> Any:
    return orjson.loads(ok(result).stdout)


def test_metrics_create_list_and_delete(setup: Setup) -> None:
    setup.capture()  # the database exists
    made = json_of(
        setup.invoke(
            "metrics",
            "create",
            "tone",
            "--kind",
            "categorical",
            "--category",
            "rude",
            "--category",
            "kind",
            "--json",
        )
    )
    assert made["categories"] == ["rude", "kind"]
    ok(setup.invoke("metrics", "create", "latency", "--min", "0", "--lower-is-better"))
    listed = json_of(setup.invoke("metrics", "list", "--json"))
    assert [(m["key"], m["direction"]) for m in listed] == [
        ("latency", "lower"),
        ("tone", "higher"),
    ]
    table = ok(setup.invoke("metrics", "list")).stdout
    assert "rude, kind" in table and "0 .. inf" in table
    bad = setup.invoke("metrics", "create", "x", "--kind", "categorical")
    assert bad.exit_code == 1 and "categories" in bad.output
    assert "0 score(s)" in ok(setup.invoke("metrics", "delete", "tone")).stdout
    assert [m["key"] for m in json_of(setup.invoke("metrics", "list", "--json"))] == ["latency"]


def test_scores_add_on_a_span_and_list_by_experiment(setup: Setup) -> None:
    span_id = setup.capture()
    score = json_of(
        setup.invoke(
            "scores",
            "add",
            "--span",
            span_id,
            "--metric",
            "polite",
            "--value",
            "true",
            "--note",
            "said please",
            "--json",
        )
    )
    assert (score["value"], score["span_id"], score["source"]) == (1.0, span_id, "api")
    out = ok(setup.invoke("scores", "add", "--span", span_id, "--metric", "len", "--value", "3"))
    assert "len = 3" in out.stdout
    refused = setup.invoke("scores", "add", "--span", span_id, "--metric", "len", "--value", "x")
    assert refused.exit_code == 1 and "numeric" in refused.output
    both = setup.invoke("scores", "add", "--metric", "len", "--value", "1")
    assert both.exit_code == 2
    # A span of no experiment: the experiment listing is a 404.
    missing = setup.invoke("scores", "list", "exp_nope")
    assert missing.exit_code == 1 and "exp_nope" in missing.output


def test_scores_list_an_experiments_scores(setup: Setup) -> None:
    span_id = setup.capture()
    made = json_of(setup.invoke("replay", span_id, "--json"))
    exp_id, run_id = made["experiment"]["id"], made["run"]["id"]
    for metric, value in (("correctness", "0.75"), ("tone", "1")):
        ok(setup.invoke("scores", "add", "--run", run_id, "--metric", metric, "--value", value))
    listed = json_of(setup.invoke("scores", "list", exp_id, "--json"))
    assert [(s["metric_key"], s["value"], s["run_id"]) for s in listed] == [
        ("correctness", 0.75, run_id),
        ("tone", 1.0, run_id),
    ]
    only = json_of(setup.invoke("scores", "list", exp_id, "--metric", "tone", "--json"))
    assert [s["metric_key"] for s in only] == ["tone"]
    table = ok(setup.invoke("scores", "list", exp_id)).stdout
    assert "correctness" in table and "0.75" in table and run_id in table
