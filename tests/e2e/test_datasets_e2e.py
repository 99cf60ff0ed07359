"""Datasets end to end: 20 calls with tool calls through a real ``spanlab serve`` and
the loopback upstream, made into a dataset from their spans, exported as JSONL by the
``spanlab`` CLI (a real process), imported into a new dataset over HTTP: the same
items, tools intact, and no key anywhere in them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import CLIENT_KEY, PROVIDER_KEY, GatewayProcess, sdk

pytestmark = pytest.mark.e2e

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": mock.TOOL_NAME,
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CONTENT = ("key", "operation", "variables", "request", "expected_output", "metadata")


def content(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item[name] for name in (*CONTENT, "source_span_id")}


def all_items(gateway: GatewayProcess, dataset_id: str) -> list[dict[str, Any]]:
    r = gateway.client.get(f"{gateway.base_url}/datasets/{dataset_id}/items?limit=1000")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["data"]
    return items


def test_a_dataset_from_captured_tool_calls_exports_and_imports_the_same_items(
    gateway: GatewayProcess, test_id: str, tmp_path: Path
) -> None:
    client = sdk(gateway)
    span_ids = []
    for i in range(20):
        headers = {"x-test-id": test_id, "x-thread-id": test_id, "x-mock-scenario": "tools"}
        messages: Any = [{"role": "user", "content": f"Weather in city {i}?"}]
        if i % 2:  # half of them streamed: the stream is stored assembled
            with client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini",
                messages=messages,
                tools=TOOLS,
                stream=True,
                extra_headers=headers,
            ) as response:
                span_ids.append(response.headers["x-spanlab-span-id"])
                for _ in response.iter_lines():
                    pass
        else:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=messages, tools=TOOLS, extra_headers=headers
            )
            assert raw.parse().choices[0].message.tool_calls
            span_ids.append(raw.headers["x-spanlab-span-id"])
    gateway.wait_spans(20, thread=test_id)

    http = gateway.client
    url = gateway.base_url
    r = http.post(f"{url}/datasets", json={"name": f"traffic {test_id}"})
    assert r.status_code == 201, r.text
    source = r.json()["id"]
    r = http.post(f"{url}/datasets/{source}/items/from-spans", params={"thread": test_id}, json={})
    assert r.status_code == 201, r.text
    assert (r.json()["matched"], r.json()["added"], r.json()["skipped"]) == (20, 20, [])
    made = all_items(gateway, source)
    assert [item["source_span_id"] for item in made] == span_ids
    for item in made:
        assert item["request"]["tools"] == TOOLS
        assert item["request"]["messages"][0]["content"].startswith("Weather in city")
        [call] = item["expected_output"]["tool_calls"]
        assert call["function"] == {"name": mock.TOOL_NAME, "arguments": mock.TOOL_ARGUMENTS}

    exported = tmp_path / "traffic.jsonl"
    cli = gateway.cli("datasets", "export", source, "--url", url, "-o", str(exported))
    assert cli.returncode == 0, cli.stderr
    assert len(exported.read_text().splitlines()) == 20

    r = http.post(f"{url}/datasets", json={"name": f"copy {test_id}"})
    copy = r.json()["id"]
    r = http.post(
        f"{url}/datasets/{copy}/import",
        json={"format": "jsonl", "content": exported.read_text()},
    )
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 20
    assert [content(i) for i in all_items(gateway, copy)] == [content(i) for i in made]

    # The secrets canary: neither the client's key nor the provider's is in the
    # dataset, as served, exported or stored.
    stored = sqlite3.connect(gateway.db)
    try:
        rows = stored.execute("SELECT * FROM dataset_items").fetchall()
    finally:
        stored.close()
    assert len(rows) == 40
    for text in (orjson.dumps(made).decode(), exported.read_text(), repr(rows)):
        assert CLIENT_KEY not in text
        assert PROVIDER_KEY not in text
