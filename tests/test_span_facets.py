"""GET /spans/facets: the values the Traces filters offer, kept by the writers in a
small table (not two scans of the spans per page load), right after a prune; on SQLite
and PostgreSQL (``db_setting``)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.capture.span_table import SPAN_COLUMNS, FacetCache, facets_of, insert_rows
from gateway.store.database import SQLiteDatabase
from tests.conftest import Gateway, GatewayFactory
from tests.fakes import FakeUpstream, chat_completion

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def answer_as(request: httpx.Request) -> httpx.Response:
    model = orjson.loads(request.content)["model"]
    return httpx.Response(200, json=chat_completion(model=f"{model}-2025"))


async def call(gw: Gateway, model: str, **headers: str) -> str:
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "model": model}, headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["x-spanlab-span-id"]


async def test_facets_list_what_the_writer_stored(
    make_gateway: GatewayFactory, db_setting: str
) -> None:
    gw: Gateway = await make_gateway(FakeUpstream(handler=answer_as), db=db_setting)
    empty = (await gw.client.get("/spans/facets")).json()
    assert empty == {"models": [], "providers": [], "labels": [], "operations": [], "origins": []}

    await call(gw, "gpt-b", **{"x-label": "nightly"})
    await call(gw, "gpt-a")
    await call(gw, "gpt-a")  # a value seen again is listed once
    await call(gw, "local/llama", **{"x-label": "adhoc"})
    await gw.flush()
    facets = (await gw.client.get("/spans/facets")).json()
    # Both the model asked for (as the model filter matches it) and the one answering.
    assert facets["models"] == [
        "gpt-a",
        "gpt-a-2025",
        "gpt-b",
        "gpt-b-2025",
        "llama-2025",
        "local/llama",
    ]
    assert facets["providers"] == ["local", "openai"]
    assert facets["labels"] == ["adhoc", "nightly"]
    assert facets["operations"] == ["chat"]
    assert facets["origins"] == ["app"]
    # The same values /stats finds by scanning the spans (what the dropdowns used).
    by_provider = (await gw.client.get("/stats?group_by=provider")).json()["data"]
    assert sorted(r["group"] for r in by_provider) == facets["providers"]

    limited = (await gw.client.get("/spans/facets?limit=2")).json()
    assert limited["models"] == ["gpt-a", "gpt-a-2025"]
    assert (await gw.client.get("/spans/facets?limit=0")).status_code == 400


async def test_facets_is_not_taken_for_a_span_id(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(FakeUpstream())
    response = await gw.client.get("/spans/facets")
    assert response.status_code == 200
    assert "models" in response.json()
    assert (await gw.client.get("/spans/not-a-span")).status_code == 404


async def test_a_prune_drops_the_facets_no_span_has_left(
    make_gateway: GatewayFactory, db_setting: str
) -> None:
    gw: Gateway = await make_gateway(FakeUpstream(handler=answer_as), db=db_setting)
    await call(gw, "old-model", **{"x-label": "old"})
    await gw.flush()
    cutoff = int(time.time() * 1_000_000) + 1
    await asyncio.sleep(0.002)
    await call(gw, "new-model")
    await gw.flush()
    store = gw.state.stores.spans
    assert "old-model" in (await store.facets())["model"]

    assert await store.delete_spans_before(cutoff) == 1
    facets = await store.facets()
    assert facets["model"] == ["new-model", "new-model-2025"]
    assert facets["label"] == []
    assert facets["provider"] == ["openai"]
    # A model pruned away and seen again is listed again (the writer adds it back).
    await call(gw, "old-model")
    await gw.flush()
    assert "old-model" in (await store.facets())["model"]


async def test_the_in_process_store_keeps_facets_too(
    make_gateway: GatewayFactory, db_setting: str
) -> None:
    """Spans stored through the span store (a spill replayed, an in-memory database)."""
    gw: Gateway = await make_gateway(FakeUpstream(), db=db_setting)
    record = {c: None for c in SPAN_COLUMNS}
    record.update(
        span_id="s1",
        trace_id="t1",
        operation="embeddings",
        method="POST",
        path="/v1/embeddings",
        status="ok",
        stream=0,
        start_us=1,
        request_model="embed-1",
        provider="openai",
        origin="experiment",
    )
    await gw.state.stores.spans.insert_spans([record])
    facets = await gw.state.stores.spans.facets()
    assert facets["model"] == ["embed-1"]
    assert facets["operation"] == ["embeddings"]
    assert facets["origin"] == ["experiment"]


async def test_the_writer_sends_known_facets_once_until_another_connection_commits(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "facets.db")
    db = SQLiteDatabase(path)
    await db.open()
    await db.close()
    writer = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None)
    sent: list[str] = []
    writer.set_trace_callback(sent.append)
    cache = FacetCache()

    def row(span_id: str, model: str) -> tuple[Any, ...]:
        values = dict.fromkeys(SPAN_COLUMNS)
        values.update(
            span_id=span_id,
            trace_id=span_id,
            operation="chat",
            method="POST",
            path="/",
            stream=0,
            status="ok",
            start_us=1,
            request_model=model,
            origin="app",
        )
        return tuple(values[c] for c in SPAN_COLUMNS)

    def facet_statements() -> int:
        count = sum("span_facets" in s for s in sent)
        sent.clear()
        return count

    insert_rows(writer, [row("a", "m1")], cache)
    assert facet_statements() > 0
    insert_rows(writer, [row("b", "m1"), row("c", "m1")], cache)
    assert facet_statements() == 0  # all known: no statement
    insert_rows(writer, [row("d", "m2")], cache)
    assert facet_statements() > 0
    # A prune elsewhere empties the table: the writer stores its facets again.
    other.execute("DELETE FROM span_facets")
    insert_rows(writer, [row("e", "m1")], cache)
    assert facet_statements() > 0
    models = other.execute("SELECT value FROM span_facets WHERE kind = 'model'").fetchall()
    assert models == [("m1",)]
    writer.close()
    other.close()


def test_facets_of_skips_what_is_not_text() -> None:
    model = SPAN_COLUMNS.index("request_model")
    provider = SPAN_COLUMNS.index("provider")
    row = [None] * len(SPAN_COLUMNS)
    odd = list(row)
    odd[model], odd[provider] = ["a", "list"], 7
    good = list(row)
    good[model], good[provider] = "m", ""
    assert facets_of([tuple(odd), tuple(good)]) == {("model", "m")}
