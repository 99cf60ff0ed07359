"""A mock OpenAI-compatible upstream, built to cost as little CPU as possible.

Raw asyncio protocol on uvloop with the httptools parser: no framework, responses
pre-encoded. Each request says how to answer in headers (they pass through the
gateway unchanged):

* ``x-mock-latency-ms``: wait this long before answering (before the first event of
  a stream);
* ``x-mock-chunks``: content events in a stream (the last carries ``finish_reason``);
* ``x-mock-interval-ms``: time between two events; events are scheduled at absolute
  times (start + i * interval), so a slow consumer never shifts the schedule.

A body containing ``"stream":true`` gets a stream; ``"include_usage":true`` adds the
usage-only chunk before ``[DONE]`` (the gateway asks for it and strips it again).
``GET /_stats`` returns counters (requests, content events sent).

Run: ``python -m bench.mock_upstream --port 9001``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

import httptools

from bench.util import run

MODEL = "gpt-4o-mini-2024-07-18"

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The quick brown fox jumps over the lazy dog. " * 3,
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 42, "completion_tokens": 30, "total_tokens": 72},
    },
    separators=(",", ":"),
).encode()

COMPLETION_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(COMPLETION)).encode() + b"\r\n\r\n" + COMPLETION
)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found"
)


def _chunk_event(i: int, last: bool) -> bytes:
    delta: dict[str, Any] = {"content": f"tok{i} "}
    if i == 0:
        delta["role"] = "assistant"
    event = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
    }
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def _framed(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


USAGE_EVENT = _framed(
    b"data: "
    + json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 42, "completion_tokens": 64, "total_tokens": 106},
        },
        separators=(",", ":"),
    ).encode()
    + b"\n\n"
)
DONE_EVENT = _framed(b"data: [DONE]\n\n") + b"0\r\n\r\n"

_CHUNK_CACHE: dict[tuple[int, bool], bytes] = {}


def chunk(i: int, last: bool) -> bytes:
    key = (i, last)
    data = _CHUNK_CACHE.get(key)
    if data is None:
        data = _CHUNK_CACHE[key] = _framed(_chunk_event(i, last))
    return data


class Stats:
    requests = 0
    stream_events = 0
    streams = 0


class MockProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.handles: set[asyncio.TimerHandle] = set()
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.mock: dict[bytes, bytes] = {}
        self.body: list[bytes] = []

    # --- asyncio ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        for handle in self.handles:
            handle.cancel()
        self.handles.clear()
        self.transport = None

    # --- httptools ----------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name[:7].lower() == b"x-mock-":
            self.mock[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url, mock, body = self.url, self.mock, b"".join(self.body)
        self._reset()
        if url.startswith(b"/_stats"):
            self._write(self._stats())
            return
        if not url.startswith(b"/v1/"):
            self._write(NOT_FOUND)
            return
        Stats.requests += 1
        latency = float(mock.get(b"x-mock-latency-ms", b"0")) / 1000.0
        if b'"stream":true' in body or b'"stream": true' in body:
            chunks = int(mock.get(b"x-mock-chunks", b"64"))
            interval = float(mock.get(b"x-mock-interval-ms", b"20")) / 1000.0
            usage = b'"include_usage":true' in body or b'"include_usage": true' in body
            self._start_stream(latency, chunks, interval, usage)
        elif latency > 0:
            self._later(self.loop.time() + latency, self._write, COMPLETION_RESPONSE)
        else:
            self._write(COMPLETION_RESPONSE)

    # --- responses ----------------------------------------------------------------

    def _stats(self) -> bytes:
        body = json.dumps(
            {
                "requests": Stats.requests,
                "streams": Stats.streams,
                "stream_events": Stats.stream_events,
            }
        ).encode()
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _later(self, when: float, fn: Any, *args: Any) -> None:
        handle: asyncio.TimerHandle

        def run() -> None:
            self.handles.discard(handle)
            fn(*args)

        handle = self.loop.call_at(when, run)
        self.handles.add(handle)

    def _start_stream(self, latency: float, chunks: int, interval: float, usage: bool) -> None:
        Stats.streams += 1
        self._write(STREAM_HEAD)
        start = self.loop.time() + latency

        def send(i: int) -> None:
            if self.transport is None or self.transport.is_closing():
                return
            last = i == chunks - 1
            Stats.stream_events += 1
            if last:
                self._write(chunk(i, True) + (USAGE_EVENT if usage else b"") + DONE_EVENT)
                return
            self._later(start + (i + 1) * interval, send, i + 1)
            self._write(chunk(i, False))

        if chunks <= 0:
            self._write(DONE_EVENT)
        elif latency > 0:
            self._later(start, send, 0)
        else:
            send(0)


async def serve(host: str, port: int, ready: str | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready:
        print(ready, flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready", default="ready", help="line printed once listening")
    args = parser.parse_args()
    run(serve(args.host, args.port, args.ready))


if __name__ == "__main__":
    main()
