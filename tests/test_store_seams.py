"""The store's seams: a database under two stores by composition, the migrations loader
by dialect, the writer process's raw fields, the span columns, no private aiosqlite API."""

from __future__ import annotations

import ast
import dataclasses
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import httpx
import pytest

from gateway.app import create_app
from gateway.capture.span import Span, SpanContext
from gateway.capture.span_table import SPAN_COLUMNS
from gateway.store.database import SQLiteDatabase
from gateway.store.experiments import SqlExperimentStore
from gateway.store.migrations import available_migrations, migrations_root
from gateway.store.sqlite import SQLiteSpanStore
from gateway.store.sqlite_datasets import SqlDatasetStore
from gateway.store.sqlite_evaluation import SqlEvaluationStore
from gateway.store.sqlite_events import SqlEventStore
from gateway.store.sqlite_playground import SqlPlaygroundStore
from gateway.store.stores import Stores, sqlite_stores
from gateway.writer.process import NOT_SENT_FIELDS, RAW_SPAN_FIELDS, decode_spans, encode_spans
from tests.conftest import make_settings
from tests.fakes import FakeUpstream

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"


def test_every_raw_field_of_a_span_is_sent_to_the_writer_process_or_named_as_not_sent() -> None:
    names = [f.name for f in dataclasses.fields(Span)]
    assert sorted(RAW_SPAN_FIELDS + NOT_SENT_FIELDS) == sorted(names)
    assert not set(RAW_SPAN_FIELDS) & set(NOT_SENT_FIELDS)
    # `decode_spans` passes the raw fields by position after the context.
    assert names[0] == "context"
    assert tuple(names[1 : 1 + len(RAW_SPAN_FIELDS)]) == RAW_SPAN_FIELDS


def test_a_span_crosses_to_the_writer_process_with_every_raw_field() -> None:
    span = Span(SpanContext("t" * 32, "s" * 16), "chat", "POST", "/v1/chat/completions", 1)
    for i, name in enumerate(RAW_SPAN_FIELDS):
        value = getattr(span, name)
        # A distinct value of the field's kind, so a field dropped or shifted shows.
        if isinstance(value, bool):
            setattr(span, name, True)
        elif isinstance(value, int) or value is None:
            setattr(span, name, 1000 + i)
        elif isinstance(value, str):
            setattr(span, name, f"{name}-{i}")
        elif isinstance(value, dict):
            setattr(span, name, {name: str(i)})
        elif isinstance(value, list):
            setattr(span, name, [f"{name}-{i}"])
    frame = encode_spans(7, [span])
    seq, [back] = decode_spans(frame[4], frame[5:])
    assert seq == 7
    for name in RAW_SPAN_FIELDS:
        assert getattr(back, name) == getattr(span, name), name
    assert back.context == span.context


async def test_the_span_columns_are_the_spans_table_after_the_migrations(tmp_path: Path) -> None:
    db = SQLiteDatabase(str(tmp_path / "columns.db"))
    await db.open()
    try:
        rows = await db.fetch("PRAGMA table_info(spans)")
    finally:
        await db.close()
    assert tuple(row["name"] for row in rows) == SPAN_COLUMNS


def test_migrations_are_found_by_dialect_and_an_unknown_dialect_is_refused() -> None:
    found = available_migrations("sqlite")
    assert [m.label for m in found][:2] == ["0001_spans", "0002_experiments"]
    assert [m.version for m in found] == sorted(m.version for m in found)
    assert migrations_root().joinpath("sqlite").joinpath("0001_spans.sql").is_file()
    assert [m.label for m in available_migrations("postgresql")] == [m.label for m in found]
    with pytest.raises(ValueError, match="mysql"):
        available_migrations("mysql")


def test_only_a_sqlite_file_is_a_path_for_the_writer_process(tmp_path: Path) -> None:
    assert SQLiteDatabase(str(tmp_path / "a.db")).file_path == str(tmp_path / "a.db")
    assert SQLiteDatabase(":memory:").file_path is None


def _private_aiosqlite_names() -> set[str]:
    names = {n for n in dir(aiosqlite.Connection) if n.startswith("_") and not n.endswith("__")}
    conn = aiosqlite.Connection(lambda: sqlite3.connect(":memory:"), 64)
    names |= {n for n in vars(conn) if n.startswith("_") and not n.endswith("__")}
    return names


def test_no_module_of_the_store_or_writer_uses_aiosqlites_private_api() -> None:
    private = _private_aiosqlite_names()
    assert {"_execute", "_conn"} <= private  # what the store once reached for
    found = []
    for folder in ("store", "writer"):
        for path in sorted((GATEWAY / folder).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")
                ):
                    found.append(f"{path.name}:{node.lineno} .{node.attr}")
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr", "setattr")
                    and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in private
                ):
                    found.append(f"{path.name}:{node.lineno} {node.func.id} {node.args[1].value}")
    assert found == []


