"""The coalescing transport under `spanlab serve`: a response's writes in one loop turn
go out as one write, in order; closing sends what is pending, aborting drops it."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.http_server import FLUSH_AT, CoalescingTransport


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
