"""Two `spanlab serve` processes on one PostgreSQL database (and a `--workers 2` one
beside them): each sees every call stored, and a live ``/events`` stream on one
receives the calls made through the others (LISTEN/NOTIFY)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import StartGateway
from tests.e2e.test_workers_e2e import calls_on_new_connections, started
from tests.serve import EventsReader

pytestmark = pytest.mark.e2e


def test_processes_on_one_postgresql_share_spans_and_live_events(
    start_gateway: StartGateway, pg_url: str, test_id: str
) -> None:
    first = start_gateway(db=pg_url, events_heartbeat_s=0.5)
    second = start_gateway(db=pg_url, events_heartbeat_s=0.5)
    third = start_gateway(db=pg_url, events_heartbeat_s=0.5, workers=2)
    started(third, 2)
    events = EventsReader(f"{first.base_url}/events")
    try:
        time.sleep(0.5)  # its interest reaches the others
        calls_on_new_connections(second, 5, test_id)
        calls_on_new_connections(third, 6, test_id)
        deadline = time.monotonic() + 10.0
        while sum(test_id in line for line in events.lines) < 11:
            assert time.monotonic() < deadline, events.lines
            time.sleep(0.05)
    finally:
        events.stop.set()
    for gateway in (first, second, third):
        assert len(gateway.wait_spans(11, thread=test_id)) == 11
    third.stop_gracefully()
