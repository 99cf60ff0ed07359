"""``spanlab datasets ...`` through click's CliRunner, with the gateway in process (no
--url) on a database that captured calls from a real upstream on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result

from tests.experiments_upstream import ScriptedUpstream, serve_in_thread
from tests.test_experiments_cli import QUESTION, Setup

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


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


def test_create_list_show_and_delete(setup: Setup) -> None:
    setup.capture()  # the database exists
    created = json_of(setup.invoke("datasets", "create", "qa", "--description", "d", "--json"))
    assert created["name"] == "qa" and created["version"] == 1
    listed = json_of(setup.invoke("datasets", "list", "--json"))
    assert [(d["id"], d["item_count"]) for d in listed] == [(created["id"], 0)]
    table = ok(setup.invoke("datasets", "list")).stdout
    assert created["id"] in table and "qa" in table
    shown = json_of(setup.invoke("datasets", "show", "qa", "--json"))  # by name
    assert (shown["id"], shown["items"]) == (created["id"], [])
    missing = setup.invoke("datasets", "show", "nope")
    assert missing.exit_code == 1 and "No dataset with id or name 'nope'" in missing.output
    assert "Deleted" in ok(setup.invoke("datasets", "delete", created["id"], "--yes")).stdout
    assert json_of(setup.invoke("datasets", "list", "--json")) == []


def test_from_spans_with_filters_and_a_sample_then_export_and_import(
    setup: Setup, tmp_path: Path
) -> None:
    spans = [
        setup.capture({**QUESTION, "tools": TOOLS}, **{"x-thread-id": "cli"}) for _ in range(4)
    ]
    setup.capture(QUESTION, **{"x-thread-id": "other"})
    created = json_of(setup.invoke("datasets", "create", "traffic", "--json"))
    result = json_of(
        setup.invoke(
            "datasets", "from-spans", "traffic", "--thread", "cli", "--sample", "3",
            "--seed", "4", "--json",
        )
    )  # fmt: skip
    assert (result["matched"], result["added"], result["version"]) == (4, 3, 2)
    assert {item["key"] for item in result["data"]} < set(spans)
    for item in result["data"]:
        assert item["request"]["tools"] == TOOLS
        assert item["expected_output"]["tool_calls"][0]["function"]["name"] == "lookup"
    text = ok(setup.invoke("datasets", "from-spans", created["id"], "--thread", "cli")).stdout
    assert "4 spans matched; 1 added, 3 skipped" in text

    out = tmp_path / "traffic.jsonl"
    ok(setup.invoke("datasets", "export", "traffic", "-o", str(out)))
    lines = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4
    v2 = ok(setup.invoke("datasets", "export", "traffic", "--version", "2")).stdout
    assert len(v2.splitlines()) == 3

    imported = json_of(setup.invoke("datasets", "import", str(out), "--name", "copy", "--json"))
    assert (imported["added"], imported["dataset"]["name"]) == (4, "copy")
    again = tmp_path / "again.jsonl"
    ok(setup.invoke("datasets", "export", "copy", "-o", str(again)))
    assert again.read_text() == out.read_text()

    shown = ok(setup.invoke("datasets", "show", "copy")).stdout
    assert "lookup(…)" in shown and "items of version 2" in shown


def test_a_bad_import_fails_with_the_row_and_leaves_no_dataset_behind(
    setup: Setup, tmp_path: Path
) -> None:
    setup.capture()
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nA,1\nB\n", encoding="utf-8")
    result = setup.invoke("datasets", "import", str(bad), "--expected", "answer")
    assert result.exit_code == 1
    assert "Row 3" in result.output
    assert json_of(setup.invoke("datasets", "list", "--json")) == []
    good = tmp_path / "good.csv"
    good.write_text("question,answer\nA,1\nB,2\n", encoding="utf-8")
    text = ok(setup.invoke("datasets", "import", str(good), "--expected", "answer")).stdout
    assert "2 added" in text
    [dataset] = json_of(setup.invoke("datasets", "list", "--json"))
    assert dataset["name"] == "good"
    dup = setup.invoke("datasets", "import", str(good), "--into", "good", "--expected", "answer")
    assert dup.exit_code == 1 and "already in the dataset" in dup.output
    skipped = setup.invoke(
        "datasets", "import", str(good), "--into", "good", "--on-conflict", "skip",
        "--expected", "answer",
    )  # fmt: skip
    assert "0 added, 2 skipped" in ok(skipped).stdout
    unknown = tmp_path / "items.txt"
    unknown.write_text("x", encoding="utf-8")
    assert setup.invoke("datasets", "import", str(unknown)).exit_code == 2
