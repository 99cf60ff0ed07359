"""The server side's wire: uvicorn's httptools protocol, with a response's writes
coalesced into one send.

Why: uvicorn writes a response's status line and headers as soon as the app starts
the response, and its body in a second write, so every response costs two ``send``
system calls (and, often, two TCP segments). On loopback a send also runs the
receiving side's TCP work; in the benchmark's profile the two sends were ~12% of the
gateway's CPU per call. Here the writes made during one turn of the event loop (the
head and the body of a whole response, or an event of a stream) are joined and sent
once, when the loop gets to the callback queued by the first of them: within the
same turn's ready callbacks, so no timer and no added round trip. A streamed
(chunked) response's writes go out at once instead: each is one event, in a turn
of its own, so there is nothing to join, and held until the next turn they waited
in this process (2.4 MB with 1,000 streams ending together, traced).

Per connection, the protocol keeps less than uvicorn's own: `Signal` and
`Pipelined` stand in for its two ``asyncio.Event`` objects and its deque (~2 KB), the
guard's state is in slots, and the app is told of a lost client by a callback
(`DisconnectHook`, under `CONNECTION_KEY` in the scope) rather than by a task of its
own waiting on ``receive()``. Traced with 1,000 streams in flight in process
(tracemalloc, 32 events x 600 ms, 10 s in), these and the proxy's own cuts took a
stream from 34.7 KB to 25.9 KB; `python -m bench --sections 4` (RSS above idle per
1,000 streams, load 3.5-5) from 40.4 MB to 32.5-33.6 MB.

`GuardedHttpToolsProtocol` adds what uvicorn lacks against slow clients (slowloris):

- **A deadline for the request head** (``client_header_timeout``): from the connection
  (or, on a kept-alive one, the first byte of the next request) until the headers are
  in. Past it the client gets 408 and the connection is closed (a connection that sent
  nothing at all is just closed). uvicorn has only an idle keep-alive timer, armed after
  a response and disarmed by any byte, so a client sending a header line every few
  seconds held its connection for ever.
- **A backstop for the body**: the body readers (`gateway.proxy.endpoint.read_body`,
  `gateway.api.read_body`) answer 408 in the error shape at ``client_body_timeout``;
  the server closes what is still unread once the head's and the body's time are both
  over, plus a second (a route that answered without reading the body, say), with a
  408 if nothing was answered yet.
- **A connection limit** (``max_client_connections``). Past it, each new connection,
  once read, closes the one the server has waited on longest without a request in
  progress (a head still arriving, or an idle kept-alive one), so a newcomer gets a
  slot (see `GuardedHttpToolsProtocol.make_room` for connections not read yet).
  Refusing the newcomer instead (uvicorn's ``limit_concurrency``, which also counts
  connections stalled in their head) is the failure itself: slow connections keep
  the slots and every normal call gets 503. A connection with a request in progress
  (its body arriving, the app answering, a stream) is never closed for room; when all
  are, a newcomer's request is answered 503 and its connection closed. The process's
  open-file limit is raised to fit the limit at start (`fit_to_file_limit`): running
  out of files is what made every call fail (accept() failing), not the number of
  connections itself.

Cost on the hot path: per request a few attribute writes, one ``loop.time()`` and two
dict operations (the table of waiting connections, so making room needs no
scan); one timer handle per connection, re-armed at most once per deadline period (it
is checked when it fires, not moved at every request), none per chunk.

Used by `spanlab serve` (``uvicorn.Config(http=guarded_protocol(limits))``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.errors import RequestTimeout, ServiceUnavailable, SpanlabError

__all__ = [
    "CONNECTION_KEY",
    "ClientLimits",
    "CoalescingHttpToolsProtocol",
    "CoalescingTransport",
    "DisconnectHook",
    "GuardedHttpToolsProtocol",
    "Pipelined",
    "Signal",
    "fit_to_file_limit",
    "guarded_protocol",
]

logger = logging.getLogger(__name__)

# What the server closes past client_body_timeout: later than the body readers' own
# deadline (which starts a little after the headers are in, and answers in the
# error shape), so it only catches what they did not.
BODY_GRACE_S = 1.0
# File descriptors the gateway needs besides client and upstream connections: the
# listening socket, the event loop, the database and its WAL, the writer process's
# pipes, logs.
RESERVED_FILES = 64
# Connections not read yet may take the open connections this many times past the
# limit before any of them is closed (a burst accepted before it could be read).
UNREAD_ALLOWANCE = 2
# How often at most the connection limit is logged.
LIMIT_LOG_INTERVAL_S = 10.0

# Bytes written in one loop turn past which they go to the real transport at once.
FLUSH_AT = 256 * 1024
# What ends a chunked response (uvicorn writes it alone: the app's last, empty body).
LAST_CHUNK = b"0\r\n\r\n"


class CoalescingTransport:
    """A transport whose writes in one loop turn go out as one write to the real one.

    Everything else is the real transport's: flow control (pause_writing and
    resume_writing reach the protocol from the real transport, counting what it holds),
    reading, extra info. ``close`` sends what is pending first; ``abort`` drops it.
    """

    __slots__ = ("_loop", "_pending", "_size", "_transport", "protocol")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        # The connection's protocol, whose response decides (see `write`); None when
        # lost, or for a transport made without one.
        self.protocol: HttpToolsProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        protocol = self.protocol
        if protocol is not None and data != LAST_CHUNK:
            cycle = protocol.cycle
            if cycle is not None and cycle.chunked_encoding:
                # A streamed response (no length): its events come one write per
                # upstream read, in turns of their own, so joining has nothing to
                # join; written at once, they skip a copy and a callback each, and do
                # not wait in this process (memory) while the loop works through
                # other streams' turns. (What is pending goes first: same order.)
                # Its end (the last chunk) still waits for the turn's flush: the
                # call's span goes to the writer process in the same turn, before
                # that flush, so a client never holds a whole response whose span a
                # kill -9 of the gateway could lose (tests/e2e/test_kill9.py).
                if self._pending:
                    self.flush()
                self._transport.write(data)
                return
        pending = self._pending
        pending.append(bytes(data))
        if len(pending) == 1:
            self._size = len(data)
            self._loop.call_soon(self.flush)
        else:
            self._size += len(data)
            if self._size > FLUSH_AT:
                # Past this, the real transport must have it: its flow control (the
                # server pausing the app's sends) only counts what it holds, and a
                # relay that never yields (a gzip bomb inflating from one network
                # read) would otherwise pile up the whole response here.
                self.flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Signal:
    """What uvicorn uses ``asyncio.Event`` for (``set``, ``clear``, ``is_set``,
    ``wait``), holding its waiters in a list made at the first wait.

    Why: an ``asyncio.Event`` keeps its waiters in a deque, and an empty deque takes
    ~630 bytes (a block of 64 slots); uvicorn makes two per connection (the request
    cycle's message event and the flow control's), which rarely have a waiter at all.
    Traced with 1,000 streams open (tracemalloc), they were ~1.3 KB of each stream's
    ~36 KB."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            if self._waiters:
                for waiter in self._waiters:
                    if not waiter.done():
                        waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            waiters.remove(waiter)


