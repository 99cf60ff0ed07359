"""A dataset import may send the file itself (``text/csv``, JSON Lines) instead of a
JSON body: the format comes from the content type, the options from the query string.
The guard lets those types through on that route only; a ``text/plain`` or form body,
which a page on another site can send without a preflight, is still refused."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.datasets.service import CONTENT_TYPES
from gateway.http.guard import RAW_IMPORT_TYPES
from tests.conftest import Gateway
from tests.test_datasets_api import create, dataset, error, items

CSV = 'id,question,answer\nq1,What is 2+2?,4\nq2,"Quelle, heure?",midi\n'


async def post_file(
    gateway: Gateway, dataset_id: str, file: bytes, content_type: str, **params: Any
) -> Any:
    return await gateway.client.post(
        f"/datasets/{dataset_id}/import",
        content=file,
        headers={"content-type": content_type},
        params=params,
    )


def test_the_guard_lets_through_exactly_the_types_the_import_reads() -> None:
    assert {t.decode() for t in RAW_IMPORT_TYPES} == set(CONTENT_TYPES)
    # None of them is a type a page can send cross-site without a CORS preflight.
    safelisted = {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
    assert not safelisted & set(CONTENT_TYPES)


async def test_a_csv_body_imports_with_its_options_in_the_query(gateway: Gateway) -> None:
    ds = await create(gateway)
    r = await post_file(
        gateway,
        ds["id"],
        CSV.encode(),
        "text/csv; charset=utf-8",
        expected_column="answer",
        key_column="id",
    )
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 2
    now = (await items(gateway, ds["id"]))["data"]
    assert [(i["key"], i["variables"], i["expected_output"]) for i in now] == [
        ("q1", {"question": "What is 2+2?"}, "4"),
        ("q2", {"question": "Quelle, heure?"}, "midi"),
    ]


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl"])
async def test_a_jsonl_body_imports(gateway: Gateway, content_type: str) -> None:
    ds = await create(gateway)
    lines = [
        {"key": "a", "variables": {"q": "one"}, "expected_output": "1"},
        {"key": "b", "request": {"model": "m", "messages": [{"role": "user", "content": "x"}]}},
    ]
    body = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    r = await post_file(gateway, ds["id"], body, content_type)
    assert r.status_code == 201, r.text
    now = (await items(gateway, ds["id"]))["data"]
    assert [(i["key"], i["variables"], i["request"]) for i in now] == [
        ("a", {"q": "one"}, None),
        ("b", None, lines[1]["request"]),
    ]
    # on_conflict from the query: the same file again, skipped rather than refused.
    error(await post_file(gateway, ds["id"], body, content_type), 409)
    r = await post_file(gateway, ds["id"], body, content_type, on_conflict="skip")
    assert r.status_code == 201, r.text
    assert r.json()["skipped"] == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "content_type", "row"),
    [
        (b"q,a\n1,2\n3\n", "text/csv", "Row 3"),
        (
            b'{"key": "a", "variables": {}}\n{"key": "b", "variables": \n',
            "application/x-ndjson",
            "Row 2",
        ),
        (b"q\nok\n\xff\xfe\n", "text/csv", "Line 3"),
    ],
    ids=["short-csv-row", "bad-json-line", "not-utf8"],
)
async def test_a_bad_file_body_names_its_row_and_imports_nothing(
    gateway: Gateway, content: bytes, content_type: str, row: str
) -> None:
    ds = await create(gateway)
    r = await post_file(gateway, ds["id"], content, content_type)
    assert r.status_code == 422, r.text
    assert row in error(r, 422)["message"], r.text
    assert (await items(gateway, ds["id"]))["data"] == []
    assert (await dataset(gateway, ds["id"]))["version"] == 1


async def test_a_file_body_with_content_in_the_query_or_an_unknown_option_is_refused(
    gateway: Gateway,
) -> None:
    ds = await create(gateway)
    error(await post_file(gateway, ds["id"], CSV.encode(), "text/csv", content="x"), 400)
    error(await post_file(gateway, ds["id"], CSV.encode(), "text/csv", expected="a"), 422)
    assert (await items(gateway, ds["id"]))["data"] == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded"],
)
async def test_what_a_page_can_send_cross_site_is_still_refused_on_the_import(
    gateway: Gateway, content_type: str
) -> None:
    ds = await create(gateway)
    r = await post_file(gateway, ds["id"], CSV.encode(), content_type, format="csv")
    error(r, 415, "unsupported_media_type")
    assert (await items(gateway, ds["id"]))["data"] == []


async def test_a_file_type_is_refused_on_every_other_route_and_from_another_site(
    gateway: Gateway,
) -> None:
    ds = await create(gateway)
    for path in ("/datasets", f"/datasets/{ds['id']}/items", "/v1/chat/completions"):
        r = await gateway.client.post(path, content=CSV, headers={"content-type": "text/csv"})
        error(r, 415, "unsupported_media_type")
    # A PUT of a file to the import path is no import either.
    r = await gateway.client.put(
        f"/datasets/{ds['id']}/import", content=CSV, headers={"content-type": "text/csv"}
    )
    error(r, 415, "unsupported_media_type")
    # From a page on another site the Origin check refuses it first (and a browser
    # would have asked a preflight, which the gateway never grants).
    r = await gateway.client.post(
        f"/datasets/{ds['id']}/import",
        content=CSV,
        headers={"content-type": "text/csv", "origin": "https://evil.example"},
    )
    error(r, 403, "origin_not_allowed")
    assert gateway.upstream.requests == []
    assert (await items(gateway, ds["id"]))["data"] == []
