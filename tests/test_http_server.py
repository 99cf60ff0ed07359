"""The server protocol under `spanlab serve`: a response's writes in one loop turn go
out as one write, in order (closing sends what is pending, aborting drops it); slow
clients meet deadlines, and past the connection limit the connections waiting longest
make room."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.http.server import (
    CONNECTION_KEY,
    FLUSH_AT,
    RESERVED_FILES,
    ClientLimits,
    CoalescingTransport,
    GuardedHttpToolsProtocol,
    Pipelined,
    Signal,
    guarded_protocol,
)


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name == "sockname" else default


async def test_writes_in_one_turn_go_out_as_one() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"")
    transport.write(bytearray(b"ok"))
    assert real.writes == []  # not yet: the turn is not over
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    transport.write(b"data: 1\n\n")  # a later turn: a write of its own
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"data: 1\n\n"]
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8080)  # the rest: delegated


async def test_close_sends_what_is_pending_and_abort_drops_it() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last words")
    transport.close()
    assert real.writes == [b"last words"] and real.closed
    await asyncio.sleep(0)
    assert real.writes == [b"last words"]  # the queued flush finds nothing left

    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert real.writes == [] and real.aborted


# --- slow clients and the connection limit (GuardedHttpToolsProtocol) --------------------


class FakeSocket(RecordingTransport):
    """What uvicorn's protocol asks of a transport, recording what it is sent."""

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5000)}.get(name, default)

    @property
    def sent(self) -> bytes:
        return b"".join(self.writes)


