"""Graceful shutdown: SIGTERM while calls are in flight loses no span."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import CLIENT_KEY, StartGateway
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

IN_FLIGHT = 24
AFTER_SIGTERM = 8


async def call(client: httpx.AsyncClient, i: int, test_id: str) -> tuple[int, str | None]:
    """(HTTP status, span id) of a call, or (0, None) when no response came back."""
    scenario = ("plain", "slow", "slow_first_token")[i % 3]
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"call {i}"}],
        "stream": scenario == "slow_first_token" or i % 2 == 0,
    }
    headers = {
        "x-thread-id": test_id,
        "x-test-id": f"{test_id}-{i}",
        "x-mock-scenario": scenario,
        "x-mock-delay": "0.6",
    }
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            data = await r.aread()
    except httpx.TransportError:
        return 0, None
    if body["stream"]:
        # A response only counts when the whole of it arrived.
        assert data.rstrip().endswith(b"data: [DONE]"), data[-200:]
    else:
        assert mock.CONTENT.encode() in data
    return r.status_code, r.headers["x-spanlab-span-id"]


async def test_sigterm_with_calls_in_flight_loses_no_span(
    start_gateway: StartGateway, mock_upstream: MockUpstream, test_id: str
) -> None:
    gateway = start_gateway()
    async with httpx.AsyncClient(
        base_url=gateway.base_url,
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        limits=httpx.Limits(max_connections=IN_FLIGHT + AFTER_SIGTERM),
        timeout=15.0,
    ) as client:
        first = [asyncio.create_task(call(client, i, test_id)) for i in range(IN_FLIGHT)]
        # SIGTERM once every call has reached the upstream (is in flight)...
        deadline = time.monotonic() + 10.0
        while mock_upstream.count_prefix(test_id + "-") < IN_FLIGHT:
            assert time.monotonic() < deadline, "calls did not reach the upstream"
            await asyncio.sleep(0.01)
        gateway.terminate()
        # ...and a few more right after it, which may or may not be served.
        late = [
            asyncio.create_task(call(client, i, test_id))
            for i in range(IN_FLIGHT, IN_FLIGHT + AFTER_SIGTERM)
        ]
        in_flight = await asyncio.gather(*first)
        after = await asyncio.gather(*late)
    await asyncio.to_thread(gateway.stop_gracefully)

    # Calls in flight at SIGTERM are finished, not cut off.
    assert [status for status, _ in in_flight] == [200] * IN_FLIGHT
    answered = [span_id for status, span_id in [*in_flight, *after] if span_id is not None]
    assert all(status == 200 for status, span_id in after if span_id is not None)

    gateway.start()  # the same database
    try:
        stored = await asyncio.to_thread(gateway.spans, thread=test_id)
        assert sorted(s["span_id"] for s in stored) == sorted(answered)
        assert all(s["status"] == "ok" for s in stored), [s["status"] for s in stored]
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_calls_outliving_the_grace_period_are_stored_as_interrupted(
    start_gateway: StartGateway, mock_upstream: MockUpstream, test_id: str
) -> None:
    """A stream still running when shutdown_grace_s ends is cut; its span says so and
    keeps the output received until then."""
    gateway = start_gateway(shutdown_grace_s=1.0)
    async with httpx.AsyncClient(
        base_url=gateway.base_url, headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=15
    ) as client:

        async def long_stream() -> str | None:
            body = {
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "tell me a long story"}],
            }
            headers = {
                "x-thread-id": test_id,
                "x-test-id": test_id,
                "x-mock-scenario": "slow_stream",
            }
            span_id = None
            try:
                async with client.stream(
                    "POST", "/v1/chat/completions", json=body, headers=headers
                ) as r:
                    span_id = r.headers["x-spanlab-span-id"]
                    async for _ in r.aiter_bytes():
                        pass
            except httpx.TransportError:
                pass  # cut off by the shutdown, as intended
            return span_id

        task = asyncio.create_task(long_stream())
        deadline = time.monotonic() + 10.0
        while mock_upstream.count_prefix(test_id) < 1:
            assert time.monotonic() < deadline, "the call did not reach the upstream"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # a few chunks through
        gateway.terminate()
        span_id = await task
    await asyncio.to_thread(gateway.stop_gracefully)
    assert span_id is not None

    gateway.start()
    try:
        stored = await asyncio.to_thread(gateway.spans, thread=test_id)
        assert [s["span_id"] for s in stored] == [span_id]
        assert stored[0]["status"] == "interrupted"
        assert stored[0]["output_text"], "the partial output is kept"
    finally:
        await asyncio.to_thread(gateway.stop)
