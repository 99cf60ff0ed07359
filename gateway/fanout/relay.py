"""`Relay`: the interface every way of carrying live events between processes fills,
and the batching and interest bookkeeping they share.

Events are batched per turn of the event loop (one message per peer for all the spans
a writer batch stored). Each process also tells its peers whether it has listeners
(`INTEREST`), again every `INTEREST_EVERY_S` while it has, so a process sends (and
decodes) nothing while no peer listens; a peer not heard from for
`INTEREST_TTL_S` counts as not listening (it died, or its message was lost). A process
that starts greets its peers (`HELLO`), and those with listeners answer at once.

Beside the events, a small control channel (`signal`, `on_signal`): named signals sent
to every peer at once, whether or not it has listeners (the matrix engine's "a run
started", "cancel it", "a cell ended"). Like events they may be lost (a full buffer):
whoever sends one also keeps a slower way of learning it (a poll of the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import orjson

logger = logging.getLogger(__name__)

INTEREST_EVERY_S = 5.0
INTEREST_TTL_S = 3 * INTEREST_EVERY_S
# A message's kinds: events to deliver, a peer's interest (listeners or none), and a
# newcomer's greeting (the peers with listeners say so at once: it may have missed it).
EVENTS = "events"
INTEREST = "interest"
HELLO = "hello"
SIGNAL = "signal"
# An event too large for one message is sent as a reference to its span (the receiver
# reads the span from the database): this key holds the span's id.
SPAN_REF = "spanlab_span_ref"

Deliver = Callable[[dict[str, Any]], None]
SignalHandler = Callable[[dict[str, Any]], None]


def encode_events(origin: str, events: list[dict[str, Any]], limit: int) -> list[tuple[bytes, int]]:
    """``events`` as messages of at most ``limit`` bytes, each with how many events it
    holds; an event too large alone goes as a reference to its span (``SPAN_REF``), or
    is left out if it is no span."""
    head = orjson.dumps({"kind": EVENTS, "from": origin, "events": []})[:-2]  # ...[
    room = limit - len(head) - 2
    messages: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    size = 0
    for event in events:
        encoded = orjson.dumps(event)
        if len(encoded) > room:
            span_id = event.get("span_id")
            if not isinstance(span_id, str):
                logger.warning("a live event of %d bytes is too large to relay", len(encoded))
                continue
            encoded = orjson.dumps({SPAN_REF: span_id})
        if parts and size + len(encoded) + 1 > room:
            messages.append((head + b",".join(parts) + b"]}", len(parts)))
            parts, size = [], 0
        parts.append(encoded)
        size += len(encoded) + 1
    if parts:
        messages.append((head + b",".join(parts) + b"]}", len(parts)))
    return messages


class Relay(ABC):
    """Carries this process's events to its peers, and theirs to ``deliver``."""

    def __init__(self) -> None:
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.dropped = 0  # events a peer will not see (a full buffer, a lost connection)
        self._deliver: Deliver | None = None
        self._pending: list[dict[str, Any]] = []
        self._flush_scheduled = False
        self._interested: dict[str, float] = {}  # peer origin -> when it last said so
        self._listening = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._handlers: dict[str, SignalHandler] = {}

    # --- what the gateway uses ------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        await self.open()
        self.greet()
        self._heartbeat = asyncio.get_running_loop().create_task(self._keep_interest())

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._listening:
            self._listening = False
            self.transmit({"kind": INTEREST, "from": self.origin, "listening": False})
        await self.shut()

    @property
    def peers_listening(self) -> bool:
        """Whether any peer has a listener (then events are worth sending)."""
        if not self._interested:
            return False
        now = time.monotonic()
        for origin, heard in list(self._interested.items()):
            if now - heard > INTEREST_TTL_S:
                del self._interested[origin]
        return bool(self._interested)

    def greet(self) -> None:
        """Tell the peers this process is (again) there, and whether it listens; those
        with listeners answer (after a start, or a transport's reconnection)."""
        self.transmit({"kind": HELLO, "from": self.origin})
        if self._listening:
            self.transmit({"kind": INTEREST, "from": self.origin, "listening": True})

    def listening(self, yes: bool) -> None:
        """This process's listeners came (True) or all went (False)."""
        if yes != self._listening:
            self._listening = yes
            self.transmit({"kind": INTEREST, "from": self.origin, "listening": yes})

    def send(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for the peers: sent at the end of this turn of the loop,
        with whatever else is queued by then. Never blocks, never raises."""
        self._pending.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def signal(self, name: str, data: dict[str, Any]) -> None:
        """Send the signal ``name`` with ``data`` to every peer now (not batched, not
        gated by listeners). Never raises."""
        try:
            self.transmit({"kind": SIGNAL, "from": self.origin, "name": name, "data": data})
        except Exception:  # a relay must never break the sender
            logger.exception("sending the %s signal failed", name)

    def on_signal(self, name: str, handler: SignalHandler) -> None:
        """Call ``handler(data)`` for each ``name`` signal a peer sends (one per name)."""
        self._handlers[name] = handler

    # --- what a transport calls -----------------------------------------------------

    def received(self, message: dict[str, Any]) -> None:
        """A message from a peer (or this process's own, which is ignored)."""
        sender = message.get("from")
        if sender == self.origin or not isinstance(sender, str):
            return
        kind = message.get("kind")
        if kind == HELLO:
            if self._listening:
                self.transmit({"kind": INTEREST, "from": self.origin, "listening": True})
        elif kind == INTEREST:
            if message.get("listening"):
                self._interested[sender] = time.monotonic()
            else:
                self._interested.pop(sender, None)
        elif kind == SIGNAL:
            handler = self._handlers.get(str(message.get("name")))
            data = message.get("data")
            if handler is not None and isinstance(data, dict):
                try:
                    handler(data)
                except Exception:  # one bad handler must not stop the transport
                    logger.exception("handling the %s signal failed", message.get("name"))
        elif kind == EVENTS and self._deliver is not None:
            for event in message.get("events") or ():
                if isinstance(event, dict):
                    self._deliver(event)

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def shut(self) -> None: ...

    @abstractmethod
    def transmit(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every peer now (or count what could not be sent)."""

    @abstractmethod
    def send_events(self, events: list[dict[str, Any]]) -> None:
        """Send ``events`` to every peer, in as many messages as the transport needs."""

    # --- inside ---------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        events, self._pending = self._pending, []
        if events:
            try:
                self.send_events(events)
            except Exception:  # a relay must never break the publisher
                self.dropped += len(events)
                logger.exception("relaying %d live events failed", len(events))

    async def _keep_interest(self) -> None:
        while True:
            await asyncio.sleep(INTEREST_EVERY_S)
            if self._listening:
                self.transmit({"kind": INTEREST, "from": self.origin, "listening": True})
