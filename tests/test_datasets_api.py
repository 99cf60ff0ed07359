"""The datasets API in process: datasets and items CRUD, versions, import and export
(JSONL, CSV) with their errors, and nothing half-written when an edit is refused."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest

from tests.conftest import Gateway
from tests.sql_helpers import make_gateway_on_each_backend

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL

Json = dict[str, Any]


async def create(gateway: Gateway, **body: Any) -> Json:
    body.setdefault("name", "questions")
    r = await gateway.client.post("/datasets", json=body)
    assert r.status_code == 201, r.text
    data: Json = r.json()
    return data


async def items(gateway: Gateway, dataset_id: str, **params: Any) -> Json:
    r = await gateway.client.get(f"/datasets/{dataset_id}/items", params=params)
    assert r.status_code == 200, r.text
    data: Json = r.json()
    return data


async def dataset(gateway: Gateway, dataset_id: str) -> Json:
    r = await gateway.client.get(f"/datasets/{dataset_id}")
    assert r.status_code == 200, r.text
    data: Json = r.json()
    return data


def error(r: Any, status: int, code: str | None = None) -> Json:
    assert r.status_code == status, r.text
    body: Json = r.json()["error"]
    assert set(body) == {"message", "type", "code", "param"}
    if code is not None:
        assert body["code"] == code, body
    return body


def var_item(key: str, question: str, expected: str | None = None) -> Json:
    item: Json = {"key": key, "variables": {"question": question}}
    if expected is not None:
        item["expected_output"] = expected
    return item


# --- datasets -----------------------------------------------------------------------------


async def test_a_dataset_is_created_listed_with_its_item_count_renamed_and_deleted(
    gateway: Gateway,
) -> None:
    first = await create(gateway, name="first", description="d", projectId="proj")
    assert first["id"].startswith("ds_")
    assert (first["name"], first["description"], first["project_id"]) == ("first", "d", "proj")
    assert (first["version"], first["item_count"]) == (1, 0)
    second = await create(gateway, name="second", items=[var_item("a", "1+1?", "2")])
    assert (second["version"], second["item_count"]) == (1, 1)

    listed = (await gateway.client.get("/datasets")).json()
    assert [d["name"] for d in listed["data"]] == ["second", "first"]
    assert [d["item_count"] for d in listed["data"]] == [1, 0]
    page1 = (await gateway.client.get("/datasets", params={"limit": 1})).json()
    page2 = (
        await gateway.client.get("/datasets", params={"limit": 1, "cursor": page1["next_cursor"]})
    ).json()
    assert [d["name"] for d in page1["data"] + page2["data"]] == ["second", "first"]
    assert page2["next_cursor"] is None
    assert [
        d["name"] for d in (await gateway.client.get("/datasets?project=proj")).json()["data"]
    ] == ["first"]

    r = await gateway.client.patch(f"/datasets/{first['id']}", json={"name": "renamed"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "renamed"
    assert r.json()["version"] == 1  # renaming changes no items: no new version
    r = await gateway.client.delete(f"/datasets/{first['id']}")
    assert r.status_code == 204
    error(await gateway.client.get(f"/datasets/{first['id']}"), 404)
    error(await gateway.client.get(f"/datasets/{first['id']}/items"), 404)


async def test_a_name_is_unique_within_a_project(gateway: Gateway) -> None:
    await create(gateway, name="same")
    error(await gateway.client.post("/datasets", json={"name": "same"}), 409, "dataset_exists")
    await create(gateway, name="same", project_id="other")  # another project: fine
    other = await create(gateway, name="different")
    r = await gateway.client.put(f"/datasets/{other['id']}", json={"name": "same"})
    error(r, 409, "dataset_exists")
    assert (await dataset(gateway, other["id"]))["name"] == "different"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "items": {"key": "a"}}, "items"),
        ({"name": "x", "items": [{"key": "a"}]}, "variables"),
        ({"name": "x", "items": [{"key": "a", "variables": {}, "request": {}}]}, "request"),
        ({"name": "x", "items": [{"key": "a", "variables": []}]}, "variables"),
        ({"name": "x", "items": [{"key": "", "variables": {}}]}, "key"),
    ],
)
async def test_a_bad_dataset_body_is_a_422_and_creates_nothing(
    gateway: Gateway, body: Json, param: str
) -> None:
    r = await gateway.client.post("/datasets", json=body)
    assert error(r, 422)["param"] == param
    assert (await gateway.client.get("/datasets")).json()["data"] == []


async def test_bad_bodies_and_ids_are_clear_4xx(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/datasets", content=b"{not json", headers={"content-type": "application/json"}
    )
    error(r, 400, "invalid_json")
    r = await gateway.client.post("/datasets", headers={"content-type": "application/json"})
    error(r, 400, "missing_body")
    for method, path in [
        ("GET", "/datasets/nope"),
        ("GET", "/datasets/nope/items"),
        ("GET", "/datasets/nope/versions"),
        ("GET", "/datasets/nope/export"),
        ("DELETE", "/datasets/nope"),
    ]:
        error(await gateway.client.request(method, path), 404)
    for path in (
        "/datasets/nope/items",
        "/datasets/nope/import",
        "/datasets/nope/items/from-spans",
    ):
        body = {"format": "jsonl", "content": '{"key": "a", "variables": {}}'}
        if path.endswith("items"):
            body = var_item("a", "q")
        elif path.endswith("from-spans"):
            body = {}
        error(await gateway.client.post(path, json=body), 404)
    error(await gateway.client.get("/datasets?limit=0"), 400)
    error(await gateway.client.get("/datasets?cursor=garbage"), 400)


# --- items and versions ---------------------------------------------------------------


async def test_each_edit_is_a_new_version_and_old_versions_stay_readable(
    gateway: Gateway,
) -> None:
    ds = await create(gateway)
    base = f"/datasets/{ds['id']}"
    r = await gateway.client.post(
        base + "/items", json=[var_item("a", "one", "1"), var_item("b", "two", "2")]
    )
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["version"] == 2 and added["added"] == 2
    a, b = added["data"]
    r = await gateway.client.post(base + "/items", json=var_item("c", "three"))
    assert r.json()["version"] == 3
    c = r.json()["data"][0]

    r = await gateway.client.put(f"{base}/items/{a['id']}", json={"expectedOutput": "one!"})
    assert r.status_code == 200, r.text
    assert r.json()["expected_output"] == "one!"
    assert r.json()["variables"] == {"question": "one"}  # a partial update
    assert r.json()["version"] == 4
    r = await gateway.client.delete(f"{base}/items/{b['id']}")
    assert r.status_code == 204

    assert (await dataset(gateway, ds["id"]))["version"] == 5
    now = await items(gateway, ds["id"])
    assert now["version"] == 5
    assert [(i["key"], i["expected_output"]) for i in now["data"]] == [("a", "one!"), ("c", None)]
    v2 = await items(gateway, ds["id"], version=2)
    assert [(i["key"], i["expected_output"]) for i in v2["data"]] == [("a", "1"), ("b", "2")]
    v3 = await items(gateway, ds["id"], version=3)
    assert [i["key"] for i in v3["data"]] == ["a", "b", "c"]
    assert [i["id"] for i in v3["data"]] == [a["id"], b["id"], c["id"]]  # ids stay
    assert (await items(gateway, ds["id"], version=1))["data"] == []
    r = await gateway.client.get(f"{base}/items/{a['id']}", params={"version": 2})
    assert r.json()["expected_output"] == "1"
    error(await gateway.client.get(f"{base}/items/{b['id']}"), 404)  # deleted in version 5
    assert (await gateway.client.get(f"{base}/items/{b['id']}?version=4")).status_code == 200

    versions = (await gateway.client.get(base + "/versions")).json()["data"]
    assert [(v["version"], v["action"], v["item_count"]) for v in versions] == [
        (5, "items_deleted", 2),
        (4, "items_updated", 3),
        (3, "items_added", 3),
        (2, "items_added", 2),
        (1, "created", 0),
    ]
    assert versions[1]["changes"] == {"added": 0, "updated": 1, "deleted": 0}

    # An update that changes nothing makes no version.
    r = await gateway.client.put(f"{base}/items/{a['id']}", json={"expected_output": "one!"})
    assert r.status_code == 200
    assert (await dataset(gateway, ds["id"]))["version"] == 5


async def test_an_unknown_or_bad_version_is_a_4xx(gateway: Gateway) -> None:
    ds = await create(gateway, items=[var_item("a", "q")])
    base = f"/datasets/{ds['id']}"
    assert (
        error(await gateway.client.get(base + "/items?version=2"), 404, "version_not_found")[
            "param"
        ]
        == "version"
    )
    error(await gateway.client.get(base + "/items?version=0"), 400)
    error(await gateway.client.get(base + "/items?version=two"), 400)
    error(await gateway.client.get(base + "/export?version=9"), 404, "version_not_found")


async def test_item_pages_follow_the_list_order_in_any_version(gateway: Gateway) -> None:
    ds = await create(gateway, items=[var_item(f"k{i:02}", f"q{i}") for i in range(25)])
    base = f"/datasets/{ds['id']}"
    first = (await gateway.client.get(base + "/items")).json()["data"][0]
    await gateway.client.put(f"{base}/items/{first['id']}", json={"key": "renamed"})
    keys: list[str] = []
    cursor = None
    while True:
        params: Json = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = await items(gateway, ds["id"], **params)
        keys += [i["key"] for i in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # The updated item keeps its place.
    assert keys == ["renamed"] + [f"k{i:02}" for i in range(1, 25)]
    for bad in ("garbage", "WyJhIl0"):  # not a cursor; a cursor of a text position
        r = await gateway.client.get(base + "/items", params={"cursor": bad})
        error(r, 400)
    old = await items(gateway, ds["id"], version=1, limit=1000)
    assert [i["key"] for i in old["data"]] == [f"k{i:02}" for i in range(25)]


async def test_a_duplicate_key_refuses_the_whole_edit(gateway: Gateway) -> None:
    ds = await create(gateway, items=[var_item("a", "q")])
    base = f"/datasets/{ds['id']}"
    r = await gateway.client.post(base + "/items", json=[var_item("b", "q"), var_item("a", "q")])
    body = error(r, 409, "duplicate_key")
    assert "Row 2" in body["message"] and "'a'" in body["message"]
    r = await gateway.client.post(
        base + "/items", json={"items": [var_item("d", "q"), {"key": "e"}]}
    )
    assert "Row 2" in error(r, 422)["message"]
    r = await gateway.client.post(base + "/items", json=[var_item("c", "q"), var_item("c", "q")])
    assert "given twice" in error(r, 409, "duplicate_key")["message"]
    b = (await gateway.client.post(base + "/items", json=var_item("b", "q"))).json()["data"][0]
    error(await gateway.client.put(f"{base}/items/{b['id']}", json={"key": "a"}), 409)
    now = await items(gateway, ds["id"])
    assert [i["key"] for i in now["data"]] == ["a", "b"]
    assert now["version"] == 2  # the refused edits made no version


async def test_an_item_switches_between_variables_and_a_request(gateway: Gateway) -> None:
    ds = await create(gateway, items=[var_item("a", "q")])
    base = f"/datasets/{ds['id']}"
    item = (await items(gateway, ds["id"]))["data"][0]
    assert item["operation"] is None
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    r = await gateway.client.patch(f"{base}/items/{item['id']}", json={"request": request})
    assert r.status_code == 200, r.text
    assert (r.json()["request"], r.json()["variables"], r.json()["operation"]) == (
        request,
        None,
        "chat",
    )
    r = await gateway.client.patch(
        f"{base}/items/{item['id']}", json={"variables": {"a": 1}, "request": request}
    )
    error(r, 422)
    r = await gateway.client.patch(f"{base}/items/{item['id']}", json={"request": None})
    error(r, 422)
    error(await gateway.client.patch(f"{base}/items/nope", json={"key": "x"}), 404)
    error(await gateway.client.delete(f"{base}/items/nope"), 404)


async def test_a_secret_in_an_items_request_is_never_stored(gateway: Gateway) -> None:
    secret = "sk-datasets-canary-0123456789"
    request = {"model": "m", "messages": [], "api_key": secret}
    ds = await create(
        gateway, items=[{"key": "a", "request": request, "metadata": {"password": secret}}]
    )
    item = (await items(gateway, ds["id"]))["data"][0]
    assert item["request"]["api_key"] == "[REDACTED]"
    assert item["metadata"]["password"] == "[REDACTED]"
    rows = await gateway.state.stores.database.fetch("SELECT request, metadata FROM dataset_items")  # type: ignore[attr-defined]
    assert secret not in repr([tuple(r) for r in rows])


# --- import and export -------------------------------------------------------------------


JSONL = b"\n".join(
    orjson.dumps(x)
    for x in [
        {"key": "q1", "variables": {"city": "Paris"}, "expected": "France"},
        {
            "key": "q2",
            "request": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "weather?"}],
                "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
            },
            "expected_output": {"content": None, "tool_calls": [{"id": "c1"}]},
            "metadata": {"source": "test"},
            "sourceSpanId": "abcd",
        },
    ]
).decode()


async def import_(gateway: Gateway, dataset_id: str, **body: Any) -> Any:
    return await gateway.client.post(f"/datasets/{dataset_id}/import", json=body)


async def test_jsonl_import_then_export_gives_the_same_items(gateway: Gateway) -> None:
    ds = await create(gateway)
    r = await import_(gateway, ds["id"], format="jsonl", content=JSONL)
    assert r.status_code == 201, r.text
    assert (r.json()["added"], r.json()["version"]) == (2, 2)
    r = await gateway.client.get(f"/datasets/{ds['id']}/export?format=jsonl")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert f"{ds['id']}-v2.jsonl" in r.headers["content-disposition"]
    lines = [orjson.loads(line) for line in r.text.splitlines()]
    assert lines[0] == {"key": "q1", "variables": {"city": "Paris"}, "expected_output": "France"}
    assert lines[1]["operation"] == "chat"
    assert lines[1]["source_span_id"] == "abcd"
    assert lines[1]["request"]["tools"][0]["function"]["name"] == "w"

    copy = await create(gateway, name="copy")
    r = await import_(gateway, copy["id"], filename="export.jsonl", content=r.text)
    assert r.status_code == 201, r.text
    exported = await gateway.client.get(f"/datasets/{copy['id']}/export")
    assert exported.text.splitlines() == [orjson.dumps(x).decode() for x in lines]


@pytest.mark.parametrize(
    ("content", "row", "code"),
    [
        ('{"key": "a", "variables": {}}\n{"key": "b", "variables": \n', 2, "invalid_line"),
        ('{"key": "a", "variables": {}}\n\n[1, 2]\n', 3, "validation_failed"),
        ('{"key": "a", "variables": {}}\n{"key": "b"}\n', 2, "validation_failed"),
        ('{"key": "a", "variables": {}}\n{"key": "b", "variables": {}, "x": 1}\n', 2, None),
    ],
    ids=["not-json", "not-an-object", "no-variables-or-request", "unknown-field"],
)
async def test_a_bad_jsonl_line_is_named_and_nothing_is_imported(
    gateway: Gateway, content: str, row: int, code: str | None
) -> None:
    ds = await create(gateway, items=[var_item("old", "q")])
    r = await import_(gateway, ds["id"], format="jsonl", content=content)
    body = error(r, 422, code)
    assert f"Row {row}" in body["message"], body
    now = await items(gateway, ds["id"])
    assert ([i["key"] for i in now["data"]], now["version"]) == (["old"], 1)


async def test_an_import_with_a_key_already_there_is_refused_whole_or_skips_or_updates(
    gateway: Gateway,
) -> None:
    ds = await create(gateway, items=[var_item("q1", "old", "old")])
    r = await import_(gateway, ds["id"], format="jsonl", content=JSONL)
    assert "Row 1" in error(r, 409, "duplicate_key")["message"]
    assert (await dataset(gateway, ds["id"]))["item_count"] == 1
    r = await import_(gateway, ds["id"], format="jsonl", content=JSONL, on_conflict="skip")
    assert (r.json()["added"], r.json()["skipped"]) == (1, ["q1"])
    r = await import_(gateway, ds["id"], format="jsonl", content=JSONL, onConflict="update")
    assert (r.json()["added"], r.json()["updated"], r.json()["skipped"]) == (0, 1, ["q2"])
    now = await items(gateway, ds["id"])
    assert (now["data"][0]["key"], now["data"][0]["expected_output"]) == ("q1", "France")


async def test_empty_and_badly_formatted_imports_are_422(gateway: Gateway) -> None:
    ds = await create(gateway)
    for body in (
        {"format": "jsonl", "content": ""},
        {"format": "jsonl", "content": "\n  \n"},
        {"format": "csv", "content": ""},
        {"format": "csv", "content": "question,answer\n"},
    ):
        error(await import_(gateway, ds["id"], **body), 422, "empty_import")
    error(await import_(gateway, ds["id"], format="xml", content="<a/>"), 422)
    error(await import_(gateway, ds["id"], content="a,b\n1,2\n"), 422)  # no format
    error(await import_(gateway, ds["id"], format="csv"), 422)  # no content
    error(await import_(gateway, ds["id"], format="csv", content=5), 422)
    assert (await dataset(gateway, ds["id"]))["version"] == 1


CSV = 'id,question,answer,lang\nq1,What is 2+2?,4,en\nq2,"Quelle, heure?",midi,fr\n'


async def test_csv_columns_become_variables_and_the_expected_column_is_named(
    gateway: Gateway,
) -> None:
    ds = await create(gateway)
    r = await import_(
        gateway, ds["id"], format="csv", content=CSV, expected_column="answer", keyColumn="id"
    )
    assert r.status_code == 201, r.text
    now = (await items(gateway, ds["id"]))["data"]
    assert [(i["key"], i["variables"], i["expected_output"]) for i in now] == [
        ("q1", {"question": "What is 2+2?", "lang": "en"}, "4"),
        ("q2", {"question": "Quelle, heure?", "lang": "fr"}, "midi"),
    ]
    exported = await gateway.client.get(f"/datasets/{ds['id']}/export?format=csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["key", "question", "lang", "expected"]
    assert rows[2] == ["q2", "Quelle, heure?", "fr", "midi"]
    # And back: the export imports into the same items.
    copy = await create(gateway, name="copy")
    r = await import_(
        gateway, copy["id"], format="csv", content=exported.text, expected_column="expected"
    )
    assert r.status_code == 201, r.text
    again = (await items(gateway, copy["id"]))["data"]
    assert [(i["key"], i["variables"], i["expected_output"]) for i in again] == [
        (i["key"], i["variables"], i["expected_output"]) for i in now
    ]


async def test_a_csv_without_a_key_column_numbers_its_rows(gateway: Gateway) -> None:
    ds = await create(gateway)
    content = "\ufeffquestion\nA\n\nB\n"  # a spreadsheet's byte order mark first
    r = await import_(gateway, ds["id"], contentType="text/csv; charset=utf-8", content=content)
    assert r.status_code == 201, r.text
    now = (await items(gateway, ds["id"]))["data"]
    assert [(i["key"], i["variables"]) for i in now] == [
        ("row-2", {"question": "A"}),
        ("row-4", {"question": "B"}),
    ]


@pytest.mark.parametrize(
    ("content", "extra", "row"),
    [
        ("q,a\n1,2\n3\n", {}, "Row 3"),
        ("q,a\n1,2\n3,4,5\n", {}, "Row 3"),
        ("q,q\n1,2\n", {}, "Row 1"),
        ("q,\n1,2\n", {}, "Row 1"),
        ("q,a\n1,2\n", {"expected_column": "answer"}, "no column 'answer'"),
        ("key,q\nk,1\nk,2\n", {}, "Row 3"),
        ('q,metadata\n1,{}\n2,"[1"\n', {}, "Row 3"),
        ('q,a\n1,"unterminated\n', {}, "Row"),
    ],
    ids=[
        "short-row",
        "long-row",
        "duplicate-column",
        "unnamed-column",
        "missing-expected",
        "duplicate-key",
        "bad-metadata",
        "unterminated-quote",
    ],
)
async def test_a_bad_csv_is_refused_with_its_row_and_nothing_is_imported(
    gateway: Gateway, content: str, extra: Json, row: str
) -> None:
    ds = await create(gateway)
    r = await import_(gateway, ds["id"], format="csv", content=content, **extra)
    assert r.status_code in (409, 422), r.text
    assert row in r.json()["error"]["message"], r.text
    assert (await items(gateway, ds["id"]))["data"] == []
    assert (await dataset(gateway, ds["id"]))["version"] == 1


async def test_an_import_past_max_body_bytes_is_a_413(make_gateway: Any) -> None:
    gateway: Gateway = await make_gateway(max_body_bytes=1024)
    ds = await create(gateway)
    content = "\n".join(orjson.dumps(var_item(f"k{i}", "x" * 50)).decode() for i in range(40))
    r = await import_(gateway, ds["id"], format="jsonl", content=content)
    error(r, 413, "request_too_large")
    assert (await dataset(gateway, ds["id"]))["item_count"] == 0


async def test_export_refuses_an_unknown_format_and_a_variable_that_clashes_in_csv(
    gateway: Gateway,
) -> None:
    ds = await create(gateway, items=[{"key": "a", "variables": {"metadata": "x"}}])
    error(await gateway.client.get(f"/datasets/{ds['id']}/export?format=xml"), 422)
    error(await gateway.client.get(f"/datasets/{ds['id']}/export?format=csv"), 422)
    r = await gateway.client.get(f"/datasets/{ds['id']}/export?format=jsonl")
    assert orjson.loads(r.text) == {"key": "a", "variables": {"metadata": "x"}}


async def test_an_import_past_its_item_limit_is_refused_at_that_row(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.datasets import transfer

    monkeypatch.setattr(transfer, "MAX_IMPORT_ITEMS", 3)
    ds = await create(gateway)
    content = "q\n1\n2\n3\n4\n"
    r = await import_(gateway, ds["id"], format="csv", content=content)
    assert "Row 5" in error(r, 422, "too_many_items")["message"]
    r = await import_(gateway, ds["id"], format="csv", content="q\n1\n2\n3\n")
    assert r.status_code == 201, r.text
