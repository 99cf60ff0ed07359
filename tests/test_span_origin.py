"""A span's origin: replays are marked (``origin = experiment``) by the writer, kept
apart by the filters, /stats and the thread totals, and rows stored before the
column existed are marked by the migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.capture.origin import EXPERIMENT_ATTRIBUTE, origin_from_json, span_origin
from gateway.capture.span_table import SPAN_COLUMNS, outline_row, span_rows
from gateway.experiments.runner import ATTR_EXPERIMENT
from gateway.store.database import SQLiteDatabase
from gateway.store.migrations import available_migrations
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT, capture, create, run
from tests.fakes import FakeUpstream


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream())
    return gateway


async def replayed(gw: Gateway, thread: str = "thread-r") -> tuple[dict[str, Any], dict[str, Any]]:
    """A call in ``thread`` and one replay of it; their stored spans."""
    original = await capture(gw, CHAT, **{"x-thread-id": thread})
    experiment = await create(
        gw, original_span_id=original["span_id"], modified_request=original["request"]
    )
    done = await run(gw, experiment["id"])
    assert done["status"] == "completed", done
    return original, await gw.span(done["result_span_id"])


async def ids(gw: Gateway, path: str) -> set[str]:
    response = await gw.client.get(path)
    assert response.status_code == 200, response.text
    return {s["span_id"] for s in response.json()["data"]}


def test_the_runner_sets_the_attribute_the_origin_is_derived_from() -> None:
    assert ATTR_EXPERIMENT == EXPERIMENT_ATTRIBUTE
    assert span_origin({ATTR_EXPERIMENT: "e1"}) == "experiment"
    assert span_origin({"translation": {}}) == span_origin(None) == "app"


async def test_a_replay_is_stored_with_origin_experiment(gw: Gateway) -> None:
    original, replay = await replayed(gw)
    assert original["origin"] == "app"
    assert replay["origin"] == "experiment"
    listed = (await gw.client.get("/spans")).json()["data"]
    assert {s["span_id"]: s["origin"] for s in listed} == {
        original["span_id"]: "app",
        replay["span_id"]: "experiment",
    }


async def test_span_lists_filter_by_origin(gw: Gateway) -> None:
    original, replay = await replayed(gw)
    both = {original["span_id"], replay["span_id"]}
    assert await ids(gw, "/spans") == both
    assert await ids(gw, "/spans?origin=app") == {original["span_id"]}
    assert await ids(gw, "/spans?origin=experiment") == {replay["span_id"]}
    assert await ids(gw, "/spans?origin=app,experiment") == both
    assert await ids(gw, "/spans?exclude_origin=experiment") == {original["span_id"]}
    assert await ids(gw, "/spans?exclude_origin=app") == {replay["span_id"]}
    assert await ids(gw, "/spans?origin=playground") == set()
    # The thread's own list (the thread page) still holds both, each marked.
    assert await ids(gw, "/spans?thread=thread-r") == both


@pytest.mark.parametrize(
    "query", ["origin=APP", "origin=,", "exclude_origin=a%20b", "origin=" + "x" * 40]
)
async def test_a_malformed_origin_is_a_400(gw: Gateway, query: str) -> None:
    response = await gw.client.get(f"/spans?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] in ("origin", "exclude_origin")
    assert (await gw.client.get(f"/stats?{query}")).status_code == 400


async def test_stats_totals_leave_replays_out_when_asked(gw: Gateway) -> None:
    await replayed(gw)
    every = (await gw.client.get("/stats?group_by=total")).json()["data"]
    apps = (await gw.client.get("/stats?group_by=total&exclude_origin=experiment")).json()
    assert len(every) == 1 and every[0]["group"] is None
    assert every[0]["calls"] == 2
    assert apps["group_by"] == "total"
    assert [row["calls"] for row in apps["data"]] == [1]
    assert apps["data"][0]["total_tokens"] == every[0]["total_tokens"] / 2
    by_origin = (await gw.client.get("/stats?group_by=model&origin=experiment")).json()
    assert [row["calls"] for row in by_origin["data"]] == [1]


async def test_stats_by_minute_and_the_times_of_a_group(gw: Gateway) -> None:
    original, replay = await replayed(gw)
    rows = (await gw.client.get("/stats?group_by=minute")).json()["data"]
    assert sum(r["calls"] for r in rows) == 2
    for row in rows:
        assert len(row["group"]) == len("2026-12-02T14:05:00Z") and row["group"].endswith(":00Z")
        assert row["first_time"] <= row["last_time"]
    total = (await gw.client.get("/stats?group_by=total")).json()["data"][0]
    assert total["first_time"] == original["start_time"]
    assert total["last_time"] == replay["start_time"]
    none = (await gw.client.get("/stats?group_by=total&origin=playground")).json()["data"]
    assert none == []


async def test_thread_totals_count_replays_apart(gw: Gateway) -> None:
    original, replay = await replayed(gw, thread="thread-t")
    threads = (await gw.client.get("/threads")).json()["data"]
    assert len(threads) == 1
    thread = threads[0]
    assert thread["thread_id"] == "thread-t"
    assert thread["calls"] == 1
    assert thread["replays"] == 1
    assert thread["errors"] == 0
    assert thread["total_tokens"] == original["usage"]["total_tokens"]
    assert replay["usage"]["total_tokens"]  # a replay with tokens, not counted above
    assert thread["cost_usd"] == original["cost_usd"]
    # Its activity is the app's: a replay made later does not move the thread.
    assert thread["last_activity"] == original["start_time"]


async def test_a_thread_without_replays_says_zero(gw: Gateway) -> None:
    await capture(gw, CHAT, **{"x-thread-id": "plain"})
    await capture(gw, CHAT, **{"x-thread-id": "plain"})
    thread = (await gw.client.get("/threads")).json()["data"][0]
    assert (thread["calls"], thread["replays"], thread["total_tokens"]) == (2, 0, 30)


async def test_listing_replays_uses_the_partial_index(tmp_path: Path) -> None:
    from gateway.store.spans import SpanFilter

    db = SQLiteDatabase(str(tmp_path / "plan.db"))
    await db.open()
    try:
        where, params = SpanFilter(origins=("experiment",)).where()
        plan = await db.fetch(
            f"EXPLAIN QUERY PLAN SELECT span_id FROM spans WHERE {where}"
            " ORDER BY start_us DESC, span_id DESC LIMIT 50",
            params,
        )
        assert any("spans_not_app" in str(tuple(row)) for row in plan), [tuple(r) for r in plan]
    finally:
        await db.close()


def test_rows_without_an_origin_get_it_from_their_attributes() -> None:
    """A spill file written before the column existed has no origin: it is derived."""
    base = {c: None for c in SPAN_COLUMNS if c != "origin"}
    replay = {**base, "attributes": json.dumps({EXPERIMENT_ATTRIBUTE: "e1"})}
    plain = {**base, "attributes": json.dumps({"note": EXPERIMENT_ATTRIBUTE})}
    at = SPAN_COLUMNS.index("origin")
    assert [row[at] for row in span_rows([replay, plain, base])] == ["experiment", "app", "app"]
    assert origin_from_json("not json " + EXPERIMENT_ATTRIBUTE) == "app"
    # An outline keeps the origin it is given, and is an app's call without one.
    assert outline_row({"origin": "experiment"}, "why")[at] == "experiment"
    assert outline_row({}, "why")[at] == "app"


async def test_the_migration_marks_replays_stored_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    raw.execute(
        "CREATE TABLE schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for migration in available_migrations("sqlite"):
        if migration.version < 3:
            raw.executescript(migration.sql)
            raw.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 'then')",
                (migration.version, migration.name),
            )
    old_columns = [c for c in SPAN_COLUMNS if c != "origin"]
    attributes = {
        "r1": json.dumps({EXPERIMENT_ATTRIBUTE: "exp-1", "spanlab.experiment.run.id": "r"}),
        "a1": None,
        "a2": json.dumps({"translation": {"from": "openai"}}),
        "a3": "[1, 2]",
        "a4": "{not json",
    }
    for n, (span_id, attrs) in enumerate(attributes.items()):
        values = {c: None for c in old_columns}
        values.update(
            span_id=span_id,
            trace_id=f"t{n}",
            operation="chat",
            method="POST",
            path="/v1/chat/completions",
            status="ok",
            stream=0,
            start_us=n,
            request_model=f"model-{n % 2}",
            provider="openai",
            attributes=attrs,
        )
        raw.execute(
            f"INSERT INTO spans ({', '.join(old_columns)})"
            f" VALUES ({', '.join('?' for _ in old_columns)})",
            [values[c] for c in old_columns],
        )
    raw.commit()
    raw.close()

    db = SQLiteDatabase(str(path))
    await db.open()
    try:
        rows = await db.fetch("SELECT span_id, origin FROM spans ORDER BY span_id")
        assert {r[0]: r[1] for r in rows} == {
            "a1": "app",
            "a2": "app",
            "a3": "app",
            "a4": "app",
            "r1": "experiment",
        }
        facets = await db.fetch("SELECT kind, value FROM span_facets ORDER BY kind, value")
        assert [tuple(r) for r in facets] == [
            ("model", "model-0"),
            ("model", "model-1"),
            ("operation", "chat"),
            ("origin", "app"),
            ("origin", "experiment"),
            ("provider", "openai"),
        ]
    finally:
        await db.close()
