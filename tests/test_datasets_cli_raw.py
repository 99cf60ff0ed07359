"""``spanlab datasets import`` sends the file as is (``text/csv`` or JSON Lines, its
options in the query string): a file that fits in ``max_body_bytes`` imports, where
the same file escaped into a JSON body would not have fitted."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.experiments_upstream import ScriptedUpstream, serve_in_thread
from tests.test_datasets_cli import json_of
from tests.test_experiments_cli import Setup

LIMIT = 64 * 1024


def test_a_file_near_the_body_limit_imports_as_is(tmp_path: Path) -> None:
    upstream = ScriptedUpstream(chunk_delay=0.0)
    with serve_in_thread(upstream) as url:
        setup = Setup(tmp_path, upstream, url)
        setup.write_config(url, max_body_bytes=LIMIT)
        setup.capture()  # the database exists
    # Quotes and backslashes: JSON-escaped, the file grows by about half.
    lines = [
        orjson.dumps({"key": f"k{i}", "variables": {"q": f'say "{i}" \\ "again"' * 8}})
        for i in range(250)
    ]
    content = b"\n".join(lines) + b"\n"
    assert len(content) < LIMIT < len(orjson.dumps({"content": content.decode()}))
    path = tmp_path / "quoted.jsonl"
    path.write_bytes(content)
    imported = json_of(setup.invoke("datasets", "import", str(path), "--json"))
    assert imported["added"] == 250
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("id,q,answer\na,one,1\nb,two,2\n", encoding="utf-8")
    args = ("--into", "quoted", "--key", "id", "--expected", "answer", "--json")
    imported = json_of(setup.invoke("datasets", "import", str(csv_path), *args))
    assert imported["added"] == 2
    shown = json_of(setup.invoke("datasets", "show", "quoted", "--json", "--limit", "1000"))
    by_key = {i["key"]: i for i in shown["items"]}
    assert (by_key["b"]["variables"], by_key["b"]["expected_output"]) == ({"q": "two"}, "2")
    assert by_key["k7"]["variables"]["q"] == 'say "7" \\ "again"' * 8