class Pipelined(list[Any]):
    """uvicorn's queue of pipelined requests (it uses ``appendleft``, ``pop`` and its
    truth) as a list: a deque is ~760 bytes for a connection that, from any
    client in practice, never pipelines."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


# The scope key under which `GuardedHttpToolsProtocol` hands the app its connection, a
# `DisconnectHook`.
CONNECTION_KEY = "spanlab.connection"


class DisconnectHook(Protocol):
    """What the app may set on its connection: ``on_disconnect``, called once when
    the client goes away (the connection is lost), instead of a task waiting on
    ``receive()`` for ``http.disconnect`` (`gateway.proxy.endpoint.ProxyEndpoint`)."""

    on_disconnect: Callable[[], None] | None


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = CoalescingTransport(transport, asyncio.get_running_loop())
        wrapped.protocol = self
        super().connection_made(cast(asyncio.Transport, wrapped))
        # Leaner stand-ins for what uvicorn makes per connection (see Signal, Pipelined).
        self.flow._is_writable_event = cast(asyncio.Event, Signal(True))
        self.pipeline = cast(Any, Pipelined())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        transport: Any = self.transport
        if isinstance(transport, CoalescingTransport):
            transport.protocol = None  # no reference cycle left for the collector

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before:  # a new request's cycle (not a WebSocket upgrade)
            # Nothing waits on it yet: the app's task has not run.
            cycle.message_event = cast(asyncio.Event, Signal())


@dataclass(frozen=True)
class ClientLimits:
    max_connections: int
    header_timeout: float
    body_timeout: float


# Where the client is in sending its current request.
HEAD = 0  # the request line and headers are arriving (or nothing yet)
BODY = 1  # headers in, body arriving
BETWEEN = 2  # the request is all in: nothing owed until the next one begins


def error_response(error: SpanlabError, *extra: bytes) -> bytes:
    """A whole HTTP response with ``error`` in the error shape; the connection closes."""
    body = error.to_json()
    head = [
        STATUS_LINE[error.status_code],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        *extra,
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


HEADER_TIMEOUT = error_response(
    RequestTimeout("The request headers did not arrive within client_header_timeout.")
)
BODY_TIMEOUT = error_response(
    RequestTimeout("The request body did not arrive within client_body_timeout.")
)
BUSY = ServiceUnavailable(
    "Too many client connections (max_client_connections), all with a request in"
    " progress; retry shortly.",
    code="too_many_connections",
    headers={"retry-after": "1", "connection": "close"},
)
STALLED = error_response(
    ServiceUnavailable(
        "Too many client connections (max_client_connections): this one, waiting longest"
        " for its request, was closed.",
        code="too_many_connections",
    )
)


async def refuse_busy(scope: Scope, receive: Receive, send: Send) -> None:
    """The app of a connection accepted past the limit when no room could be made."""
    body = BUSY.to_json()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.encode(), v.encode()) for k, v in BUSY.headers.items()]
    await send({"type": "http.response.start", "status": BUSY.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ConnectionTable:
    """The connections a new one may displace, oldest first, shared by the connections
    of one server. Dicts used as ordered sets: insertion, removal and taking the oldest
    are O(1), so making room costs no scan."""

    __slots__ = ("closing", "last_log", "unread", "waiting")

    def __init__(self) -> None:
        # Accepted, nothing read yet.
        self.unread: dict[GuardedHttpToolsProtocol, None] = {}
        # Read, and owing the server something with no request in progress: the rest
        # of a head, or (kept alive) a next request.
        self.waiting: dict[GuardedHttpToolsProtocol, None] = {}
        self.closing = 0  # closed to make room, not yet gone
        self.last_log = float("-inf")

    def take_oldest(
        self, table: dict[GuardedHttpToolsProtocol, None], spare: GuardedHttpToolsProtocol
    ) -> GuardedHttpToolsProtocol | None:
        for connection in table:
            if connection is not spare and not connection.responding():
                del table[connection]
                return connection
        return None


class GuardedHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """`CoalescingHttpToolsProtocol` with deadlines for slow clients and a connection
    limit (see the module docstring). `guarded_protocol` makes one with its limits.

    Each request's scope holds the connection under `CONNECTION_KEY`, as a
    `DisconnectHook`."""

    # In slots, not in the instance's dict: with uvicorn's ~28 attributes, these took
    # the dict past the 30 keys an instance dict shares with its class, and it became
    # a dict of its own (~1.6 KB per connection, traced; ~0.3 KB within the limit).
    __slots__ = ("evicted", "on_disconnect", "phase", "received", "since", "timer", "timer_at")

    limits: ClassVar[ClientLimits]
    table: ClassVar[ConnectionTable]

    on_disconnect: Callable[[], None] | None  # set by the app (see DisconnectHook)
    phase: int
    since: float  # when the phase began (loop time)
    received: bool  # bytes arrived since the connection was made
    evicted: bool  # closed to make room
    timer: asyncio.TimerHandle | None
    timer_at: float

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.received = False
        self.evicted = False
        self.timer = None
        self.on_disconnect = None
        self.enter_head()
        table = self.table
        table.unread[self] = None
        if len(self.connections) - table.closing > self.limits.max_connections:
            self.make_room(newcomer=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        table = self.table
        table.unread.pop(self, None)
        table.waiting.pop(self, None)
        if self.evicted:
            self.evicted = False
            table.closing -= 1
        super().connection_lost(exc)
        scope = self.scope
        if scope is not None:
            # The scope referred back to this connection: let reference counting free both.
            scope.pop(CONNECTION_KEY, None)  # type: ignore[misc]
        hook = self.on_disconnect
        if hook is not None:
            self.on_disconnect = None
            hook()

    def data_received(self, data: bytes) -> None:
        if self.phase == BETWEEN:
            # The next request begins (enter_head, inlined: this runs per request).
            # Kept alive and idle, the connection is among the waiting already;
            # answering one, it cannot be closed for room anyway.
            self.phase = HEAD
            self.since = now = self.loop.time()
            deadline = now + self.limits.header_timeout
            if self.timer is None or self.timer_at > deadline:
                self.watch(deadline)
        elif not self.received:
            self.received = True
            table = self.table
            table.unread.pop(self, None)
            table.waiting[self] = None
            if len(self.connections) - table.closing > self.limits.max_connections:
                self.make_room(newcomer=False)
        super().data_received(data)

    def on_message_begin(self) -> None:
        if self.phase == BETWEEN:  # a pipelined request, in the same read as the last
            self.enter_head()
        super().on_message_begin()
        self.scope[CONNECTION_KEY] = self  # type: ignore[literal-required]

    def on_headers_complete(self) -> None:
        # ``since`` stays the head's start: the body's backstop counts from there (one
        # clock reading per request, not two). No timer work: the one pending (the
        # head's) is re-armed when it fires.
        self.phase = BODY
        self.table.waiting.pop(self, None)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.phase = BETWEEN
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.phase == BETWEEN and self.cycle.response_complete:  # not a pipelined one
            # Idle, kept alive: it joins the end of the waiting, and may make room.
            self.table.waiting[self] = None

    def responding(self) -> bool:
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete

    # --- deadlines ----------------------------------------------------------------------

    def enter_head(self) -> None:
        self.phase = HEAD
        self.since = now = self.loop.time()
        self.watch(now + self.limits.header_timeout)

    def watch(self, deadline: float) -> None:
        """Make sure the timer fires by ``deadline``."""
        timer = self.timer
        if timer is None or self.timer_at > deadline:
            if timer is not None:
                timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self.check_deadline)

    def check_deadline(self) -> None:
        self.timer = None
        if self.transport.is_closing():
            return
        if self.phase == HEAD:
            deadline = self.since + self.limits.header_timeout
        elif self.phase == BODY:
            limits = self.limits
            deadline = self.since + limits.header_timeout + limits.body_timeout + BODY_GRACE_S
        else:
            return  # nothing owed: the keep-alive timer or the app's own deadlines rule
        if self.loop.time() < deadline:
            self.watch(deadline)
        elif self.phase == HEAD:
            self.head_expired()
        else:
            self.body_expired()

    def head_expired(self) -> None:
        logger.debug("closing a connection whose request head did not arrive in time")
        if self.received and not self.responding():
            self.transport.write(HEADER_TIMEOUT)
        self.transport.close()

    def body_expired(self) -> None:
        logger.debug("closing a connection whose request body did not arrive in time")
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            # The app is still waiting for the body: it now sees a disconnect, and
            # whatever it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.write(BODY_TIMEOUT)
        self.transport.close()

    # --- the connection limit -----------------------------------------------------------

    def make_room(self, *, newcomer: bool) -> None:
        """Close connections past the limit, one for one: those waiting longest on their
        clients (a head still arriving, or an idle kept-alive one) first.

        A connection is judged once it has been read (``newcomer`` False: its first
        bytes just came): under load a burst of connections is accepted before any of
        them is read, and a normal client's whole head comes in its first read, so
        closing unread ones would close normal clients as readily as slow ones. Only
        past twice the limit (`UNREAD_ALLOWANCE`) are unread ones closed, oldest
        first, and with none left the newcomer's request is refused (503)."""
        table = self.table
        limit = self.limits.max_connections
        refused = False
        while (count := len(self.connections) - table.closing) > limit:
            victim = table.take_oldest(table.waiting, self)
            if victim is None:
                if not newcomer or count <= limit * UNREAD_ALLOWANCE:
                    break
                victim = table.take_oldest(table.unread, self)
                if victim is None:
                    # Every other connection has a request in progress.
                    self.app = refuse_busy
                    refused = True
                    break
            if victim.phase == HEAD and victim.received:
                victim.transport.write(STALLED)
            victim.evicted = True
            table.closing += 1
            victim.transport.close()
        now = self.loop.time()
        if now - table.last_log >= LIMIT_LOG_INTERVAL_S:
            table.last_log = now
            logger.warning(
                "max_client_connections (%d) reached: %s",
                limit,
                "refusing requests, every connection has one in progress"
                if refused
                else "closing the connections waiting longest on their clients",
            )


def guarded_protocol(limits: ClientLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` (it takes a class, not a factory),
    with its limits and a connection table of its own."""
    attributes = {"limits": limits, "table": ConnectionTable()}
    return type("SpanlabHttpProtocol", (GuardedHttpToolsProtocol,), attributes)


def fit_to_file_limit(wanted: int) -> int:
    """Raise the process's open-file limit towards what ``wanted`` client connections
    need (one file each, twice over for the unread allowance, one more for an upstream
    call, and `RESERVED_FILES`), as far as the hard limit allows; return the client
    connections that fit."""
    if sys.platform == "win32":
        return wanted
    import resource

    per_connection = UNREAD_ALLOWANCE + 1  # unread allowance, and an upstream call each
    need = per_connection * wanted + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            logger.warning("could not raise the open-file limit from %d to %d", soft, target)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    fitted = max(1, (soft - RESERVED_FILES) // per_connection)
    logger.warning(
        "max_client_connections lowered from %d to %d: the open-file limit (ulimit -n) is"
        " %d; raise it to %d for the configured limit",
        wanted,
        fitted,
        soft,
        need,
    )
    return fitted
