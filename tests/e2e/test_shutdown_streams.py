"""SIGTERM and the streams that would outlive it (issue 9 items 11 and 17).

A proxied stream still running when ``shutdown_grace_s`` runs out ends with the error
event a broken upstream's stream gets (a call not yet answered gets a 503), its span
says ``interrupted``, and the log has one line for them all, no traceback. An open
``GET /events`` stream (a UI tab) ends as shutdown begins instead of holding it for
the whole grace.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import httpx
import orjson
import pytest

from tests.e2e.conftest import CLIENT_KEY, StartGateway
from tests.e2e.mock_upstream import MockUpstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STREAMS = 3


def data_events(body: bytes) -> list[bytes]:
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]


async def test_streams_cut_at_shutdown_end_with_an_error_event_and_one_log_line(
    start_gateway: StartGateway, mock_upstream: MockUpstream, test_id: str
) -> None:
    # Upstream deadlines far past the grace: the calls must be cut by the shutdown, not
    # by a read timeout first (a loaded machine can take a while to act on the SIGTERM).
    gateway = start_gateway(shutdown_grace_s=1.0, read_timeout=20.0, request_timeout=30.0)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a long story"}]}

    async def call(client: httpx.AsyncClient, i: int, scenario: str) -> httpx.Response:
        headers = {
            "x-thread-id": test_id,
            "x-test-id": f"{test_id}-{i}",
            "x-mock-scenario": scenario,
            "x-mock-delay": "30",
        }
        body = {**chat, "stream": scenario == "slow_stream"}
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            await r.aread()  # raises if the body is cut short
        return r

    async with httpx.AsyncClient(
        base_url=gateway.base_url, headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=20
    ) as client:
        streams = [asyncio.create_task(call(client, i, "slow_stream")) for i in range(STREAMS)]
        # And one call whose upstream has not answered yet.
        waiting = asyncio.create_task(call(client, STREAMS, "slow"))
        deadline = time.monotonic() + 10.0
        while mock_upstream.count_prefix(test_id + "-") < STREAMS + 1:
            assert time.monotonic() < deadline, "the calls did not reach the upstream"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # a few chunks through
        gateway.terminate()
        responses = await asyncio.gather(*streams)
        unanswered = await waiting
    await asyncio.to_thread(gateway.stop_gracefully)

    for r in responses:
        assert r.status_code == 200
        events = data_events(r.content)
        assert b"[DONE]" not in events
        assert any(b"tick" in event for event in events[:-1]), "the output so far came first"
        # The last event is the error event a broken upstream's stream ends with.
        error = orjson.loads(events[-1])["error"]
        assert error["code"] == "gateway_shutting_down"
        assert error["type"] == "server_error"
    assert unanswered.status_code == 503
    assert unanswered.json()["error"]["code"] == "gateway_shutting_down"

    log = gateway.log()
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert log.count(f"shutdown cut {STREAMS + 1} call(s)") == 1, log

    gateway.start()  # the same database
    try:
        stored = await asyncio.to_thread(gateway.wait_spans, STREAMS + 1, thread=test_id)
        assert {s["status"] for s in stored} == {"interrupted"}
        by_id = {s["span_id"]: s for s in stored}
        for r in responses:
            span = by_id[r.headers["x-spanlab-span-id"]]
            assert span["output_text"], "the partial output is kept"
        assert by_id[unanswered.headers["x-spanlab-span-id"]]["http_status"] == 503
    finally:
        await asyncio.to_thread(gateway.stop)


def test_an_open_events_stream_does_not_hold_the_shutdown(start_gateway: StartGateway) -> None:
    gateway = start_gateway()  # shutdown_grace_s: the default 30 s
    proc = gateway.proc
    assert proc is not None
    with httpx.Client(base_url=gateway.base_url, timeout=10) as client:
        with client.stream("GET", "/events") as r:
            lines = r.iter_lines()
            assert next(lines) == "retry: 2000"  # connected
            gateway.terminate()
            started = time.monotonic()
            rest = list(lines)  # ends when the gateway closes the stream
        assert rest == [": connected", ""]
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gateway still runs 10 s after SIGTERM:\n{gateway.log()}")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"shutdown took {elapsed:.1f}s"
    log = gateway.log()
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "Application shutdown complete." in log
