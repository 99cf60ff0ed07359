"""The server side's wire: uvicorn's httptools protocol, with a response's writes
coalesced into one send.

Why: uvicorn writes a response's status line and headers as soon as the app starts
the response, and its body in a second write, so every response costs two ``send``
system calls (and, often, two TCP segments). On loopback a send also runs the
receiving side's TCP work; in the benchmark's profile the two sends were ~12% of the
gateway's CPU per call. Here the writes made during one turn of the event loop (the
head and the body of a whole response, or an event of a stream) are joined and sent
once, when the loop gets to the callback queued by the first of them: within the
same turn's ready callbacks, so no timer and no added round trip.

Used by `spanlab serve` (``uvicorn.Config(http=CoalescingHttpToolsProtocol)``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]

# Bytes written in one loop turn past which they go to the real transport at once.
FLUSH_AT = 256 * 1024


class CoalescingTransport:
    """A transport whose writes in one loop turn go out as one write to the real one.

    Everything else is the real transport's: flow control (pause_writing and
    resume_writing reach the protocol from the real transport, counting what it holds),
    reading, extra info. ``close`` sends what is pending first; ``abort`` drops it.
    """

    __slots__ = ("_loop", "_pending", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)
