"""A mock Anthropic Messages API, and a real `spanlab serve` to put in front of it.

`MockAnthropic` answers ``POST /v1/messages`` the way the real API does, and is
strict the way the real API is: it checks the key and ``anthropic-version``, rejects
fields the Messages API does not know (as "Extra inputs are not permitted"), roles
other than user/assistant, tool results that answer no tool use, and a temperature
above 1. So a translation that leaks an OpenAI field, or builds turns Anthropic would
refuse, fails here as it would against the real service.

What it answers is derived from the request, so tests can check the whole path:

* the last user turn holds tool results -> text: ``The tool said: <results>``;
* tools are offered (and tool_choice is not ``none``) -> a short text, then one
  ``tool_use`` per offered tool when the user text says "all tools" (else one, for
  the tool tool_choice names or the first), with an input made from the schema;
* otherwise -> text: ``Echo: <last user text>``, cut at a stop sequence
  (``stop_sequence``) or at max_tokens words (``max_tokens``);
* ``thinking`` in the request -> a thinking block first;
* ``__overloaded__`` in the user text -> 529 overloaded_error; with streaming,
  ``__midstream_error__`` -> an ``error`` event after the first text delta.

Usage: input tokens are the words of the request's text, output tokens the words
produced; a system prompt with ``cache_control`` reports cache writes and reads.
``POST /v1/messages/count_tokens`` answers those input tokens; ``GET /v1/models``
lists `MODELS`, paged as the real API pages (``limit``, default 20, and
``after_id``), and ``GET /v1/models/{id}`` answers one of them.

`MockAnthropic.handle` is a script of the suite's one fake upstream: the same logic
serves in-process tests (`MockAnthropic.httpx_handler`, through
`tests.upstream.transport`) and e2e tests (`MockAnthropicServer`: the loopback
`tests.upstream.server.MockUpstream`, streaming event by event in chunked encoding).
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.serve import GatewayProcess
from tests.upstream import transport
from tests.upstream.server import MockUpstream, Reply

VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # the API names its versions by date
MESSAGES_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "output_config",
        "service_tier",
    }
)
BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking"})
CACHE_READ_TOKENS = 1200
CACHE_WRITE_TOKENS = 300
MODELS = [
    {
        "type": "model",
        "id": "claude-sonnet-4-5-20250929",
        "display_name": "Claude Sonnet 4.5",
        "created_at": "2025-09-29T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-3-5-haiku-20241022",
        "display_name": "Claude Haiku 3.5",
        "created_at": "2024-10-22T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-3-opus-20240229",
        "display_name": "Claude Opus 3",
        "created_at": "2024-02-29T00:00:00Z",
    },
]
# What count_tokens takes: a Messages request without the generation settings.
COUNT_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"})


# The Anthropic dialect answers with the fake upstream's `Reply`.
MockReply = Reply


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # names lower case
    body: dict[str, Any]


class MockError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


@dataclass
class MockAnthropic:
    api_key: str | None = None  # the x-api-key it demands (None: any non-empty key)
    stream_delay: float = 0.002
    requests: list[ReceivedRequest] = field(default_factory=list)
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- entry points ------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """The script: one request's answer (with the ``request-id`` the API sends)."""
        reply = self._handle(method, path, headers, raw)
        reply.headers.append(("request-id", "req_mock"))
        return reply

    def _handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return _error_reply(MockError(400, "invalid_request_error", "body is not JSON"))
        with self._lock:
            self.requests.append(ReceivedRequest(path, headers, body))
            self._counter += 1
            number = self._counter
        route, _, query = path.partition("?")
        try:
            if method == "GET" and route.startswith("/v1/models"):
                self._check_headers(headers)
                return _models(route, dict(urllib.parse.parse_qsl(query)))
            if method == "POST" and route == "/v1/messages/count_tokens":
                self._check_headers(headers)
                return _count_tokens(body)
            if method != "POST" or route != "/v1/messages":
                raise MockError(404, "not_found_error", f"{method} {path} not found")
            self._check_headers(headers)
            validate(body)
            return self._answer(body, number)
        except MockError as exc:
            return _error_reply(exc)

    def httpx_handler(self, request: httpx.Request) -> httpx.Response:
        """For `tests.fakes.FakeUpstream(handler=...)` in in-process tests."""
        return transport.handle(self.handle, request)

    @property
    def last(self) -> ReceivedRequest:
        return self.requests[-1]

    # --- behaviour ---------------------------------------------------------------------

    def _check_headers(self, headers: Mapping[str, str]) -> None:
        # The key in x-api-key, or as a bearer token: the anthropic SDK (2.x) sends it so.
        scheme, _, token = headers.get("authorization", "").partition(" ")
        key = headers.get("x-api-key") or (token.strip() if scheme.lower() == "bearer" else "")
        if not key or (self.api_key is not None and key != self.api_key):
            raise MockError(401, "authentication_error", "invalid x-api-key")
        if not VERSION.match(headers.get("anthropic-version", "")):
            raise MockError(400, "invalid_request_error", "anthropic-version header is required")

    def _answer(self, body: dict[str, Any], number: int) -> MockReply:
        turns: list[dict[str, Any]] = body["messages"]
        last = turns[-1]
        user_text = _text_of(last["content"]) if last["role"] == "user" else ""
        stream = body.get("stream") is True
        if "__overloaded__" in user_text:
            raise MockError(529, "overloaded_error", "Overloaded")
        blocks: list[dict[str, Any]] = []
        stop_reason = "end_turn"
        stop_sequence: str | None = None
        if body.get("thinking"):
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": f"Thinking about: {user_text}",
                    "signature": "c2ln",
                }
            )
        results = (
            [b for b in _blocks(last["content"]) if b.get("type") == "tool_result"]
            if last["role"] == "user"
            else []
        )
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {"type": "auto"}
        if results:
            said = "; ".join(_text_of(r.get("content") or "") for r in results)
            blocks.append({"type": "text", "text": f"The tool said: {said}"})
        elif tools and choice.get("type") != "none":
            if choice.get("type") == "tool":
                chosen = [t for t in tools if t["name"] == choice["name"]]
            elif "all tools" in user_text:
                chosen = tools
            else:
                chosen = tools[:1]
            blocks.append({"type": "text", "text": "Let me check."})
            for i, tool in enumerate(chosen):
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_mock_{number}_{i}",
                        "name": tool["name"],
                        "input": _input_for(tool.get("input_schema") or {}, user_text),
                    }
                )
            stop_reason = "tool_use"
        else:
            text = f"Echo: {user_text}"
            for sequence in body.get("stop_sequences") or []:
                if sequence in text:
                    text = text[: text.index(sequence)]
                    stop_reason, stop_sequence = "stop_sequence", sequence
                    break
            words = text.split(" ")
            if len(words) > body["max_tokens"]:
                text = " ".join(words[: body["max_tokens"]])
                stop_reason = "max_tokens"
            blocks.append({"type": "text", "text": text})
        usage = self._usage(body, blocks)
        message = {
            "id": f"msg_mock_{number}",
            "type": "message",
            "role": "assistant",
            "model": _served_model(body["model"]),
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }
        if not stream:
            return MockReply(200, "application/json", [orjson.dumps(message)])
        events = stream_events(message, fail="__midstream_error__" in user_text)
        return MockReply(200, "text/event-stream; charset=utf-8", events, self.stream_delay)

    @staticmethod
    def _usage(body: Mapping[str, Any], blocks: list[dict[str, Any]]) -> dict[str, int]:
        words = len(_all_text(body.get("system")).split())
        words += sum(len(_all_text(m["content"]).split()) for m in body["messages"])
        out_words = sum(len(_all_text([b]).split()) for b in blocks)
        system = body.get("system")
        cached = isinstance(system, list) and any("cache_control" in b for b in system)
        return {
            "input_tokens": words,
            "output_tokens": out_words,
            "cache_creation_input_tokens": CACHE_WRITE_TOKENS if cached else 0,
            "cache_read_input_tokens": CACHE_READ_TOKENS if cached else 0,
        }


