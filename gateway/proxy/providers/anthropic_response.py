"""Anthropic Messages responses as OpenAI chat completions: a whole message
(`message_to_chat`), a stream (`ChatStreamTranslator`), an error body
(`error_to_chat`). The request side, and what is and is not translated, is described
in `gateway.proxy.providers.anthropic`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import UpstreamProtocol
from gateway.http.sse import parse_event

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Anthropic error type -> (OpenAI error type, OpenAI code).
ERROR_TYPES = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("authentication_error", "invalid_api_key"),
    "permission_error": ("permission_error", None),
    "not_found_error": ("not_found_error", None),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
    "timeout_error": ("server_error", "timeout"),
}


# --- message --------------------------------------------------------------------------


def finish_reason(stop_reason: Any) -> str | None:
    """OpenAI ``finish_reason`` of an Anthropic ``stop_reason``."""
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(str(stop_reason), "stop")


def chat_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI usage of Anthropic usage. Anthropic counts cache reads and writes apart
    from ``input_tokens``; OpenAI's ``prompt_tokens`` includes them, and its
    ``cached_tokens`` are the reads."""
    read = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    prompt = _count(usage.get("input_tokens")) + read + written
    completion = _count(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
    }


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def message_to_chat(message: Mapping[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` of an Anthropic ``message`` response."""
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
    chat_message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls:
        chat_message["tool_calls"] = tool_calls
    if thinking:
        chat_message["reasoning_content"] = "".join(thinking)
    completion: dict[str, Any] = {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": chat_message,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason")),
            }
        ],
    }
    usage = message.get("usage")
    if isinstance(usage, Mapping):
        completion["usage"] = chat_usage(usage)
    return completion


def error_to_chat(status: int, body: Any) -> dict[str, Any]:
    """The OpenAI error shape of an Anthropic error body (or of anything else an
    upstream answered with an error status)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        kind = str(error.get("type") or "api_error")
        message = str(error.get("message") or kind)
    else:
        kind = "api_error" if status >= 500 else "invalid_request_error"
        text = body if isinstance(body, str) else orjson.dumps(body).decode()
        message = f"Upstream answered {status}: {text[:500]}"
    openai_type, code = ERROR_TYPES.get(kind, ("server_error" if status >= 500 else kind, None))
    return {"error": {"message": message, "type": openai_type, "code": code or kind, "param": None}}


def upstream_summary(message: Mapping[str, Any]) -> dict[str, Any]:
    """What the span keeps of the upstream's own answer beside the translated one: its
    stop reason (finer than finish_reason) and its usage (cache writes apart)."""
    return {
        key: message.get(key)
        for key in ("id", "model", "stop_reason", "stop_sequence", "usage")
        if message.get(key) is not None
    }


# --- stream ----------------------------------------------------------------------------

DONE_EVENT = b"data: [DONE]\n\n"


def sse_data(chunk: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class ChatStreamTranslator:
    """Anthropic Messages stream events in, OpenAI ``chat.completion.chunk`` SSE out.

    `translate` takes one whole SSE event as received and returns the bytes to send
    the client (often none: ``ping``, block starts and stops). With ``include_usage``
    the stream ends with a usage chunk, as OpenAI's does when a client asks with
    ``stream_options``; the proxy always asks, and keeps the chunk from a client that
    did not (as it does for OpenAI upstreams), so the span has the usage either way.
    """

    def __init__(
        self,
        *,
        include_usage: bool,
        created: int | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.include_usage = include_usage
        self.record = record  # gets "upstream_response" (`summary`) as the stream goes
        self.created = created if created is not None else int(time.time())
        self.done = False
        self.failed = False
        self.message: dict[str, Any] = {}  # message_start's message, updated as it goes
        self.usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> tool call index
        self._tool_arguments: dict[int, bool] = {}  # tool call index -> any argument sent

    def translate(self, raw: bytes) -> bytes:
        data: bytes | str
        start = raw.find(b"\ndata: ")
        if raw.startswith(b"event: ") and start > 0 and raw.count(b"\n") <= 3 and b"\r" not in raw:
            data = raw[start + 7 :].rstrip(b"\n")  # the usual shape: one event, one data line
        else:
            data = parse_event(raw).data
            if not data:
                return b""  # a comment or keep-alive
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamProtocol(
                "Anthropic sent a stream event that is not JSON.",
                code="upstream_stream_malformed",
            ) from None
        if not isinstance(obj, dict):
            raise UpstreamProtocol(
                "Anthropic sent a stream event that is not a JSON object.",
                code="upstream_stream_malformed",
            )
        return self.feed(obj)

    def feed(self, event: Mapping[str, Any]) -> bytes:
        """The SSE bytes for one parsed Anthropic event."""
        kind = event.get("type")
        out: list[bytes] = []
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, Mapping):
                self.message = dict(message)
                if isinstance(message.get("usage"), Mapping):
                    self.usage.update(message["usage"])
            out.append(self._emit({"role": "assistant", "content": ""}))
            self._record()
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, Mapping):
                out.extend(self._block_start(_index(event), block))
        elif kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, Mapping):
                out.extend(self._block_delta(_index(event), delta))
        elif kind == "content_block_stop":
            out.extend(self._block_stop(_index(event)))
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, Mapping):
                for key in ("stop_reason", "stop_sequence"):
                    if key in delta:
                        self.message[key] = delta[key]
            usage = event.get("usage")
            if isinstance(usage, Mapping):
                # Counts on message_delta are cumulative: they replace, never add.
                self.usage.update({k: v for k, v in usage.items() if v is not None})
            self._record()
        elif kind == "message_stop":
            out.append(self._finish())
            self.done = True
        elif kind == "error":
            self.failed = True
            self.done = True
            out.append(sse_data(error_to_chat(500, event)))
        # ping, and event types added later, have nothing to say to an OpenAI client.
        return b"".join(out)

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[bytes]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [self._emit({"content": block["text"]})]
        if kind == "tool_use":
            call_index = len(self._tool_index)
            self._tool_index[index] = call_index
            self._tool_arguments[call_index] = False
            call = {
                "index": call_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            out = [self._emit({"tool_calls": [call]})]
            tool_input = block.get("input")
            if tool_input:  # streams start with {}; a whole input is sent at once
                out.append(self._arguments(call_index, orjson.dumps(tool_input).decode()))
            return out
        if kind == "thinking" and block.get("thinking"):
            return [self._emit({"reasoning_content": block["thinking"]})]
        return []

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[bytes]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._emit({"content": delta["text"]})]
        if kind == "input_json_delta" and index in self._tool_index:
            fragment = delta.get("partial_json")
            if isinstance(fragment, str) and fragment:
                return [self._arguments(self._tool_index[index], fragment)]
        elif kind == "thinking_delta" and delta.get("thinking"):
            return [self._emit({"reasoning_content": delta["thinking"]})]
        return []

    def _block_stop(self, index: int) -> list[bytes]:
        call_index = self._tool_index.get(index)
        if call_index is not None and not self._tool_arguments[call_index]:
            # A tool without parameters streams no fragment; OpenAI clients expect
            # arguments to be JSON, as in the non-streamed translation.
            return [self._arguments(call_index, "{}")]
        return []

    def _arguments(self, call_index: int, fragment: str) -> bytes:
        self._tool_arguments[call_index] = True
        call = {"index": call_index, "function": {"arguments": fragment}}
        return self._emit({"tool_calls": [call]})

    def _finish(self) -> bytes:
        reason = finish_reason(self.message.get("stop_reason")) or "stop"
        out = [self._emit({}, finish_reason=reason)]
        if self.include_usage:
            out.append(sse_data({**self._base(), "choices": [], "usage": chat_usage(self.usage)}))
        out.append(DONE_EVENT)
        return b"".join(out)

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.message.get("id"),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.message.get("model"),
        }

    def _emit(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> bytes:
        chunk = {
            **self._base(),
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        return sse_data(chunk)

    def summary(self) -> dict[str, Any]:
        """`upstream_summary` of the streamed message so far."""
        return upstream_summary({**self.message, "usage": self.usage or None})

    def _record(self) -> None:
        if self.record is not None:
            self.record["upstream_response"] = self.summary()


def _index(event: Mapping[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else 0
