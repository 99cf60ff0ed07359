"""Graceful shutdown: SIGTERM while calls are in flight loses no span."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import CLIENT_KEY, PROVIDER_KEY, GatewayProcess, StartGateway
from tests.e2e.mock_upstream import MockUpstream
from tests.e2e.processes import running, writer_pid

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


# --- a writer that cannot store: the shutdown's deadline and the spill file ---------------

CANARY = "sk-canary-in-the-body-" + "3f9c1d7e5b2a4c6e"


async def calls_with_secrets(gateway: GatewayProcess, test_id: str, count: int) -> list[str]:
    """Calls whose spans would carry secrets if redaction failed: the client's key, the
    provider's key (sent upstream), a key field in the body. Their span ids."""
    async with httpx.AsyncClient(
        base_url=gateway.base_url, headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=15
    ) as client:
        ids = []
        for i in range(count):
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"call {i}"}],
                "api_key": CANARY,
            }
            r = await client.post(
                "/v1/chat/completions", json=body, headers={"x-thread-id": test_id}
            )
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-spanlab-span-id"])
        return ids


def spill_file(gateway: GatewayProcess) -> Path:
    return Path(str(gateway.db) + ".spill.jsonl")


def assert_spilled_without_secrets(gateway: GatewayProcess, span_ids: list[str]) -> None:
    data = spill_file(gateway).read_bytes()
    for span_id in span_ids:
        assert span_id.encode() in data
    for secret in (CANARY, CLIENT_KEY, PROVIDER_KEY):
        assert secret.encode() not in data


async def test_a_hung_writer_holds_the_shutdown_only_until_its_deadline(
    start_gateway: StartGateway, test_id: str
) -> None:
    """The writer process stopped (SIGSTOP: it hangs): SIGTERM drained without a
    deadline, for ever. Now: shutdown_drain_s later the spans not stored are saved,
    redacted, beside the database; the next start stores them, exactly once."""
    gateway = start_gateway(shutdown_drain_s=1.0)
    child = writer_pid(gateway)
    try:
        os.kill(child, signal.SIGSTOP)
        span_ids = await calls_with_secrets(gateway, test_id, 5)
        started = time.monotonic()
        await asyncio.to_thread(gateway.stop_gracefully)
        assert time.monotonic() - started < 10
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGCONT)
    assert not running(child), "the hung writer process was left behind"
    assert "5 spans saved (redacted)" in gateway.log()
    assert_spilled_without_secrets(gateway, span_ids)

    gateway.start()  # the same database: the spill is stored first
    try:
        assert not spill_file(gateway).exists()
        stored = await asyncio.to_thread(gateway.spans, thread=test_id)
        assert sorted(s["span_id"] for s in stored) == sorted(span_ids)  # each once
        assert all(s["status"] == "ok" for s in stored)
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_a_second_sigterm_during_the_drain_saves_the_spans_at_once(
    start_gateway: StartGateway, test_id: str
) -> None:
    """A second SIGTERM was ignored while the writer drained (a minute, with a full
    disk); now it ends the drain: the spans go to the spill file and the process exits."""
    gateway = start_gateway(shutdown_drain_s=120.0)
    child = writer_pid(gateway)
    try:
        os.kill(child, signal.SIGSTOP)
        span_ids = await calls_with_secrets(gateway, test_id, 2)
        proc = gateway.proc
        assert proc is not None
        gateway.terminate()
        deadline = time.monotonic() + 10
        while "storing the 2 spans still queued" not in gateway.log():
            assert time.monotonic() < deadline, gateway.log()
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert proc.poll() is None  # draining, up to shutdown_drain_s
        started = time.monotonic()
        gateway.terminate()
        await asyncio.to_thread(proc.wait, 10)
        assert time.monotonic() - started < 5
        gateway.proc = None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGCONT)
    assert "SIGTERM during the shutdown" in gateway.log()
    assert_spilled_without_secrets(gateway, span_ids)
    gateway.start()
    try:
        stored = await asyncio.to_thread(gateway.spans, thread=test_id)
        assert sorted(s["span_id"] for s in stored) == sorted(span_ids)
    finally:
        await asyncio.to_thread(gateway.stop)
