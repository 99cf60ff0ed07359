"""``spanlab copy-db``: a SQLite database full of what the product stores (spans,
replay and matrix experiments, feedback, scores, evaluators, datasets, playground
sessions, keys, projects, events) copied to PostgreSQL and back, losing nothing: every
table's rows equal after the round trip, counts and samples checked on the way."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from click.testing import CliRunner, Result

from gateway.cli.main import cli
from gateway.store.transfer import SKIPPED, SKIPPED_PREFIXES
from tests.conftest import GatewayFactory
from tests.experiments_helpers import CHAT, capture
from tests.scores_helpers import a_run, matrix_cells


async def invoke(*args: str) -> Result:
    """The CLI in a thread of its own (its commands run their own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def fill(make_gateway: GatewayFactory) -> Path:
    """A database with a row in every table a user's work reaches."""
    gw = await make_gateway()
    for i in range(12):
        await capture(gw, {**CHAT, "user": f"u{i}"}, **{"x-thread-id": "copy-me"})
    done = await a_run(gw)
    url = f"/experiments/runs/{done['id']}"
    assert (await gw.client.post(f"{url}/feedback", json={"thumbsUp": True})).status_code == 200
    score = {"metric": "quality", "value": 0.75}
    assert (await gw.client.post(f"{url}/scores", json=score)).status_code == 201
    experiment, _ = await matrix_cells(gw)
    evaluator = {"type": "contains", "name": "has four", "params": {"strings": ["4"]}}
    r = await gw.client.post(f"/experiments/{experiment['id']}/evaluators", json=evaluator)
    assert r.status_code == 201, r.text
    r = await gw.client.post("/datasets", json={"name": "traffic"})
    assert r.status_code == 201, r.text
    dataset = r.json()["dataset"] if "dataset" in r.json() else r.json()
    r = await gw.client.post(
        f"/datasets/{dataset['id']}/items/from-spans", params={"thread": "copy-me"}, json={}
    )
    assert r.status_code in (200, 201), r.text
    r = await gw.client.post("/playground/complete", json={"model": "gpt-4o-mini", "prompt": "hi"})
    assert r.status_code == 200, r.text
    # A key with a limit, used: its usage is counted (quota_usage).
    r = await gw.client.post("/keys", json={"name": "app", "scopes": ["proxy"], "rpm": 100})
    assert r.status_code == 201, r.text
    r = await gw.client.post(
        "/v1/chat/completions", json=CHAT, headers={"x-spanlab-key": r.json()["key"]}
    )
    assert r.status_code == 200, r.text
    await gw.flush()
    await gw.state.pipeline.quotas.flush()
    db = Path(gw.state.settings.db)
    result = await invoke("keys", "create", "ci", "--scope", "read", "--db", str(db))
    assert result.exit_code == 0, result.output
    return db


def table_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every copied table's rows, in primary-key order (floats compared as written)."""
    out = {}
    with sqlite3.connect(db) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for name in names:
            if name in SKIPPED or name.startswith(SKIPPED_PREFIXES):
                continue
            info = conn.execute(f"SELECT name, pk FROM pragma_table_info('{name}')").fetchall()
            key = ", ".join(n for n, pk in sorted((r for r in info if r[1]), key=lambda r: r[1]))
            columns = ", ".join(f'"{n}"' for n, _ in info)
            out[name] = conn.execute(f"SELECT {columns} FROM {name} ORDER BY {key}").fetchall()
    return out


async def test_a_full_database_goes_to_postgresql_and_back_unchanged(
    make_gateway: GatewayFactory, pg_cluster: Any, tmp_path: Path
) -> None:
    source = await fill(make_gateway)
    before = table_rows(source)
    empty = [name for name, rows in before.items() if not rows]
    # Only what this test's gateway has no route to fill may stay empty.
    assert set(empty) <= {"experiment_runs_archive"}, empty
    target = pg_cluster.new_database()
    there = await invoke("copy-db", str(source), target, "--json")
    assert there.exit_code == 0, there.output
    report = {t["table"]: t for t in orjson.loads(there.stdout)}
    assert set(report) == set(before)
    for name, rows in before.items():
        assert report[name]["read"] == report[name]["in_target"] == len(rows), name
        batches = -(-len(rows) // 2000)
        assert report[name]["sampled"] == min(len(rows), 2 * batches, 50), name
        assert report[name]["mismatches"] == []
    back = tmp_path / "back.db"
    home = await invoke("copy-db", target, str(back))
    assert home.exit_code == 0, home.output
    assert table_rows(back) == before
    # Run again (an interrupted copy resumed): nothing doubles.
    again = await invoke("copy-db", str(source), target, "--json")
    assert again.exit_code == 0, again.output
    assert all(t["in_target"] == t["read"] for t in orjson.loads(again.stdout))
    # A target whose row differs from the source's is not papered over.
    conn = await asyncpg.connect(target)
    try:
        await conn.execute(
            "UPDATE spans SET request_model = 'changed'"
            " WHERE span_id = (SELECT MIN(span_id) FROM spans)"
        )
    finally:
        await conn.close()
    differs = await invoke("copy-db", str(source), target)
    assert differs.exit_code == 1
    assert "difference: spans" in differs.output and "'changed'" in differs.output


def test_copy_db_refuses_the_same_database_and_a_stranger(tmp_path: Path) -> None:
    db = str(tmp_path / "a.db")
    same = CliRunner().invoke(cli, ["copy-db", db, db])
    assert same.exit_code == 1 and "the same database" in same.output