async def test_the_span_and_experiment_stores_share_one_write_transaction(tmp_path: Path) -> None:
    stores = sqlite_stores(str(tmp_path / "shared.db"))
    assert isinstance(stores.spans, SQLiteSpanStore)
    assert isinstance(stores.experiments, SqlExperimentStore)
    assert stores.spans.db is stores.database is stores.experiments.db
    db = stores.database
    assert isinstance(db, SQLiteDatabase)
    await stores.open()
    try:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO projects (id, name) VALUES ('p', 'p')")
        rows = await db.fetch("SELECT id FROM projects")
        assert [r["id"] for r in rows] == ["p"]
    finally:
        await stores.close()


class RecordingSpanStore(SQLiteSpanStore):
    def __init__(self, db: SQLiteDatabase) -> None:
        super().__init__(db)
        self.inserted: list[str] = []

    async def insert_spans(self, records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
        self.inserted += [r["span_id"] for r in records]
        return await super().insert_spans(records)


async def test_create_app_takes_injected_stores_and_uses_them(tmp_path: Path) -> None:
    db = SQLiteDatabase(":memory:")
    spans = RecordingSpanStore(db)
    stores = Stores(
        db,
        spans,
        SqlExperimentStore(db),
        SqlDatasetStore(db),
        SqlPlaygroundStore(db),
        SqlEventStore(db),
        SqlEvaluationStore(db),
    )
    upstream = FakeUpstream()
    app = create_app(make_settings(tmp_path), transport=upstream.transport(), stores=stores)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        assert app.state.spanlab.stores is stores
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://spanlab.test"
        ) as client:
            r = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
            span_id = r.headers["x-spanlab-span-id"]
            await app.state.spanlab.writer.flush()
            assert spans.inserted == [span_id]
            assert (await client.get(f"/spans/{span_id}")).json()["span_id"] == span_id
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await lifespan.__aexit__(None, None, None)
    assert not (tmp_path / "spanlab.db").exists()  # the settings' database was never opened


def test_the_experiment_and_run_records_have_every_column_in_the_stored_order() -> None:
    from gateway.store.experiments import (
        EXPERIMENT_COLUMNS,
        RUN_COLUMNS,
        ExperimentRecord,
        RunRecord,
    )

    assert {f.name for f in dataclasses.fields(ExperimentRecord)} == set(EXPERIMENT_COLUMNS)
    assert {f.name for f in dataclasses.fields(RunRecord)} == set(RUN_COLUMNS)
    record = ExperimentRecord("e1", "n", "s1", "t1", {"a": 1}, {"a": 2}, "c", "u")
    assert list(record.as_dict()) == list(EXPERIMENT_COLUMNS)
    assert ExperimentRecord.of(record.as_dict()) == record
    run = RunRecord("r1", "e1", "running", {"a": 1}, "s")
    assert list(run.as_dict()) == list(RUN_COLUMNS)


async def test_create_duplicate_and_import_give_experiments_of_one_shape(gateway: Any) -> None:
    from gateway.store.experiments import EXPERIMENT_COLUMNS

    body = {
        "original_span_id": "s" * 16,
        "original_trace_id": "t" * 32,
        "original_request": {"model": "gpt-4o-mini", "messages": []},
    }
    created = await gateway.client.post("/experiments", json=body)
    assert created.status_code in (200, 201), created.text
    experiment = created.json()
    copied = await gateway.client.post(f"/experiments/{experiment['id']}/duplicate")
    assert copied.status_code in (200, 201), copied.text
    imported = await gateway.client.post(
        "/experiments/import?on_conflict=copy", json={**experiment, "id": "imported-1"}
    )
    assert imported.status_code in (200, 201), imported.text
    stored = await gateway.client.get(f"/experiments/{experiment['id']}")
    [as_imported] = imported.json()["data"]
    assert as_imported["id"] not in (experiment["id"], copied.json()["id"])
    for shape in (experiment, copied.json(), stored.json(), as_imported):
        assert list(shape)[: len(EXPERIMENT_COLUMNS)] == list(EXPERIMENT_COLUMNS), shape


def test_a_history_entry_record_has_the_history_columns_but_its_owner() -> None:
    from gateway.store.experiments import HISTORY_COLUMNS, HistoryEntry

    entry = HistoryEntry(2, "updated", "2026-01-01T00:00:00.000000Z", {"name": "n"})
    assert set(entry.as_dict()) == set(HISTORY_COLUMNS) - {"experiment_id"}
    assert {f.name for f in dataclasses.fields(HistoryEntry)} == set(entry.as_dict())