def _models(route: str, query: Mapping[str, str]) -> MockReply:
    if route.rstrip("/") != "/v1/models":
        model_id = urllib.parse.unquote(route[len("/v1/models/") :])
        found = [m for m in MODELS if m["id"] == model_id]
        if not found:
            raise MockError(404, "not_found_error", f"model: {model_id}")
        return MockReply(200, "application/json", [orjson.dumps(found[0])])
    ids = [m["id"] for m in MODELS]
    limit = int(query.get("limit") or 20)
    start = ids.index(query["after_id"]) + 1 if query.get("after_id") in ids else 0
    page = MODELS[start : start + limit]
    body = {
        "data": page,
        "has_more": start + len(page) < len(MODELS),
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
    return MockReply(200, "application/json", [orjson.dumps(body)])


def _count_tokens(body: Mapping[str, Any]) -> MockReply:
    extra = sorted(set(body) - COUNT_FIELDS)
    if extra:
        raise MockError(400, "invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body.get("messages"):
        raise MockError(400, "invalid_request_error", "model and messages are required")
    words = len(_all_text(body.get("system")).split())
    words += sum(len(_all_text(m.get("content")).split()) for m in body["messages"])
    return MockReply(200, "application/json", [orjson.dumps({"input_tokens": words})])


def _served_model(requested: str) -> str:
    # The API answers an alias with the snapshot it served.
    return requested.replace("-latest", "-20241022")


def _input_for(schema: Mapping[str, Any], user_text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, Mapping) else None
        if kind == "integer" or kind == "number":
            out[name] = len(user_text)
        elif kind == "array":
            out[name] = user_text.split()[:3]
        elif kind == "object":
            out[name] = {"text": user_text, "nested": {"ok": True}}
        else:
            out[name] = f"{name} for «{user_text}»"
    return out


def stream_events(message: dict[str, Any], *, fail: bool) -> list[bytes]:
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    events = [_event("message_start", {"type": "message_start", "message": start})]
    events.append(_event("ping", {"type": "ping"}))
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            first: dict[str, Any] = {"type": "text", "text": ""}
            words = block["text"].split(" ")
            deltas = [
                {"type": "text_delta", "text": w if i == 0 else " " + w}
                for i, w in enumerate(words)
            ]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        else:
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            text = orjson.dumps(block["input"]).decode()
            pieces = [text[i : i + 7] for i in range(0, len(text), 7)] if block["input"] else []
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        events.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": first},
            )
        )
        for delta in deltas:
            events.append(
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
            if fail:
                error = {"type": "overloaded_error", "message": "Overloaded"}
                events.append(_event("error", {"type": "error", "error": error}))
                return events
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(
        _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def _event(name: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _error_reply(exc: MockError) -> MockReply:
    body = {"type": "error", "error": {"type": exc.kind, "message": exc.message}}
    return MockReply(exc.status, "application/json", [orjson.dumps(body)])


# --- validation, as strict as the real API on what translation produces ---------------


def validate(body: Mapping[str, Any]) -> None:
    extra = sorted(set(body) - MESSAGES_FIELDS)
    if extra:
        raise MockError(400, "invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        raise MockError(400, "invalid_request_error", "model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise MockError(400, "invalid_request_error", "max_tokens: Field required")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise MockError(400, "invalid_request_error", "temperature: must be between 0 and 1")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        for block in system:
            if block.get("type") != "text":
                raise MockError(400, "invalid_request_error", "system: text blocks only")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockError(400, "invalid_request_error", "messages: Field required")
    uses_tools = False
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise MockError(
                400,
                "invalid_request_error",
                f"messages.{i}.role: Input should be 'user' or 'assistant'",
            )
        blocks = _blocks(message.get("content"))
        if not blocks and not (role == "assistant" and i == len(messages) - 1):
            raise MockError(400, "invalid_request_error", f"messages.{i}: content is empty")
        for block in blocks:
            if block.get("type") not in BLOCK_TYPES:
                raise MockError(
                    400,
                    "invalid_request_error",
                    f"messages.{i}: unknown block {block.get('type')!r}",
                )
            if block.get("type") == "text" and not block.get("text"):
                raise MockError(400, "invalid_request_error", f"messages.{i}: text is empty")
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if pending:
            answered = {b.get("tool_use_id") for b in results}
            if role != "user" or answered != pending:
                raise MockError(
                    400,
                    "invalid_request_error",
                    f"messages.{i}: tool_use ids {sorted(pending)} need tool_result blocks"
                    " in the next user message",
                )
            if blocks[: len(results)] != results:
                raise MockError(
                    400,
                    "invalid_request_error",
                    f"messages.{i}: tool_result blocks must come first",
                )
        elif results:
            raise MockError(
                400, "invalid_request_error", f"messages.{i}: tool_result without a tool_use"
            )
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
        for block in blocks:
            if block.get("type") == "tool_use" and not isinstance(block.get("input"), dict):
                raise MockError(
                    400, "invalid_request_error", f"messages.{i}: input must be an object"
                )
        uses_tools = uses_tools or bool(results) or bool(pending)
    if uses_tools and not body.get("tools"):
        raise MockError(
            400,
            "invalid_request_error",
            "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        )
    for tool in body.get("tools") or []:
        if set(tool) - {"name", "description", "input_schema", "cache_control"}:
            raise MockError(400, "invalid_request_error", "tools: Extra inputs are not permitted")
        if (tool.get("input_schema") or {}).get("type") != "object":
            raise MockError(400, "invalid_request_error", "tools: input_schema must be an object")


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content or [])


def _text_of(content: Any) -> str:
    return " ".join(b["text"] for b in _blocks(content) if b.get("type") == "text")


def _all_text(content: Any) -> str:
    if content is None:
        return ""
    parts: list[str] = []
    for block in _blocks(content):
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "thinking":
            parts.append(block["thinking"])
        elif block.get("type") == "tool_use":
            parts.append(orjson.dumps(block["input"]).decode())
        elif block.get("type") == "tool_result":
            parts.append(_all_text(block.get("content")))
    return " ".join(parts)


# --- the mock on loopback ----------------------------------------------------------------


class MockAnthropicServer(MockUpstream):
    """`MockAnthropic` served on 127.0.0.1 by the suite's loopback fake upstream."""

    def __init__(self, mock: MockAnthropic) -> None:
        super().__init__(script=mock.handle)
        self.mock = mock

    def __enter__(self) -> MockAnthropicServer:
        self.start()
        return self


# --- a real spanlab serve ------------------------------------------------------------------


class SpanlabProcess(GatewayProcess):
    """The suite's `GatewayProcess` started from a TOML text, logging warnings only."""

    def __init__(self, workdir: Path, config: str, env: Mapping[str, str] | None = None) -> None:
        super().__init__(workdir, config, env, log_level="warning")
