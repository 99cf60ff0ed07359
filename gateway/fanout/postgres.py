"""`PostgresRelay`: live events between every gateway process on one PostgreSQL
database (on one machine or many), over LISTEN/NOTIFY.

Each process holds one connection of its own (not the store's pool: a LISTEN needs a
session that stays) that listens on `CHANNEL` and sends its messages with
``pg_notify``. PostgreSQL delivers a notification to every listener, the sender
included (which `Relay.received` ignores), and only after the sending transaction
commits (each ``pg_notify`` here is its own). A payload must stay under 8000 bytes:
larger batches are split, and a larger span goes as a reference to its id (the
receivers read it from the database, where it already is).

Sending never waits on the caller: messages queue (at most `MAX_QUEUED`; beyond that,
and while the connection is down, events are dropped and counted) and one task sends
them. A lost connection is made again (1 s, doubling to 30 s); once back, the process
greets its peers again so their listeners' interest is known anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from gateway.fanout.relay import Relay, encode_events

if TYPE_CHECKING:
    import asyncpg

logger = logging.getLogger(__name__)

CHANNEL = "spanlab_events"
MAX_PAYLOAD = 7900  # NOTIFY refuses 8000 bytes and more
MAX_QUEUED = 1000
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0


class PostgresRelay(Relay):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._conn: asyncpg.Connection | None = None
        self._queue: list[tuple[str, int]] = []  # (payload, events in it)
        self._sender: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        await self._connect()

    async def shut(self) -> None:
        self._closing = True
        for task in (self._sender, self._reconnect):
            if task is not None and not task.done():
                if task is self._sender:
                    # What is queued (a last interest message) gets a moment to go.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(asyncio.shield(task), 1.0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2.0)

    def transmit(self, message: dict[str, Any]) -> None:
        self._enqueue(orjson.dumps(message).decode(), 0)

    def send_events(self, events: list[dict[str, Any]]) -> None:
        if not self.peers_listening:
            return
        for message, count in encode_events(self.origin, events, MAX_PAYLOAD):
            self._enqueue(message.decode(), count)

    # --- inside ---------------------------------------------------------------------

    async def _connect(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url)
        await conn.add_listener(CHANNEL, self._notified)
        conn.add_termination_listener(self._terminated)
        self._conn = conn

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if isinstance(message, dict):
            self.received(message)

    def _terminated(self, conn: object) -> None:
        if conn is self._conn:
            self._lost("the connection was closed")

    def _lost(self, why: str) -> None:
        self._conn = None
        if self._closing or (self._reconnect is not None and not self._reconnect.done()):
            return
        logger.warning("live events between processes paused: %s; reconnecting", why)
        self._reconnect = asyncio.get_running_loop().create_task(self._connect_again())

    async def _connect_again(self) -> None:
        delay = FIRST_RETRY_S
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except Exception as exc:
                logger.warning("reconnecting for live events failed: %s", exc)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            logger.info("live events between processes resumed")
            self.greet()
            return

    def _enqueue(self, payload: str, events: int) -> None:
        if self._conn is None or len(self._queue) >= MAX_QUEUED:
            self.dropped += events
            return
        self._queue.append((payload, events))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._queue and self._conn is not None:
            batch, self._queue = self._queue, []
            conn = self._conn
            try:
                await conn.executemany(
                    "SELECT pg_notify($1, $2)", [(CHANNEL, payload) for payload, _ in batch]
                )
            except Exception as exc:
                self.dropped += sum(count for _, count in batch)
                if conn.is_closed():
                    self._lost(str(exc))
                else:
                    logger.warning("sending live events to other processes failed: %s", exc)