class Server:
    """Connections of one guarded protocol class over fake sockets, to an app that
    answers at once, or holds its answer until ``release`` is set."""

    def __init__(self, limit: int, header_timeout: float = 10.0) -> None:
        release = self.release = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"] == "/hold":
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.cls = guarded_protocol(ClientLimits(limit, header_timeout, 10.0))
        self.config = Config(app=app, http=self.cls, lifespan="off", access_log=False)
        self.config.load()
        self.state = ServerState()

    def connect(self) -> tuple[GuardedHttpToolsProtocol, FakeSocket]:
        protocol = self.cls(
            config=self.config,
            server_state=self.state,
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        sock = FakeSocket()
        protocol.connection_made(sock)  # type: ignore[arg-type]
        return protocol, sock

    def lose(self, *pairs: tuple[GuardedHttpToolsProtocol, FakeSocket]) -> None:
        """What the loop does after a close: report the connection lost."""
        for protocol, sock in pairs:
            if sock.closed:
                protocol.connection_lost(None)


PARTIAL = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
WHOLE = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def test_past_the_limit_the_connection_waiting_longest_is_closed() -> None:
    server = Server(limit=3)
    stalled, stalled_sock = server.connect()
    stalled.data_received(PARTIAL)
    idle, idle_sock = server.connect()
    idle.data_received(WHOLE)
    await asyncio.sleep(0.01)  # answered; kept alive, idle
    assert idle_sock.sent.startswith(b"HTTP/1.1 200 ")
    busy, busy_sock = server.connect()
    busy.data_received(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.01)

    # Each newcomer closes one, the one waited on longest: the stalled head first...
    first, first_sock = server.connect()
    assert stalled_sock.closed and b" 503 " in stalled_sock.sent
    assert b"too_many_connections" in stalled_sock.sent
    assert not idle_sock.closed
    server.lose((stalled, stalled_sock))
    # ...then the idle kept-alive one (nothing to answer there).
    second, second_sock = server.connect()
    assert idle_sock.closed and idle_sock.sent.count(b"HTTP/1.1") == 1
    server.lose((idle, idle_sock))
    # A request in progress is never closed for room; the newcomers are served.
    for protocol, sock in ((first, first_sock), (second, second_sock)):
        protocol.data_received(WHOLE)
        await asyncio.sleep(0.01)
        assert sock.sent.startswith(b"HTTP/1.1 200 ")
    assert not busy_sock.closed
    server.release.set()
    await asyncio.sleep(0.01)
    assert busy_sock.sent.startswith(b"HTTP/1.1 200 ")


async def test_unread_connections_are_closed_only_past_twice_the_limit() -> None:
    server = Server(limit=2)
    pairs = [server.connect() for _ in range(4)]  # a burst, not read yet: allowed
    assert not any(sock.closed for _, sock in pairs)
    fifth = server.connect()
    assert pairs[0][1].closed and pairs[0][1].sent == b""  # the oldest unread
    assert not any(sock.closed for _, sock in pairs[1:]) and not fifth[1].closed


async def test_when_every_connection_is_busy_a_newcomer_gets_503() -> None:
    server = Server(limit=1)
    busy = [server.connect(), server.connect()]
    for protocol, _ in busy:
        protocol.data_received(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    newcomer, sock = server.connect()
    newcomer.data_received(WHOLE)
    await asyncio.sleep(0.01)
    head, _, body = sock.sent.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in head
    assert orjson.loads(body)["error"]["code"] == "too_many_connections"
    assert sock.closed
    assert not any(s.closed for _, s in busy)
    server.release.set()
    await asyncio.sleep(0.01)


async def test_a_head_deadline_holds_however_the_bytes_trickle() -> None:
    server = Server(limit=10, header_timeout=0.2)
    protocol, sock = server.connect()
    protocol.data_received(PARTIAL)
    for _ in range(5):
        await asyncio.sleep(0.05)
        protocol.data_received(b"X-Slow: 1\r\n")
    await asyncio.sleep(0.05)
    assert sock.closed and sock.sent.startswith(b"HTTP/1.1 408 ")
    silent, silent_sock = server.connect()
    await asyncio.sleep(0.25)
    assert silent_sock.closed and silent_sock.sent == b""
    server.lose((protocol, sock), (silent, silent_sock))
    assert not server.cls.table.waiting and not server.cls.table.unread


async def test_a_request_in_progress_has_no_head_deadline() -> None:
    server = Server(limit=10, header_timeout=0.1)
    protocol, sock = server.connect()
    protocol.data_received(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.3)  # the app takes its time: not the client's fault
    assert not sock.closed
    server.release.set()
    await asyncio.sleep(0.01)
    assert sock.sent.startswith(b"HTTP/1.1 200 ")
    await asyncio.sleep(0.15)  # idle after: uvicorn's keep-alive timer's business
    assert not sock.closed
    protocol.data_received(b"GET /")  # the next head has a deadline again
    await asyncio.sleep(0.15)
    assert sock.closed and sock.sent.count(b"HTTP/1.1 408 ") == 1


FIT = """
import resource, sys
from gateway.http.server import fit_to_file_limit
resource.setrlimit(resource.RLIMIT_NOFILE, (100, 256))
print(fit_to_file_limit(50), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
print(fit_to_file_limit(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def test_the_file_limit_is_raised_to_fit_or_the_connection_limit_lowered() -> None:
    # In a process of its own: a hard limit once lowered cannot be raised again.
    done = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, check=True)
    lines = [line.split() for line in done.stdout.splitlines()]
    assert lines[0] == ["50", str(3 * 50 + RESERVED_FILES)]  # raised: it fits
    assert lines[1] == [str((256 - RESERVED_FILES) // 3), "256"]  # at the hard limit: lowered
    assert "max_client_connections lowered from 1000" in done.stderr


async def test_a_head_after_a_slow_body_still_has_its_own_deadline() -> None:
    """The timer, re-armed for the body's (later) backstop while a body was arriving,
    is brought forward when the next head begins."""
    server = Server(limit=10, header_timeout=0.1)
    protocol, sock = server.connect()
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
    await asyncio.sleep(0.15)  # the head's deadline passes while the body is due
    protocol.data_received(b"ok")
    await asyncio.sleep(0.01)
    assert sock.sent.startswith(b"HTTP/1.1 200 ") and not sock.closed
    protocol.data_received(PARTIAL)
    await asyncio.sleep(0.2)
    assert sock.closed and sock.sent.count(b"HTTP/1.1 408 ") == 1


async def test_a_turn_writing_more_than_flush_at_hands_it_on_at_once() -> None:
    """The real transport's flow control counts only what it holds: a relay that never
    yields the loop (a gzip bomb inflating from one read) must not pile up here."""
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    piece = b"x" * (FLUSH_AT // 4)
    for _ in range(4):
        transport.write(piece)
    assert real.writes == []  # not past FLUSH_AT yet
    transport.write(b"y")
    assert real.writes == [piece * 4 + b"y"]
    transport.write(b"z")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"z"]


# --- leaner per-connection state, and the disconnect hook -------------------------------


async def test_a_signal_wakes_its_waiters_as_an_event_does() -> None:
    signal = Signal()
    assert not signal.is_set()
    waiters = [asyncio.ensure_future(signal.wait()) for _ in range(2)]
    cancelled = asyncio.ensure_future(signal.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    signal.set()
    assert await asyncio.gather(*waiters) == [True, True]
    assert signal.is_set() and await signal.wait()  # set: no wait
    signal.clear()
    late = asyncio.ensure_future(signal.wait())
    await asyncio.sleep(0)
    assert not late.done()
    signal.set()
    assert await late
    assert Signal(True).is_set()


async def test_the_connection_calls_back_once_when_its_client_goes() -> None:
    scopes: list[Any] = []
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await release.wait()

    cls = guarded_protocol(ClientLimits(10, 10.0, 10.0))
    config = Config(app=app, http=cls, lifespan="off", access_log=False)
    config.load()
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    sock = FakeSocket()
    protocol.connection_made(sock)  # type: ignore[arg-type]
    protocol.data_received(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0)
    [scope] = scopes
    connection = scope[CONNECTION_KEY]
    assert connection is protocol
    # uvicorn's per-connection deques replaced by the lean stand-ins from the start.
    assert isinstance(protocol.flow._is_writable_event, Signal)
    assert protocol.flow._is_writable_event.is_set()
    assert isinstance(protocol.pipeline, Pipelined) and not protocol.pipeline
    calls: list[int] = []
    connection.on_disconnect = lambda: calls.append(1)
    protocol.connection_lost(None)
    assert calls == [1] and connection.on_disconnect is None
    assert CONNECTION_KEY not in scope  # no cycle left: freed without the collector
    assert protocol.transport.protocol is None
    protocol.connection_lost(None)  # reported twice: called back once
    assert calls == [1]
    # The request cycle still sees the disconnect as before (a Signal for its event).
    cycle = protocol.cycle
    assert cycle.disconnected and isinstance(cycle.message_event, Signal)
    release.set()
    await asyncio.sleep(0)


async def test_a_streamed_response_is_written_at_once_but_its_end_waits_for_the_flush() -> None:
    class Cycle:
        chunked_encoding: bool | None = None

    class Protocol:
        cycle = Cycle()

    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.protocol = Protocol()  # type: ignore[assignment]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")  # a length: joined
    assert real.writes == []
    Protocol.cycle.chunked_encoding = True  # the next response streams
    transport.write(b"5\r\nevent\r\n")
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", b"5\r\nevent\r\n"]
    await asyncio.sleep(0)
    assert len(real.writes) == 2  # the queued flush finds nothing left
    # Its end waits for the turn's flush (the call's span goes to the writer first).
    transport.write(b"0\r\n\r\n")
    assert len(real.writes) == 2
    await asyncio.sleep(0)
    assert real.writes[2:] == [b"0\r\n\r\n"]
