"""The fake upstream of the suite: a real HTTP/1.1 server on loopback.

Besides its own OpenAI scenarios (below) it serves any *script*: a function from a
request to a `Reply` (status, content type, body chunks, pause between chunks). The
Anthropic dialect (`tests.upstream.anthropic`), the experiments' deterministic upstream
(`tests.experiments_upstream`) and the browser tests' upstream are such scripts, and
`tests.upstream.transport` serves the same scripts in process as an httpx transport:
one behaviour, two transports.

It is written on raw asyncio streams rather than on a web framework so that each
scenario controls the wire exactly: chunk boundaries, a stream that stops without
``[DONE]``, a TCP reset in the middle of a chunked body, a response that never starts.
It runs its own event loop in a thread, records every request it receives (headers
and body, as they arrived) and notices when the peer (the gateway) hangs up before
the response is over.

The scenario of a request is chosen by the ``x-mock-scenario`` header (the gateway
forwards it upstream); ``x-test-id`` names the request so a test can find what
arrived for it. Scenarios:

``plain``               a completion, streamed when the body says ``stream``; the usage
                        chunk only when ``stream_options.include_usage`` asks for it
``tools``               a tool call; streamed, its arguments split over several deltas
``rate_limit``          429, ``Retry-After: 7`` and an OpenAI error body
``server_error``        500 and an OpenAI error body
``slow``                waits ``x-mock-delay`` seconds (default 5) before answering
``reset``               a stream that is cut by a TCP reset after a few chunks
``truncated``           a stream that ends cleanly but without ``[DONE]``
``malformed``           a stream with a chunk that is not JSON
``slow_stream``         one chunk every 0.1 s for up to 10 s (client-abort tests);
                        ``x-mock-chunks`` shortens it, ``x-mock-end-delay`` holds back
                        the end of the body after ``[DONE]``
``slow_first_token``    headers at once, the first chunk after ``x-mock-delay`` s
``echo_key``            401 whose message repeats every credential it was sent
``fragmented``          a stream written in 7-byte pieces that cut events (and the
                        keep-alive comments between them) anywhere
``crlf``                a stream whose lines end in CRLF, several events per write
``slow_end``            a whole stream, ``[DONE]`` included, but the end of the HTTP
                        body only ``x-mock-delay`` s later

``GET /v1/models`` lists `MODELS`; ``GET /v1/models/{id}`` (the id percent-decoded)
answers that model, or 404 for one it does not list.
``trailers``            a completion (streamed or not) in a chunked body that ends
                        with trailer fields: ``set-cookie`` and a second
                        ``content-type`` (neither may reach the client as a header)
``hang_up``             closes the connection without a response
``garbage``             answers bytes that are not HTTP, then closes
``bad_gzip``            a 200 whose body says gzip and is not
``cut_body``            a 200 announcing 1000 bytes, closed after a few
``gzip_bomb``           ``x-mock-size`` bytes (decoded) gzip-compressed about
                        1000:1: a JSON body of zeros, or a stream of chat chunks of
                        zeros (usage and ``[DONE]`` at the end)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

CONTENT = "Hello from the mock upstream, streamed in pieces."
PIECES = ["Hello", " from", " the", " mock", " upstream", ",", " streamed", " in", " pieces", "."]
assert "".join(PIECES) == CONTENT
PROMPT_TOKENS = 12
COMPLETION_TOKENS = len(PIECES)
TOOL_NAME = "get_weather"
TOOL_ARGUMENT_PARTS = ['{"ci', 'ty": "Par', 'is", "unit"', ': "celsius"}']
TOOL_ARGUMENTS = "".join(TOOL_ARGUMENT_PARTS)
SLOW_STREAM_INTERVAL_S = 0.1
SLOW_STREAM_CHUNKS = 100
MODEL_SNAPSHOT = "-2024-07-18"
# What GET /v1/models lists; the last one holds a "/" (as on OpenRouter or vLLM).
MODELS = ["mock-gpt-small", "mock-gpt-large", "org/mock-tuned"]


def response_model(model: str) -> str:
    """The model name the mock answers with: the requested one as a dated snapshot."""
    return model + MODEL_SNAPSHOT


def usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


@dataclass
class Received:
    """One request as it reached the mock, and what became of its connection."""

    method: str
    target: str
    headers: list[tuple[str, str]]  # names lower case, in order
    body: bytes
    received_at: float = field(default_factory=time.monotonic)
    peer_closed_at: float | None = None  # the peer hung up before the response ended
    chunks_sent: int = 0
    finished: bool = False

    def wait_peer_closed(self, timeout: float = 2.0) -> float:
        """When the peer hung up (monotonic time); fails if it has not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.peer_closed_at is None:
            assert time.monotonic() < deadline, (
                f"the connection of {self.header('x-test-id')} was still open after"
                f" {timeout}s ({self.chunks_sent} chunks sent)"
            )
            time.sleep(0.01)
        return self.peer_closed_at

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    @property
    def json(self) -> dict[str, Any]:
        value = orjson.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def scenario(self) -> str:
        return self.header("x-mock-scenario") or "plain"


