"""Experiments API: the seed's examples, create/read/update/delete, validation, filters,
projects, duplicate, export/import and version history; on SQLite and on PostgreSQL
(`make_gateway_on_each_backend`)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT, capture, create, error_of, run
from tests.sql_helpers import database_text, make_gateway_on_each_backend, sql_db

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL

SEED_CREATE = {
    "name": "Temperature Experiment",
    "description": "Testing different temperature values",
    "original_span_id": "span_123",
    "original_trace_id": "trace_456",
    "original_request": {
        "model": "gpt-4",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.7,
    },
    "modified_request": {
        "model": "gpt-4",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 1.5,
    },
    "model_parameters": {"temperature": 1.5, "max_tokens": 100},
}
CURL_CREATE = {
    "name": "Test Experiment",
    "original_span_id": "test_span",
    "original_trace_id": "test_trace",
    "original_request": {"model": "gpt-4", "messages": []},
    "modified_request": {"model": "gpt-4", "messages": []},
}
CONTRACT_FIELDS = {
    "id",
    "name",
    "description",
    "original_span_id",
    "original_trace_id",
    "original_request",
    "modified_request",
    "headers",
    "prompt_variables",
    "model_parameters",
    "result_span_id",
    "result_trace_id",
    "status",
    "project_id",
    "created_at",
    "updated_at",
    "tags",
    "favorite",
    "error",
}


async def test_seed_create_example(gateway: Gateway) -> None:
    r = await gateway.client.post("/experiments", json=SEED_CREATE)
    assert r.status_code == 201, r.text
    exp = r.json()
    assert set(exp) >= CONTRACT_FIELDS
    assert exp["id"].startswith("exp_")
    assert exp["status"] == "draft"
    for key in ("name", "description", "original_span_id", "original_trace_id"):
        assert exp[key] == SEED_CREATE[key]
    assert exp["original_request"] == SEED_CREATE["original_request"]
    assert exp["modified_request"] == SEED_CREATE["modified_request"]
    assert exp["model_parameters"] == {"temperature": 1.5, "max_tokens": 100}
    assert exp["created_at"].endswith("Z") and exp["created_at"] == exp["updated_at"]
    assert exp["result_span_id"] is None and exp["error"] is None
    assert exp["tags"] == [] and exp["favorite"] is False
    r = await gateway.client.get(f"/experiments/{exp['id']}")
    assert r.json() == exp


async def test_seed_curl_examples(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/experiments",
        content=orjson.dumps(CURL_CREATE),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    listed = (await gateway.client.get("/experiments")).json()
    assert listed["data"] == [created] and listed["next_cursor"] is None
    by_span = (await gateway.client.get("/experiments/by-span/test_span")).json()
    assert by_span == {"data": [created]}
    assert (await gateway.client.get("/experiments/by-span/other")).json() == {"data": []}


async def test_create_from_a_span_takes_its_request(gateway: Gateway) -> None:
    span = await capture(
        gateway,
        {**CHAT, "model": "openai/gpt-4o-mini"},
        **{"x-project-id": "proj-a", "openai-beta": "assistants=v2", "x-thread-id": "t1"},
    )
    exp = await create(gateway, original_span_id=span["span_id"])
    # The stored request names the upstream model; the experiment keeps the routing.
    assert span["request"]["model"] == "gpt-4o-mini"
    assert exp["original_request"] == {**span["request"], "model": "openai/gpt-4o-mini"}
    assert exp["modified_request"] == exp["original_request"]
    assert exp["original_trace_id"] == span["trace_id"]
    assert exp["project_id"] == "proj-a"
    assert exp["headers"] == {"openai-beta": "assistants=v2"}
    assert exp["operation"] == "chat"
    assert "openai/gpt-4o-mini" in exp["name"]


async def test_create_keeps_a_bare_model_name_that_still_routes_there(gateway: Gateway) -> None:
    span = await capture(gateway)
    exp = await create(gateway, original_span_id=span["span_id"])
    assert exp["original_request"]["model"] == "gpt-4o-mini"


async def test_create_right_after_the_call_waits_for_its_span(gateway: Gateway) -> None:
    """The span writer stores in the background: an experiment made the moment a call
    returns (a UI's "Experiment" button) still finds its span."""
    for _ in range(5):
        r = await gateway.client.post("/v1/chat/completions", json=CHAT)
        span_id = r.headers["x-spanlab-span-id"]
        r = await gateway.client.post("/experiments", json={"original_span_id": span_id})
        assert r.status_code == 201, r.text
        assert r.json()["original_request"]["messages"] == CHAT["messages"]


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**CURL_CREATE, "original_request": dict(CHAT)}
    body.pop("modified_request")
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (
            _body(original_request=..., original_span_id="nope"),
            404,
            "not_found",
            "original_span_id",
        ),
        (_body(original_span_id=...), 422, "validation_failed", "original_span_id"),
        (_body(original_trace_id=...), 422, "validation_failed", "original_trace_id"),
        (_body(original_request="{not json"), 400, "invalid_json", "original_request"),
        (_body(modified_request="[1, 2"), 400, "invalid_json", "modified_request"),
        (_body(original_request=[1]), 422, "validation_failed", "original_request"),
        (_body(modified_request={"messages": []}), 400, "missing_model", "modified_request.model"),
        (
            _body(modified_request={"model": "m"}),
            422,
            "missing_messages",
            "modified_request.messages",
        ),
        (
            _body(modified_request={"model": "m", "messages": [{"content": "x"}]}),
            422,
            "validation_failed",
            "modified_request.messages[0]",
        ),
        (_body(model_parameters={"model": ""}), 400, "missing_model", "modified_request.model"),
        (_body(colour="red"), 422, "validation_failed", "colour"),
        (_body(status="running"), 422, "validation_failed", "status"),
        (
            _body(headers={"Authorization": "Bearer sk-x"}),
            422,
            "credential_in_headers",
            "headers.Authorization",
        ),
        (_body(headers={"host": "evil.test"}), 422, "validation_failed", "headers.host"),
        (_body(headers={"x-a": "1\r\nx-b: 2"}), 422, "validation_failed", "headers.x-a"),
        (_body(tags="a,b" and 5), 422, "validation_failed", "tags"),
        (_body(favorite="yes"), 422, "validation_failed", "favorite"),
        (_body(operation="models"), 422, "validation_failed", "operation"),
        (
            _body(modified_request={**CHAT, "messages": [{"role": "user", "content": "{{/x}}"}]}),
            422,
            "invalid_template",
            "modified_request.messages[0].content",
        ),
    ],
)
async def test_create_errors_are_clear_and_write_nothing(
    gateway: Gateway, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    r = await gateway.client.post("/experiments", json=body)
    assert r.status_code == status, r.text
    error = error_of(r)
    assert error["code"] == code
    assert error["param"] == param
    assert (await gateway.client.get("/experiments")).json()["data"] == []


async def test_malformed_body_and_span_trace_mismatch(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/experiments", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    r = await gateway.client.post("/experiments", json=[1, 2])
    assert r.status_code == 422
    span = await capture(gateway)
    r = await gateway.client.post(
        "/experiments", json={"original_span_id": span["span_id"], "original_trace_id": "f" * 32}
    )
    assert r.status_code == 422 and error_of(r)["param"] == "original_trace_id"
    models = await gateway.client.get("/v1/models")
    await gateway.flush()
    r = await gateway.client.post(
        "/experiments", json={"original_span_id": models.headers["x-spanlab-span-id"]}
    )
    assert r.status_code == 422, r.text
    assert (await gateway.client.get("/experiments")).json()["data"] == []


async def test_update_is_partial_versioned_and_guarded(gateway: Gateway) -> None:
    exp = await create(gateway, **SEED_CREATE)
    r = await gateway.client.put(
        f"/experiments/{exp['id']}",
        json={"name": "Renamed", "tags": ["temp", " temp ", "tone"], "favourite": True},
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["name"] == "Renamed"
    assert updated["tags"] == ["temp", "tone"]
    assert updated["favorite"] is True
    assert updated["description"] == exp["description"]  # untouched
    assert updated["modified_request"] == exp["modified_request"]
    assert updated["created_at"] == exp["created_at"]
    assert updated["updated_at"] > exp["updated_at"]
    assert updated["version"] == exp["version"] + 1
    assert (await gateway.client.get(f"/experiments/{exp['id']}")).json() == updated

    # The whole object sent back (as a UI does) is fine: read-only fields unchanged.
    same = await gateway.client.put(f"/experiments/{exp['id']}", json=updated)
    assert same.status_code == 200 and same.json() == updated

    for body, status, param in [
        ({"id": "exp_other"}, 422, "id"),
        ({"original_request": {"model": "x", "messages": []}}, 422, "original_request"),
        ({"version": 1}, 409, "version"),
        ({"name": ""}, 422, "name"),
        ({"modified_request": None}, 422, "modified_request"),
        ({"modified_request": {"model": "gpt-4"}}, 422, "modified_request.messages"),
        ({"prompt_variables": "{oops"}, 400, "prompt_variables"),
        ({"status": "paused"}, 422, "status"),
        ({"favourite": 1}, 422, "favorite"),
        ({"nonsense": 1}, 422, "nonsense"),
    ]:
        r = await gateway.client.put(f"/experiments/{exp['id']}", json=body)
        assert r.status_code == status, (body, r.text)
        assert error_of(r)["param"] == param
    assert (await gateway.client.get(f"/experiments/{exp['id']}")).json() == updated

    r = await gateway.client.put("/experiments/exp_missing", json={"name": "x"})
    assert r.status_code == 404
    r = await gateway.client.delete(f"/experiments/{exp['id']}")
    assert r.status_code == 204 and r.content == b""
    assert (await gateway.client.get(f"/experiments/{exp['id']}")).status_code == 404
    assert (await gateway.client.delete(f"/experiments/{exp['id']}")).status_code == 404


async def test_status_transitions(gateway: Gateway) -> None:
    exp = await create(gateway, **SEED_CREATE)
    url = f"/experiments/{exp['id']}"

    async def put(body: dict[str, Any]) -> Any:
        return await gateway.client.put(url, json=body)

    for body in ({"status": "running"}, {"status": "completed"}):
        r = await put(body)
        assert r.status_code == 409, r.text
        assert error_of(r)["code"] == "invalid_transition"
    r = await put({"status": "completed", "result_span_id": "abc", "result_trace_id": "def"})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    r = await put({"status": "failed"})
    assert r.status_code == 409
    r = await put({"status": "draft"})
    assert r.status_code == 200 and r.json()["status"] == "draft"
    assert r.json()["result_span_id"] == "abc"  # the last result stays until the next run


async def test_list_filters_and_pagination(gateway: Gateway) -> None:
    made = []
    for i in range(7):
        made.append(
            await create(
                gateway,
                **{**CURL_CREATE, "name": f"exp {i}", "project_id": "p1" if i < 4 else "p2"},
                tags=["even"] if i % 2 == 0 else ["odd", "x"],
                favorite=i == 3,
                description="find the needle_here" if i == 5 else None,
            )
        )
    await gateway.client.put(
        f"/experiments/{made[1]['id']}",
        json={"status": "completed", "result_span_id": "r"},
    )

    async def ids(**params: Any) -> list[str]:
        r = await gateway.client.get("/experiments", params=params)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["data"]]

    newest_first = [e["id"] for e in reversed(made)]
    assert await ids() == newest_first
    assert await ids(project="p1") == newest_first[3:]
    assert await ids(tag="odd") == [made[i]["id"] for i in (5, 3, 1)]
    assert await ids(favorite="true") == [made[3]["id"]]
    assert await ids(favourite="1") == [made[3]["id"]]
    assert len(await ids(favorite="false")) == 6
    assert await ids(status="completed") == [made[1]["id"]]
    assert await ids(q="NEEDLE_HERE") == [made[5]["id"]]
    assert await ids(q="needle%") == []
    assert await ids(q="exp 2") == [made[2]["id"]]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await gateway.client.get("/experiments", params=params)).json()
        seen += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first

    for params in ({"status": "weird"}, {"favorite": "maybe"}, {"cursor": "@@"}, {"limit": 0}):
        r = await gateway.client.get("/experiments", params=params)
        assert r.status_code == 400, params
        error_of(r)


async def test_project_row_is_created_and_its_deletion_cascades(gateway: Gateway) -> None:
    span = await capture(gateway)
    doomed = await create(gateway, original_span_id=span["span_id"], project_id="brand-new")
    await run(gateway, doomed["id"])
    kept = await create(gateway, **CURL_CREATE, project_id="keep")
    store = sql_db(gateway.state.stores.database)
    rows = await store.fetch("SELECT id, name FROM projects ORDER BY id")
    assert [tuple(r) for r in rows] == [("brand-new", "brand-new"), ("keep", "keep")]
    async with store.transaction() as conn:
        await conn.execute("DELETE FROM projects WHERE id = 'brand-new'")
    assert (await gateway.client.get(f"/experiments/{doomed['id']}")).status_code == 404
    for table in ("experiment_runs", "experiment_history"):
        left = await store.fetch(
            f"SELECT COUNT(*) FROM {table} WHERE experiment_id = ?", (doomed["id"],)
        )
        assert left[0][0] == 0, table
    assert (await gateway.client.get(f"/experiments/{kept['id']}")).status_code == 200
    assert (await gateway.client.get(f"/spans/{span['span_id']}")).status_code == 200


async def test_no_secret_reaches_the_database(gateway: Gateway, tmp_path: Path) -> None:
    secret_body = "sk-body-secret-0123456789"
    secret_header = "sk-caller-secret-9876543210"
    span = await capture(
        gateway,
        {**CHAT, "api_key": secret_body},
        authorization=f"Bearer {secret_header}",
    )
    exp = await create(
        gateway,
        original_span_id=span["span_id"],
        modified_request={**CHAT, "api_key": secret_body},
        prompt_variables={"password": "hunter2-hunter2"},
    )
    assert exp["modified_request"]["api_key"] == "[REDACTED]"
    assert exp["prompt_variables"]["password"] == "[REDACTED]"
    done = await run(gateway, exp["id"], authorization=f"Bearer {secret_header}")
    assert done["status"] == "completed"
    sent = gateway.upstream.bodies[-1]
    assert "api_key" not in sent  # the placeholder is never sent
    assert gateway.upstream.last.headers["authorization"] == f"Bearer {secret_header}"
    await gateway.flush()
    db = sql_db(gateway.state.stores.database)
    if db.dialect == "postgresql":
        data = (await database_text(db)).encode()
    else:
        data = await asyncio.to_thread(database_bytes, tmp_path)
    assert span["span_id"].encode() in data and exp["id"].encode() in data  # all searched
    for secret in (secret_body, secret_header, "hunter2-hunter2"):
        assert secret.encode() not in data


def database_bytes(folder: Path) -> bytes:
    """The database with its WAL: a secret written anywhere would be in these bytes."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("spanlab.db*")))


async def test_duplicate(gateway: Gateway) -> None:
    span = await capture(gateway)
    exp = await create(gateway, original_span_id=span["span_id"], tags=["a"], favorite=True)
    await run(gateway, exp["id"])
    r = await gateway.client.post(f"/experiments/{exp['id']}/duplicate")
    assert r.status_code == 201, r.text
    dup = r.json()
    assert dup["id"] != exp["id"]
    assert dup["name"] == f"Copy of {exp['name']}"
    assert dup["status"] == "draft" and dup["result_span_id"] is None
    assert dup["favorite"] is False and dup["tags"] == ["a"]
    for key in ("original_span_id", "original_request", "modified_request", "operation"):
        assert dup[key] == exp[key]
    history = (await gateway.client.get(f"/experiments/{dup['id']}/history")).json()["data"]
    assert [(h["version"], h["action"]) for h in history] == [(1, "duplicated")]
    assert history[0]["changes"] == {"duplicated_from": exp["id"]}
    assert (await gateway.client.get(f"/experiments/{dup['id']}/runs")).json()["data"] == []

    r = await gateway.client.post(
        f"/experiments/{exp['id']}/duplicate", json={"name": "Variant B", "tags": ["b"]}
    )
    assert r.status_code == 201 and r.json()["name"] == "Variant B" and r.json()["tags"] == ["b"]
    r = await gateway.client.post(f"/experiments/{exp['id']}/duplicate", json={"status": "x"})
    assert r.status_code == 422
    assert (await gateway.client.post("/experiments/exp_nope/duplicate")).status_code == 404


def _without_stamp(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "exported_at"}


async def test_export_import_round_trip_is_lossless(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    source = await make_gateway()
    span = await capture(source)
    first = await create(
        source,
        original_span_id=span["span_id"],
        prompt_variables={"x": "1"},
        model_parameters={"temperature": 0.2},
        tags=["t"],
        project_id="proj",
    )
    await run(source, first["id"])
    await source.client.put(f"/experiments/{first['id']}", json={"description": "edited"})
    second = await create(source, **SEED_CREATE)

    one = (await source.client.get(f"/experiments/{first['id']}/export")).json()
    assert one["format"] == "spanlab.experiments" and one["version"] == 1
    (item,) = one["experiments"]
    assert len(item["runs"]) == 1 and [h["action"] for h in item["history"]] == [
        "updated",
        "run",
        "created",
    ]
    everything = (await source.client.get("/experiments/export")).json()
    assert [e["id"] for e in everything["experiments"]] == [second["id"], first["id"]]
    picked = (await source.client.get("/experiments/export", params={"ids": second["id"]})).json()
    assert [e["id"] for e in picked["experiments"]] == [second["id"]]

    target = await make_gateway(db=str(tmp_path / "target.db"))
    r = await target.client.post("/experiments/import", json=everything)
    assert r.status_code == 201, r.text
    assert {e["id"] for e in r.json()["data"]} == {first["id"], second["id"]}
    again = (await target.client.get("/experiments/export")).json()
    assert _without_stamp(again) == _without_stamp(everything)

    # Importing the same ids again: nothing is written.
    r = await target.client.post("/experiments/import", json=everything)
    assert r.status_code == 409, r.text
    assert len((await target.client.get("/experiments")).json()["data"]) == 2
    r = await target.client.post("/experiments/import?on_conflict=skip", json=everything)
    assert r.status_code == 201 and r.json()["data"] == []
    r = await target.client.post("/experiments/import?on_conflict=copy", json=one)
    assert r.status_code == 201
    (copied,) = r.json()["data"]
    assert copied["id"] != first["id"] and copied["modified_request"] == first["modified_request"]
    runs = (await target.client.get(f"/experiments/{copied['id']}/runs")).json()["data"]
    assert len(runs) == 1 and runs[0]["id"] != item["runs"][0]["id"]

    # A bare experiment object (GET /experiments/{id}) imports too.
    bare = (await source.client.get(f"/experiments/{second['id']}")).json()
    fresh = await make_gateway(db=str(tmp_path / "fresh.db"))
    r = await fresh.client.post("/experiments/import", json=bare)
    assert r.status_code == 201 and r.json()["data"][0]["id"] == second["id"]


@pytest.mark.parametrize(
    ("document", "status"),
    [
        ({"format": "something-else", "experiments": []}, 422),
        ({"format": "spanlab.experiments", "version": 99, "experiments": []}, 422),
        ({"experiments": [{"id": "bad id!", **CURL_CREATE}]}, 422),
        ({"experiments": [{"id": "export", **CURL_CREATE}]}, 422),
        ({"experiments": [{**CURL_CREATE, "status": "weird"}]}, 422),
        ({"experiments": [{**CURL_CREATE, "modified_request": {"messages": []}}]}, 400),
        ({"experiments": [{**CURL_CREATE, "runs": [{"id": "r1"}]}]}, 422),
        ({"experiments": [{"id": "dup", **CURL_CREATE}, {"id": "dup", **CURL_CREATE}]}, 422),
        ("just a string", 422),
    ],
)
async def test_import_rejects_bad_documents_whole(
    gateway: Gateway, document: Any, status: int
) -> None:
    good = {"id": "exp_good", **CURL_CREATE}
    if isinstance(document, dict) and "experiments" in document:
        document = {**document, "experiments": [good, *document["experiments"]]}
    r = await gateway.client.post("/experiments/import", json=document)
    assert r.status_code == status, r.text
    error_of(r)
    assert (await gateway.client.get("/experiments")).json()["data"] == []
    r = await gateway.client.post("/experiments/import?on_conflict=maybe", json=[good])
    assert r.status_code == 400


async def test_history_records_edits_and_runs_and_restores(gateway: Gateway) -> None:
    span = await capture(gateway)
    exp = await create(gateway, original_span_id=span["span_id"])
    url = f"/experiments/{exp['id']}"
    first_request = exp["modified_request"]
    changed = {**first_request, "temperature": 1.2}
    await gateway.client.put(url, json={"modified_request": changed})
    await gateway.client.put(url, json={"name": "Hot"})
    done = await run(gateway, exp["id"])
    history = (await gateway.client.get(f"{url}/history")).json()["data"]
    assert [(h["version"], h["action"]) for h in history] == [
        (4, "run"),
        (3, "updated"),
        (2, "updated"),
        (1, "created"),
    ]
    assert history[0]["run_id"] == done["id"]
    assert history[0]["snapshot"]["result_span_id"] == done["result_span_id"]
    assert history[2]["changes"] == {"modified_request": {"from": first_request, "to": changed}}
    assert history[1]["changes"] == {"name": {"from": exp["name"], "to": "Hot"}}
    assert history[3]["snapshot"]["modified_request"] == first_request
    assert (await gateway.client.get(url)).json()["version"] == 4

    r = await gateway.client.post(f"{url}/history/1/restore")
    assert r.status_code == 200, r.text
    restored = r.json()
    assert restored["modified_request"] == first_request
    assert restored["name"] == exp["name"]
    assert restored["result_span_id"] == done["result_span_id"]  # results are not undone
    assert restored["version"] == 5
    assert (await gateway.client.post(f"{url}/history/9/restore")).status_code == 404
    assert (await gateway.client.post(f"{url}/history/x/restore")).status_code == 400
    assert (await gateway.client.get("/experiments/exp_nope/history")).status_code == 404


async def test_migration_creates_the_seed_table_exactly(gateway: Gateway, tmp_path: Path) -> None:
    if gateway.state.stores.database.dialect != "sqlite":
        pytest.skip("SQLite's table (PostgreSQL's twin: tests/test_pg_foundation.py)")
    conn = sqlite3.connect(tmp_path / "spanlab.db")
    columns = [(r[1], r[2], r[3]) for r in conn.execute("PRAGMA table_info(experiments)")]
    foreign = [
        (r[2], r[3], r[4], r[6]) for r in conn.execute("PRAGMA foreign_key_list(experiments)")
    ]
    conn.close()
    seed = [
        ("id", "TEXT", 0),
        ("name", "TEXT", 1),
        ("description", "TEXT", 0),
        ("original_span_id", "TEXT", 1),
        ("original_trace_id", "TEXT", 1),
        ("original_request", "TEXT", 1),
        ("modified_request", "TEXT", 1),
        ("headers", "TEXT", 0),
        ("prompt_variables", "TEXT", 0),
        ("model_parameters", "TEXT", 0),
        ("result_span_id", "TEXT", 0),
        ("result_trace_id", "TEXT", 0),
        ("status", "TEXT", 1),
        ("project_id", "TEXT", 0),
        ("created_at", "TEXT", 0),
        ("updated_at", "TEXT", 0),
    ]
    assert columns[: len(seed)] == seed
    assert foreign == [("projects", "project_id", "id", "CASCADE")]
