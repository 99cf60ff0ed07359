"""A real `spanlab serve --db postgresql://...` on a throwaway PostgreSQL cluster, driven
by the official OpenAI SDK: a plain and a streamed call are stored with their tokens,
listed, and still there after a restart."""

from __future__ import annotations

import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import StartGateway, sdk
from tests.postgres import run_sync

pytestmark = pytest.mark.e2e

MESSAGES = [{"role": "user", "content": "Say hello."}]
TOTAL = mock.PROMPT_TOKENS + mock.COMPLETION_TOKENS


async def _count_spans(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval("SELECT COUNT(*) FROM spans")
        return count
    finally:
        await conn.close()


def test_serve_on_postgresql_stores_calls_across_a_restart(
    start_gateway: StartGateway, pg_url: str, test_id: str
) -> None:
    gateway = start_gateway(db=pg_url)
    assert "database postgresql://" in gateway.log()
    client = sdk(gateway)
    headers = {"x-test-id": test_id, "x-thread-id": test_id}
    plain = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
    )
    assert plain.parse().choices[0].message.content == mock.CONTENT
    streamed = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    chunks = list(streamed.parse())
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == TOTAL

    ids = {plain.headers["x-spanlab-span-id"], streamed.headers["x-spanlab-span-id"]}
    listed = gateway.wait_spans(2, thread=test_id)
    assert {s["span_id"] for s in listed} == ids
    for span_id in ids:
        span = gateway.span(span_id)
        assert span["status"] == "ok"
        assert span["output_text"] == mock.CONTENT
        assert span["usage"]["total_tokens"] == TOTAL
    assert {gateway.span(i)["stream"] for i in ids} == {False, True}
    # In PostgreSQL itself, not in a SQLite file beside the gateway.
    assert run_sync(lambda: _count_spans(pg_url)) == 2
    assert not list(gateway.workdir.glob("spanlab.db*"))

    gateway.stop_gracefully()
    gateway.start()
    again = gateway.spans(thread=test_id)
    assert {s["span_id"] for s in again} == ids
    assert sum(s["usage"]["total_tokens"] for s in again) == 2 * TOTAL
    stats = gateway.client.get(f"{gateway.base_url}/stats", params={"group_by": "model"})
    assert stats.status_code == 200, stats.text
    assert sum(r["calls"] for r in stats.json()["data"]) == 2
    assert "Traceback" not in gateway.log() and " ERROR " not in gateway.log(), gateway.log()
