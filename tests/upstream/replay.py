"""Provider streams from ``tests/upstream/recordings/`` replayed by the fake upstream,
so that a change in how a provider streams (or in how the gateway reads it) shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.upstream.server import Reply

RECORDINGS = Path(__file__).parent / "recordings"


def events(name: str) -> list[bytes]:
    """The recording's SSE events, each with its blank-line end, as they go on the wire."""
    raw = (RECORDINGS / f"{name}.sse").read_bytes()
    return [event + b"\n\n" for event in raw.split(b"\n\n") if event]


def data(name: str) -> list[Any]:
    """The JSON ``data:`` of each event (``[DONE]`` left out)."""
    out: list[Any] = []
    for event in events(name):
        for line in event.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                out.append(orjson.loads(line[len(b"data: ") :]))
    return out


def replay(name: str) -> Reply:
    """The recording as the fake's reply: event by event, as the provider sent it."""
    return Reply(200, "text/event-stream; charset=utf-8", events(name))
