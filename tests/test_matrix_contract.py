"""The seed-1 contract beside the matrix (migration 0006): the seed's `experiments`
table and endpoints unchanged, seed-1 rows and runs still valid after the migration,
and a span-less experiment's place in the seed's NOT NULL columns (docs/api.md)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from starlette.routing import Route

from gateway.store.database import SQLiteDatabase
from gateway.store.experiments import SqlExperimentStore
from gateway.store.migrations import available_migrations
from tests.conftest import Gateway

# The seed's `experiments` table (seeds/experiment-feature.md): name, NOT NULL, default.
SEED_COLUMNS = [
    ("id", 0, None),
    ("name", 1, None),
    ("description", 0, None),
    ("original_span_id", 1, None),
    ("original_trace_id", 1, None),
    ("original_request", 1, None),
    ("modified_request", 1, None),
    ("headers", 0, None),
    ("prompt_variables", 0, None),
    ("model_parameters", 0, None),
    ("result_span_id", 0, None),
    ("result_trace_id", 0, None),
    ("status", 1, "'draft'"),
    ("project_id", 0, None),
    ("created_at", 0, None),
    ("updated_at", 0, None),
]
SEED_ROUTES = {
    ("POST", "/experiments"),
    ("GET", "/experiments"),
    ("GET", "/experiments/{experiment_id}"),
    ("GET", "/experiments/by-span/{span_id}"),
    ("PUT", "/experiments/{experiment_id}"),
    ("DELETE", "/experiments/{experiment_id}"),
}
MATRIX_ROUTES = {
    ("POST", "/experiments/{experiment_id}/variants"),
    ("PUT", "/experiments/{experiment_id}/variants/{variant_id}"),
    ("DELETE", "/experiments/{experiment_id}/variants/{variant_id}"),
    ("POST", "/experiments/{experiment_id}/inputs"),
    ("DELETE", "/experiments/{experiment_id}/inputs/{input_id}"),
    ("POST", "/experiments/{experiment_id}/run"),
    ("GET", "/experiments/{experiment_id}/progress"),
    ("POST", "/experiments/{experiment_id}/cancel"),
}


def columns(path: Path) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("PRAGMA table_info(experiments)").fetchall()
    return [(name, notnull, default) for _, name, _, notnull, default, _ in rows]


async def test_the_seed_table_is_unchanged_and_kind_comes_after_it(
    gateway: Gateway, tmp_path: Path
) -> None:
    shape = columns(tmp_path / "spanlab.db")
    assert shape[: len(SEED_COLUMNS)] == SEED_COLUMNS
    assert ("kind", 1, "'replay'") in shape[len(SEED_COLUMNS) :]


async def test_the_seed_routes_stay_and_the_matrix_routes_exist(gateway: Gateway) -> None:
    routes = {
        (method, route.path)
        for route in gateway.app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }
    assert routes >= SEED_ROUTES
    assert routes >= MATRIX_ROUTES


async def test_a_matrix_experiment_fills_the_seed_columns_with_empty_values(
    gateway: Gateway, tmp_path: Path
) -> None:
    r = await gateway.client.post("/experiments", json={"name": "Prompts", "description": "d"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["kind"] == "matrix" and created["status"] == "draft"
    assert (created["name"], created["description"]) == ("Prompts", "d")
    with sqlite3.connect(tmp_path / "spanlab.db") as conn:
        row = conn.execute(
            "SELECT original_span_id, original_trace_id, original_request, modified_request,"
            " kind FROM experiments WHERE id = ?",
            (created["id"],),
        ).fetchone()
    assert row == ("", "", "{}", "{}", "matrix")
    # A seed-1 body still makes a seed-1 experiment, and still needs its span.
    r = await gateway.client.post(
        "/experiments", json={"original_request": {"model": "m", "messages": []}}
    )
    assert r.status_code == 422 and r.json()["error"]["param"] == "original_span_id"


async def test_seed1_rows_and_runs_stay_valid_through_migration_0006(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    stamp = datetime.now(UTC).isoformat()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )
        for migration in available_migrations("sqlite"):
            if migration.version < 6:
                conn.executescript(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, stamp),
                )
        conn.execute(
            "INSERT INTO experiments (id, name, original_span_id, original_trace_id,"
            " original_request, modified_request, status, created_at, updated_at)"
            " VALUES ('e1', 'old', 's1', 't1', '{\"model\": \"m\", \"messages\": []}',"
            " '{\"model\": \"m\", \"messages\": []}', 'completed', 'c', 'u')"
        )
        conn.execute(
            "INSERT INTO experiment_runs (id, experiment_id, status, request, started_at)"
            " VALUES ('r1', 'e1', 'completed', '{}', 's')"
        )
    db = SQLiteDatabase(str(path))
    await db.open()  # applies the pending migrations: 0006 and after
    try:
        assert "0006_variants_inputs" in await db.applied_migrations()
        store = SqlExperimentStore(db)
        experiment = await store.get_experiment("e1")
        assert experiment is not None
        assert experiment["kind"] == "replay" and experiment["status"] == "completed"
        [run] = await store.list_experiment_runs("e1")
        assert run["status"] == "completed" and run["retries"] == 0
        assert run["matrix_run_id"] is None and run["variant_id"] is None
    finally:
        await db.close()
