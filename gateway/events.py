"""Live events: a fan-out of "span stored" notices to every ``GET /events`` listener.

Each listener has a bounded queue. A listener too slow to keep up loses events rather
than slowing the writer; it is told so (a ``lagged`` event) and can refetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

LAGGED: dict[str, Any] = {"type": "lagged"}


class Subscription:
    __slots__ = ("lagged", "queue")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.lagged = False


class Broadcaster:
    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    def publish(self, event: dict[str, Any]) -> None:
        for sub in self._subscribers:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lagged = True

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription(self._queue_size)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
