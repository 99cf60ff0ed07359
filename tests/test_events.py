"""The live event fan-out: `Broadcaster.close` ends every listener's stream (at
shutdown, an open ``/events`` stream held the server for its whole grace)."""

from __future__ import annotations

import asyncio

from gateway.api.events import CLOSED, Broadcaster
from tests.conftest import Gateway


async def test_close_ends_every_listener_even_a_lagging_one() -> None:
    events = Broadcaster(queue_size=2)
    async with events.subscribe() as lagging:
        for i in range(3):
            events.publish({"n": i})  # the third does not fit
        assert lagging.lagged
        async with events.subscribe() as idle:
            events.publish({"n": 3})
            events.close()
            assert await idle.queue.get() == {"n": 3}
            assert await idle.queue.get() is CLOSED
        # A full queue makes room for the notice.
        assert await lagging.queue.get() == {"n": 1}
        assert await lagging.queue.get() is CLOSED
    # Once closed, a new listener's stream ends at once.
    async with events.subscribe() as late:
        assert await late.queue.get() is CLOSED


async def test_the_events_route_ends_once_the_broadcaster_is_closed(gateway: Gateway) -> None:
    gateway.state.events.close()
    r = await asyncio.wait_for(gateway.client.get("/events"), 5)
    assert r.status_code == 200
    assert r.text == "retry: 2000\n: connected\n\n"