@dataclass
class Reply:
    """What a script answers: the body as chunks (one per SSE event when streaming)."""

    status: int
    content_type: str
    chunks: list[bytes]
    delay: float = 0.0  # seconds between chunks
    headers: list[tuple[str, str]] = field(default_factory=list)
    wait: float = 0.0  # seconds before answering at all (an upstream that hangs)

    @property
    def streaming(self) -> bool:
        return self.content_type.startswith("text/event-stream")


# A script answers a request (method, target, headers, body), or None to leave it to
# the server's own scenarios.
Script = Callable[[str, str, Mapping[str, str], bytes], "Reply | None"]


class _PeerClosed(Exception):
    pass


class MockUpstream:
    """The loopback server; ``script`` (if given) answers first."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script
        self.received: list[Received] = []
        self.port = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mock-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock upstream did not start")

    def __enter__(self) -> MockUpstream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopped.wait()
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _shutdown(self) -> None:
        self._stopped.set()

    # --- what arrived --------------------------------------------------------------------

    def find(self, test_id: str, timeout: float = 5.0) -> Received:
        """The request tagged ``x-test-id: test_id`` (waits for it to arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                hits = [r for r in self.received if r.header("x-test-id") == test_id]
            if hits:
                assert len(hits) == 1, f"{len(hits)} upstream requests for {test_id}"
                return hits[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no upstream request tagged {test_id!r}")
            time.sleep(0.01)

    def count(self, test_id: str) -> int:
        with self._lock:
            return sum(1 for r in self.received if r.header("x-test-id") == test_id)

    def count_prefix(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for r in self.received if (r.header("x-test-id") or "").startswith(prefix))

    # --- the HTTP side --------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.received.append(request)
                keep_alive = await self._respond(request, reader, writer)
                request.finished = True
                if not keep_alive:
                    return
        except (_PeerClosed, ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(
        self, request: Received, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must not be reused."""
        if self.script is not None:
            # Scripts block (they are plain functions); keep the loop free for others.
            reply = await asyncio.to_thread(
                self.script, request.method, request.target, dict(request.headers), request.body
            )
            if reply is not None:
                return await self._send_reply(request, reader, writer, reply)
        scenario = request.scenario
        body = request.json if request.body else {}
        model = str(body.get("model", "unknown"))
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        delay = float(request.header("x-mock-delay") or 5.0)

        if request.method == "GET" and request.path.startswith("/v1/models"):
            await _models(writer, request.path)
            return True
        if scenario == "rate_limit":
            error = _error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
            await _send_json(writer, 429, error, [("retry-after", "7")])
            return True
        if scenario == "server_error":
            error = _error("The server had an error while processing your request.", "server_error")
            await _send_json(writer, 500, error)
            return True
        if scenario == "echo_key":
            sent = [request.header("authorization") or "", request.header("x-api-key") or ""]
            sent += [v for k, v in request.query.items() if "key" in k]
            sent += [str(v) for k, v in body.items() if "key" in k]
            message = "Incorrect API key provided: " + ", ".join(sent)
            await _send_json(writer, 401, _error(message, "invalid_request_error", "invalid_key"))
            return True
        if scenario == "slow":
            if await self._wait_or_peer_closed(request, reader, delay):
                return False
            if stream:
                return await self._stream(request, reader, writer, _text_chunks(model, False))
            await _send_json(writer, 200, _completion(model))
            return True
        if scenario == "trailers":
            await _send_with_trailers(writer, model, stream)
            return True
        if scenario == "gzip_bomb":
            size = int(request.header("x-mock-size") or 1024 * 1024)
            body = _stream_bomb(model, size) if stream else _json_bomb(size)
            content_type = b"text/event-stream" if stream else b"application/json"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-encoding: gzip\r\n"
                b"content-length: %d\r\n\r\n" % (content_type, len(body))
            )
            writer.write(body)
            await writer.drain()
            return True
        if scenario == "hang_up":
            return False  # the connection closes with no response at all
        if scenario == "garbage":
            writer.write(b"this is not HTTP\r\n\r\n")
            await writer.drain()
            return False
        if scenario == "bad_gzip":
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-encoding: gzip\r\ncontent-length: 16\r\n\r\nthis is not gzip"
            )
            await writer.drain()
            return True
        if scenario == "cut_body":
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b'content-length: 1000\r\n\r\n{"id": "cut'
            )
            await writer.drain()
            return False
        if scenario == "tools":
            if not stream:
                await _send_json(writer, 200, _completion(model, tool_call=True))
                return True
            return await self._stream(request, reader, writer, _tool_chunks(model, include_usage))
        if not stream:
            await _send_json(writer, 200, _completion(model))
            return True

        chunks = _text_chunks(model, include_usage)
        if scenario == "reset":
            await self._stream(request, reader, writer, [*chunks[:4]], end=False)
            reset(writer)
            return False
        if scenario == "truncated":
            # Every chunk but the final [DONE], then a well-formed end of the body.
            return await self._stream(request, reader, writer, chunks[:-1], close=True)
        if scenario == "malformed":
            bad = [*chunks[:3], b"data: {this is not json\n\n", *chunks[3:]]
            return await self._stream(request, reader, writer, bad)
        if scenario == "slow_stream":
            count = int(request.header("x-mock-chunks") or SLOW_STREAM_CHUNKS)
            many = _text_chunks(model, include_usage, pieces=["tick "] * count)
            end_delay = float(request.header("x-mock-end-delay") or 0.0)
            return await self._stream(
                request, reader, writer, many, interval=SLOW_STREAM_INTERVAL_S, end_delay=end_delay
            )
        if scenario == "slow_first_token":
            return await self._stream(request, reader, writer, chunks, first_delay=delay)
        if scenario == "fragmented":
            wire = b"".join(event + b": keep-alive\n\n" for event in chunks)
            pieces = [wire[i : i + 7] for i in range(0, len(wire), 7)]
            return await self._stream(request, reader, writer, pieces)
        if scenario == "crlf":
            wire = b"".join(chunks).replace(b"\n", b"\r\n")
            return await self._stream(request, reader, writer, [wire[:700], wire[700:]])
        if scenario == "slow_end":
            return await self._stream(request, reader, writer, chunks, end_delay=delay)
        return await self._stream(request, reader, writer, chunks)

    async def _send_reply(
        self,
        request: Received,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
    ) -> bool:
        if reply.wait and await self._wait_or_peer_closed(request, reader, reply.wait):
            return False
        if reply.streaming and reply.status == 200:
            return await self._stream(
                request, reader, writer, reply.chunks, interval=reply.delay, extra=reply.headers
            )
        extra = [("content-type", reply.content_type), *reply.headers]
        await _send_bytes(writer, reply.status, b"".join(reply.chunks), extra)
        return True

    async def _wait_or_peer_closed(
        self, request: Received, reader: asyncio.StreamReader, seconds: float
    ) -> bool:
        """Sleep ``seconds`` unless the peer hangs up first; True when it did.

        The transport keeps reading while nobody awaits the reader, so a hang-up shows
        as end-of-file (or an error) on it without consuming a byte of a next request.
        """
        deadline = time.monotonic() + seconds
        while True:
            if reader.at_eof() or reader.exception() is not None:
                request.peer_closed_at = time.monotonic()
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 0.01))

    async def _stream(
        self,
        request: Received,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        events: list[bytes],
        *,
        interval: float = 0.0,
        first_delay: float = 0.0,
        end_delay: float = 0.0,
        end: bool = True,
        close: bool = False,
        extra: list[tuple[str, str]] | None = None,
    ) -> bool:
        head = [
            b"HTTP/1.1 200 OK",
            b"content-type: text/event-stream; charset=utf-8",
            b"cache-control: no-cache",
            b"transfer-encoding: chunked",
            b"x-request-id: req_mock",
        ]
        head += [f"{k}: {v}".encode("latin-1") for k, v in extra or []]
        if close:
            head.append(b"connection: close")
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        try:
            await writer.drain()
            for i, event in enumerate(events):
                pause = first_delay if i == 0 else interval
                if pause and await self._wait_or_peer_closed(request, reader, pause):
                    return False
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                request.chunks_sent += 1
            if end_delay and await self._wait_or_peer_closed(request, reader, end_delay):
                return False
            if end:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            request.peer_closed_at = time.monotonic()
            return False
        return end and not close


async def read_request(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    length = int(next((v for k, v in headers if k == "content-length"), "0"))
    if any(k == "transfer-encoding" and "chunked" in v.lower() for k, v in headers):
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(length) if length else b""
    return Received(method=method, target=target, headers=headers, body=body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _send_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: dict[str, Any],
    extra_headers: list[tuple[str, str]] | None = None,
) -> None:
    headers = [("content-type", "application/json"), *(extra_headers or [])]
    await _send_bytes(writer, status, orjson.dumps(payload), headers)


async def _send_bytes(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: list[tuple[str, str]]
) -> None:
    reasons = {
        200: "OK",
        401: "Unauthorized",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Server Error",
    }
    lines = [
        f"HTTP/1.1 {status} {reasons.get(status, 'Status')}",
        f"content-length: {len(body)}",
        "x-request-id: req_mock",
    ]
    lines += [f"{k}: {v}" for k, v in headers]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _models(writer: asyncio.StreamWriter, path: str) -> None:
    def entry(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}

    if path.rstrip("/") == "/v1/models":
        await _send_json(writer, 200, {"object": "list", "data": [entry(m) for m in MODELS]})
        return
    model = unquote(path[len("/v1/models/") :])
    if model in MODELS:
        await _send_json(writer, 200, entry(model))
        return
    message = f"The model '{model}' does not exist"
    await _send_json(writer, 404, _error(message, "invalid_request_error", "model_not_found"))


TRAILERS = b"set-cookie: trailer=evil\r\ncontent-type: text/html\r\n"


async def _send_with_trailers(writer: asyncio.StreamWriter, model: str, stream: bool) -> None:
    if stream:
        body = b"".join(_text_chunks(model, False))
        content_type = b"text/event-stream"
    else:
        body = orjson.dumps(_completion(model))
        content_type = b"application/json"
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ntrailer: set-cookie, content-type\r\n"
        b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n%s\r\n"
        % (content_type, len(body), body, TRAILERS)
    )
    await writer.drain()


@functools.lru_cache(maxsize=4)
def _json_bomb(size: int) -> bytes:
    """A JSON object of ``size`` bytes, mostly one string of zeros, gzip-compressed."""
    head, tail = b'{"id":"bomb","pad":"', b'"}'
    return gzip.compress(head + b"0" * (size - len(head) - len(tail)) + tail, 9)


@functools.lru_cache(maxsize=4)
def _stream_bomb(model: str, size: int) -> bytes:
    """About ``size`` bytes of chat chunks (4,000 zeros of content each), gzip-compressed."""
    event = _chunk(model, [{"index": 0, "delta": {"content": "0" * 4000}}])
    events = [_text_chunks(model, False, pieces=[])[0], *[event] * (size // len(event))]
    events.append(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(_chunk(model, [], usage=usage()))
    events.append(b"data: [DONE]\n\n")
    return gzip.compress(b"".join(events), 9)


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), not a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _completion(model: str, *, tool_call: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": CONTENT, "refusal": None}
    finish = "stop"
    if tool_call:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": "call_mock_1",
                "type": "function",
                "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS},
            }
        ]
        finish = "tool_calls"
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": response_model(model),
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage(),
    }


def _chunk(model: str, choices: list[dict[str, Any]], **extra: Any) -> bytes:
    payload = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": response_model(model),
        "system_fingerprint": "fp_mock",
        "choices": choices,
        **extra,
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _text_chunks(model: str, include_usage: bool, pieces: list[str] | None = None) -> list[bytes]:
    chunks = [_chunk(model, [{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    for piece in pieces or PIECES:
        chunks.append(_chunk(model, [{"index": 0, "delta": {"content": piece}}]))
    chunks.append(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if include_usage:
        chunks.append(_chunk(model, [], usage=usage()))
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def _tool_chunks(model: str, include_usage: bool) -> list[bytes]:
    first_call = {
        "index": 0,
        "id": "call_mock_1",
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": ""},
    }
    chunks = [
        _chunk(
            model,
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": None, "tool_calls": [first_call]},
                }
            ],
        )
    ]
    for part in TOOL_ARGUMENT_PARTS:
        call = {"index": 0, "function": {"arguments": part}}
        chunks.append(_chunk(model, [{"index": 0, "delta": {"tool_calls": [call]}}]))
    chunks.append(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]))
    if include_usage:
        chunks.append(_chunk(model, [], usage=usage()))
    chunks.append(b"data: [DONE]\n\n")
    return chunks
