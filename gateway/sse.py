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
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start = 0
        while True:
            end = _find_boundary(buffer, start)
            if end < 0:
                break
            events.append(buffer[start:end])
            start = end
        self._buffer = buffer[start:]
        return events

    @property
    def tail(self) -> bytes:
        return self._buffer


def _find_boundary(buffer: bytes, start: int) -> int:
    """Index just past the first event boundary at or after ``start``, or -1."""
    best = -1
    for sep in _BOUNDARIES:
        i = buffer.find(sep, start)
        if i >= 0 and (best < 0 or i + len(sep) < best):
            best = i + len(sep)
    return best


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
