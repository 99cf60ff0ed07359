"""Server-sent events: split a byte stream into whole events without copying them.

The proxy forwards an upstream stream event by event: each event's bytes go to the
client exactly as the upstream sent them, and a parsed copy feeds the span. Splitting
on event boundaries (rather than forwarding arbitrary network chunks) is what lets the
proxy drop the usage-only chunk it asked for, and end a broken stream with an error
event instead of a ``[DONE]``.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


@dataclass(slots=True)
class SSEEvent:
    raw: bytes  # the event's bytes as received, boundary included
    event: str | None
    data: str  # the data lines joined with "\n"; "" for a comment-only event


class SSESplitter:
    """Feed bytes in, get whole events out; ``tail`` holds an unfinished event."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        held = self._buffer
        buffer = held + chunk if held else chunk
        events: list[bytes] = []
        start = 0
        # The unfinished event held has no boundary in it: only one that ends in the
        # new bytes can be found (one starts at most 3 bytes back).
        search = len(held) - 3 if len(held) > 3 else 0
        # The next position of each kind of boundary, found once and looked for again
        # only once passed: a kind absent from the buffer is not searched for again
        # after each event (a chunk of many events would take quadratic time).
        lf = buffer.find(b"\n\n", search)
        crlf = buffer.find(b"\r\n\r\n", search)
        cr = buffer.find(b"\r\r", search)
        if crlf < 0 and cr < 0:  # the common case: lines end in LF
            while lf >= 0:
                end = lf + 2
                events.append(buffer[start:end])
                start = end
                lf = buffer.find(b"\n\n", end)
            self._buffer = buffer[start:]
            return events
        while True:
            if 0 <= lf < search:
                lf = buffer.find(b"\n\n", search)
            if 0 <= crlf < search:
                crlf = buffer.find(b"\r\n\r\n", search)
            if 0 <= cr < search:
                cr = buffer.find(b"\r\r", search)
            # The boundary that ends first.
            end = lf + 2 if lf >= 0 else -1
            if crlf >= 0 and (end < 0 or crlf + 4 < end):
                end = crlf + 4
            if cr >= 0 and (end < 0 or cr + 2 < end):
                end = cr + 2
            if end < 0:
                break
            events.append(buffer[start:end])
            start = search = end
        self._buffer = buffer[start:]
        return events

    @property
    def tail(self) -> bytes:
        return self._buffer


def parse_event(raw: bytes) -> SSEEvent:
    text = raw.decode("utf-8", errors="replace")
    event: str | None = None
    data: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    return SSEEvent(raw=raw, event=event, data="\n".join(data))


def encode_event(data: str, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return (head + body + "\n").encode()
