"""Live events: a fan-out of "span stored" notices (and named events such as
``playground.completion``, see `named_event`) to every ``GET /events`` listener.

Each listener has a bounded queue. A listener too slow to keep up loses events rather
than slowing the writer; it is told so (a ``lagged`` event) and can refetch. `close`
(at shutdown) ends every listener's stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gateway.fanout.relay import Relay

LAGGED: dict[str, Any] = {"type": "lagged"}
# Queued to a listener when the broadcaster closes: its stream ends there.
CLOSED: dict[str, Any] = {"type": "closed"}
# A queued item carrying this key is a named event (its value the SSE event name, its
# data under "data"); any other item is a stored span (SSE event "span").
EVENT_NAME = "spanlab_event"


def named_event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """A named event to `Broadcaster.publish` (e.g. ``playground.completion``)."""
    return {EVENT_NAME: name, "data": data}


class Subscription:
    __slots__ = ("lagged", "queue")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.lagged = False

    def end(self) -> None:
        """Queue `CLOSED`, making room for it: what was queued matters no more."""
        queue = self.queue
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(CLOSED)


class Broadcaster:
    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self.closed = False
        self.relay: Relay | None = None

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    @property
    def wanted(self) -> bool:
        """Whether an event published now reaches anyone (here, or another process)."""
        return bool(self._subscribers) or (self.relay is not None and self.relay.peers_listening)

    def publish(self, event: dict[str, Any]) -> None:
        self.deliver(event)
        if self.relay is not None:
            self.relay.send(event)

    def deliver(self, event: dict[str, Any]) -> None:
        """To this process's listeners only (an event another process relayed)."""
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lagged = True

    def close(self) -> None:
        """End every listener's stream, now and from now on (at shutdown: an open
        ``/events`` stream would otherwise hold the server for its whole grace)."""
        self.closed = True
        for sub in self._subscribers:
            sub.end()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription(self._queue_size)
        if self.closed:
            sub.end()
        self._subscribers.add(sub)
        if self.relay is not None and len(self._subscribers) == 1:
            self.relay.listening(True)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            if self.relay is not None and not self._subscribers:
                self.relay.listening(False)
