"""Capture: what one call becomes in the store.

The proxy fills a `Span` with what it has on the request path: ids, grouping, timings,
the request as sent upstream and the raw response (bytes, or the data of each stream
event). Everything that needs parsing (the assembled message, usage, cost, the output
text) is derived later by `finalize`, which the background writer calls, so no
response waits for that work.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.capture.origin import span_origin
from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import (
    MAX_STORED_DEPTH,
    MIN_SECRET_VALUE,
    REDACTED,
    NestingTooDeep,
    body_secret_values,
    has_secret_fields,
    nesting_depth,
    redact_body,
    redact_query,
    scrub_values,
)

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_CLIENT_ABORTED = "client_aborted"
STATUS_INTERRUPTED = "interrupted"
SPAN_STATUSES = (STATUS_OK, STATUS_ERROR, STATUS_CLIENT_ABORTED, STATUS_INTERRUPTED)
# The span attribute naming the model a call's cost was computed for, when it is not
# the model the upstream named (`finalize`).
PRICED_MODEL = "spanlab.cost.priced_model"
# The span attribute listing the parts of a call left out of its record for nesting
# deeper than can be stored (`to_record`).
CAPTURE_DROPPED = "spanlab.capture.dropped"


# Ids only need to be unique and unpredictable enough to never collide (W3C trace
# context): the process's Mersenne Twister, seeded from the OS at start (and again
# after a fork), gives that without a system call per id as os.urandom does.
#
# The first 32 bits count time (in units of 2**10 us, about a millisecond; they wrap
# every ~51 days), the rest is random: ids made close in time sort close together, so
# the database's indexes on span and trace ids take new rows on a few pages at their
# end rather than one random page each (a page write per row to the WAL). Only ids
# made within the same millisecond can collide, each pair with odds of 2**-32 (span)
# or 2**-96 (trace).
def new_trace_id() -> str:
    return f"{time.time_ns() >> 20 & 0xFFFFFFFF:08x}{random.getrandbits(96) or 1:024x}"


def new_span_id() -> str:
    return f"{time.time_ns() >> 20 & 0xFFFFFFFF:08x}{random.getrandbits(32) or 1:08x}"


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class SpanContext:
    """Where a call belongs: its W3C ids and the grouping the client asked for."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    project_id: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    label: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    links: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> SpanContext:
        """Honour ``traceparent`` and the ``x-thread-id``/``x-run-id``/``x-label``/
        ``x-tags``/``x-project-id`` grouping headers (names already lower case)."""
        trace_id = None
        parent = None
        traceparent = headers.get("traceparent")
        if traceparent:
            match = _TRACEPARENT.match(traceparent.strip().lower())
            if match and match.group(1) != "ff" and set(match.group(2)) != {"0"}:
                trace_id = match.group(2)
                if set(match.group(3)) != {"0"}:
                    parent = match.group(3)
        tags: dict[str, str] = {}
        raw_tags = headers.get("x-tags")
        if raw_tags:
            pairs = parse_qsl(header_text(raw_tags), keep_blank_values=True)
            tags = {k: v for k, v in pairs if k}
        return cls(
            trace_id=trace_id or new_trace_id(),
            span_id=new_span_id(),
            parent_span_id=parent,
            project_id=_clean(headers.get("x-project-id")),
            thread_id=_clean(headers.get("x-thread-id")),
            run_id=_clean(headers.get("x-run-id")),
            label=_clean(headers.get("x-label")),
            tags=tags,
        )

    def traceparent(self) -> str:
        """The header to send upstream, naming this span as the parent."""
        return f"00-{self.trace_id}-{self.span_id}-01"


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = header_text(value).strip()
    return value[:256] or None


def header_text(value: str) -> str:
    """A header value as text. ASGI servers hand over raw bytes, decoded here as latin-1
    so they can be forwarded unchanged; clients send UTF-8 (``x-label: café``)."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


@dataclass(slots=True)
class Span:
    """One call. Raw parts first; derived parts are filled by `finalize`."""

    context: SpanContext
    operation: str  # chat, completions, embeddings, responses, models, messages
    method: str
    path: str
    start_us: int
    provider: str | None = None
    request_model: str | None = None
    stream: bool = False
    request: Any = None  # the JSON body as sent upstream (redacted), or None
    request_headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    # filled when the call ends
    end_us: int | None = None
    first_token_us: int | None = None
    status: str = STATUS_OK
    http_status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes | None = None  # non-stream response, raw
    stream_format: str | None = None  # chat, completions, responses, anthropic
    # each stream event: its JSON data as received (or already parsed); `finalize` parses
    stream_events: list[bytes] | list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    secrets: list[str] = field(default_factory=list)  # values to scrub; never stored
    # the gateway key the call is counted for (gateway.quotas); never stored
    charge: str | None = None
    # derived by finalize()
    response: Any = None
    response_model: str | None = None
    output_text: str | None = None
    input_preview: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    finalized: bool = False

    @property
    def duration_ms(self) -> float | None:
        if self.end_us is None:
            return None
        return (self.end_us - self.start_us) / 1000.0

    @property
    def ttft_ms(self) -> float | None:
        if self.first_token_us is None:
            return None
        return (self.first_token_us - self.start_us) / 1000.0


def finalize(span: Span, prices: PriceTable) -> None:
    """Derive the assembled response, output text, usage and cost of a finished span."""
    if span.finalized:
        return
    span.finalized = True
    if span.stream_events is not None:
        events = [
            orjson.loads(event) if isinstance(event, bytes) else event
            for event in span.stream_events
        ]
        assembled, stream_error = assemble_stream(span.stream_format or "chat", events)
        span.response = assembled
        if stream_error is not None and span.error is None:
            span.error = stream_error
            span.status = STATUS_ERROR
    elif span.response_body is not None:
        span.response = _parse_json_or_text(span.response_body)
    if span.error is None and span.status == STATUS_ERROR:
        if isinstance(span.response, dict):
            err = span.response.get("error")
            span.error = err if isinstance(err, dict) else {"message": str(err or span.response)}
        else:  # not JSON (a load balancer's HTML page) or empty
            message = f"Upstream answered HTTP {span.http_status}"
            if isinstance(span.response, str) and span.response.strip():
                message += f": {span.response.strip()[:500]}"
            span.error = {"message": message}
    response = span.response if isinstance(span.response, dict) else None
    if response is not None:
        model = response.get("model")
        span.response_model = model if isinstance(model, str) else None
        span.output_text = output_text(response)
        span.finish_reason = finish_reason(response)
        usage = response.get("usage")
        if isinstance(usage, dict):
            tokens = normalize_usage(usage)
            span.prompt_tokens, span.completion_tokens, span.total_tokens, span.cached_tokens = (
                tokens
            )
    span.input_preview = input_preview(span.request)
    if span.prompt_tokens is not None or span.completion_tokens is not None:
        # The model the upstream names is the most precise, but a provider may answer
        # with a name the table does not know (a dated alias, a deployment's name)
        # for a model it does: then the model sent upstream, then the client's.
        sent = span.request.get("model") if isinstance(span.request, dict) else None
        priced = prices.first_priced(
            (span.response_model, sent if isinstance(sent, str) else None, span.request_model)
        )
        if priced is not None:
            span.cost_usd = prices.cost(
                priced, span.prompt_tokens, span.completion_tokens, span.cached_tokens
            )
            if priced != span.response_model:  # said when it is not the obvious one
                span.context.attributes[PRICED_MODEL] = priced


def _parse_json_or_text(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


def normalize_usage(
    usage: Mapping[str, Any],
) -> tuple[int | None, int | None, int | None, int | None]:
    """(prompt, completion, total, cached) from OpenAI, Responses or Anthropic usage."""
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    cached = None
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        cached = _int(details.get("cached_tokens"))
    if prompt is None and "input_tokens" in usage:
        prompt = _int(usage.get("input_tokens"))
        in_details = usage.get("input_tokens_details")
        if isinstance(in_details, dict):
            cached = _int(in_details.get("cached_tokens"))
        # Anthropic counts cache reads and writes apart from input_tokens; the
        # OpenAI convention (which the rest of Spanlab uses) includes them.
        cache_read = _int(usage.get("cache_read_input_tokens"))
        cache_write = _int(usage.get("cache_creation_input_tokens"))
        if cache_read is not None or cache_write is not None:
            prompt = (prompt or 0) + (cache_read or 0) + (cache_write or 0)
            cached = cache_read
    if completion is None and "output_tokens" in usage:
        completion = _int(usage.get("output_tokens"))
    total = _int(usage.get("total_tokens"))
    if total is None and (prompt is not None or completion is not None):
        total = (prompt or 0) + (completion or 0)
    return prompt, completion, total, cached


# Larger counts are not counts (and SQLite could not store their sum): taken as unknown.
_MAX_COUNT = 2**53


def _int(value: Any) -> int | None:
    if type(value) is int:  # the usual case, one check (a bool's type is not int)
        return value if -_MAX_COUNT <= value <= _MAX_COUNT else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not -_MAX_COUNT <= value <= _MAX_COUNT:  # also false for NaN
        return None
    return int(value)


def output_text(response: Mapping[str, Any]) -> str | None:
    """The text a model produced, whatever the API dialect of ``response``."""
    choices = response.get("choices")
    if isinstance(choices, list) and choices:
        first = choices[0] if isinstance(choices[0], dict) else {}
        message = first.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return _join_text_parts(content)
            return None
        text = first.get("text")
        return text if isinstance(text, str) else None
    output = response.get("output")
    if isinstance(output, list):  # Responses API
        parts: list[str] = []
        for item in output:
            if isinstance(item, dict) and item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        parts.append(part["text"])
        return "".join(parts) if parts else None
    content = response.get("content")
    if isinstance(content, list) and response.get("type") == "message":  # Anthropic
        return _join_text_parts(content)
    return None


def _join_text_parts(parts: Iterable[Any]) -> str | None:
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "".join(texts) if texts else None


def finish_reason(response: Mapping[str, Any]) -> str | None:
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    for key in ("stop_reason", "status"):  # Anthropic, Responses
        value = response.get(key)
        if isinstance(value, str):
            return value
    return None


def input_preview(request: Any, limit: int = 200) -> str | None:
    """The last user message (or the prompt/input), shortened, for lists and search."""
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    text: str | None = None
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    text = content
                elif isinstance(content, list):
                    text = _join_text_parts(content)
                break
    else:
        for key in ("input", "prompt"):
            value = request.get(key)
            if isinstance(value, str):
                text = value
                break
            if isinstance(value, list) and value and isinstance(value[0], str):
                text = value[0]
                break
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- stream assembly ------------------------------------------------------------------


def assemble_stream(fmt: str, events: list[dict[str, Any]]) -> tuple[Any, dict[str, Any] | None]:
    """The response a stream amounts to, and the error it carried (if any)."""
    assembler: _Assembler
    if fmt == "anthropic":
        assembler = AnthropicAssembler()
    elif fmt == "responses":
        assembler = ResponsesAssembler()
    elif fmt == "completions":
        assembler = ChatAssembler(text_field=True)
    else:
        assembler = ChatAssembler()
    for event in events:
        assembler.add(event)
    return assembler.result(), assembler.error


class _Assembler:
    error: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        raise NotImplementedError


class _ChoiceState:
    __slots__ = ("content", "finish_reason", "function_call", "refusal", "role", "tool_calls")

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, str] | None = None
        self.finish_reason: str | None = None


class ChatAssembler(_Assembler):
    """OpenAI ``chat.completion.chunk`` (or, with ``text_field``, legacy completions)."""

    def __init__(self, *, text_field: bool = False) -> None:
        self.text_field = text_field
        self.meta: dict[str, Any] = {}
        self.choices: dict[int, _ChoiceState] = {}
        self.usage: dict[str, Any] | None = None
        self.error = None

    def add(self, chunk: dict[str, Any]) -> None:
        if "error" in chunk and "choices" not in chunk:
            err = chunk["error"]
            self.error = err if isinstance(err, dict) else {"message": str(err)}
            return
        for key in ("id", "model", "created", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                self.meta[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            state = self.choices.setdefault(int(choice.get("index") or 0), _ChoiceState())
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
            if self.text_field:
                if isinstance(choice.get("text"), str):
                    state.content.append(choice["text"])
                continue
            delta = choice.get("delta") or {}
            if delta.get("role"):
                state.role = delta["role"]
            if isinstance(delta.get("content"), str):
                state.content.append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                state.refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or []:
                self._add_tool_call(state, call)
            function_call = delta.get("function_call")
            if isinstance(function_call, dict):
                fc = state.function_call or {"name": "", "arguments": ""}
                fc["name"] += function_call.get("name") or ""
                fc["arguments"] += function_call.get("arguments") or ""
                state.function_call = fc

    @staticmethod
    def _add_tool_call(state: _ChoiceState, call: Any) -> None:
        if not isinstance(call, dict):
            return
        index = int(call.get("index") or 0)
        slot = state.tool_calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            slot["function"]["name"] += function["name"]
        if function.get("arguments"):
            slot["function"]["arguments"] += function["arguments"]

    def result(self) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        for index in sorted(self.choices):
            state = self.choices[index]
            if self.text_field:
                choices.append(
                    {
                        "index": index,
                        "text": "".join(state.content),
                        "finish_reason": state.finish_reason,
                    }
                )
                continue
            message: dict[str, Any] = {
                "role": state.role or "assistant",
                "content": "".join(state.content) if state.content else None,
            }
            if state.refusal:
                message["refusal"] = "".join(state.refusal)
            if state.tool_calls:
                message["tool_calls"] = [state.tool_calls[i] for i in sorted(state.tool_calls)]
            if state.function_call:
                message["function_call"] = state.function_call
            choices.append(
                {"index": index, "message": message, "finish_reason": state.finish_reason}
            )
        out: dict[str, Any] = {
            "object": "text_completion" if self.text_field else "chat.completion",
            **self.meta,
            "choices": choices,
        }
        if self.usage is not None:
            out["usage"] = self.usage
        return out


class ResponsesAssembler(_Assembler):
    """OpenAI Responses API events; the final ``response.*`` event carries it all."""

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None
        self.text: list[str] = []
        self.error = None

    def add(self, chunk: dict[str, Any]) -> None:
        kind = chunk.get("type")
        if isinstance(chunk.get("response"), dict):
            self.response = chunk["response"]
        if kind == "response.output_text.delta" and isinstance(chunk.get("delta"), str):
            self.text.append(chunk["delta"])
        elif kind == "error" or kind == "response.failed":
            err = chunk.get("error") or (self.response or {}).get("error")
            self.error = err if isinstance(err, dict) else {"message": str(err or kind)}

    def result(self) -> dict[str, Any]:
        if self.response is not None:
            return self.response
        return {
            "object": "response",
            "status": "incomplete",
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "".join(self.text)}],
                }
            ],
        }


class AnthropicAssembler(_Assembler):
    """Anthropic Messages stream events into one ``message`` object."""

    def __init__(self) -> None:
        self.message: dict[str, Any] = {"type": "message", "role": "assistant", "content": []}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial_json: dict[int, list[str]] = {}
        self.error = None

    def add(self, chunk: dict[str, Any]) -> None:
        kind = chunk.get("type")
        if kind == "message_start" and isinstance(chunk.get("message"), dict):
            self.message.update(chunk["message"])
        elif kind == "content_block_start":
            index = int(chunk.get("index") or 0)
            self.blocks[index] = dict(chunk.get("content_block") or {})
        elif kind == "content_block_delta":
            index = int(chunk.get("index") or 0)
            block = self.blocks.setdefault(index, {"type": "text", "text": ""})
            delta = chunk.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif dtype == "input_json_delta":
                self.partial_json.setdefault(index, []).append(delta.get("partial_json", ""))
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif dtype == "signature_delta":
                block["signature"] = delta.get("signature")
        elif kind == "message_delta":
            delta = chunk.get("delta") or {}
            for key in ("stop_reason", "stop_sequence"):
                if key in delta:
                    self.message[key] = delta[key]
            if isinstance(chunk.get("usage"), dict):
                usage = dict(self.message.get("usage") or {})
                usage.update({k: v for k, v in chunk["usage"].items() if v is not None})
                self.message["usage"] = usage
        elif kind == "error":
            err = chunk.get("error")
            self.error = err if isinstance(err, dict) else {"message": str(err)}

    def result(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            block = dict(self.blocks[index])
            if index in self.partial_json:
                text = "".join(self.partial_json[index])
                try:
                    block["input"] = orjson.loads(text) if text else {}
                except orjson.JSONDecodeError:
                    block["input"] = text
            content.append(block)
        return {**self.message, "content": content}


# --- the stored record ----------------------------------------------------------------


# The stored columns, in the order of the spans table's inserts (`to_row` builds its
# values in this order; `gateway.capture.span_table.SPAN_COLUMNS` is this tuple).
RECORD_COLUMNS = (
    "span_id",
    "trace_id",
    "parent_span_id",
    "project_id",
    "thread_id",
    "run_id",
    "label",
    "tags",
    "operation",
    "method",
    "path",
    "provider",
    "request_model",
    "response_model",
    "stream",
    "status",
    "http_status",
    "start_us",
    "end_us",
    "duration_ms",
    "ttft_ms",
    "request",
    "request_headers",
    "query",
    "response",
    "response_headers",
    "input_preview",
    "output_text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cost_usd",
    "error",
    "attributes",
    "links",
    "origin",  # app, experiment, ...: gateway.capture.origin (migration 0003)
)
_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS


def to_record(span: Span) -> dict[str, Any]:
    """The span as store columns: JSON encoded, with every secret removed.

    Redaction happens here (`to_row`), the one place a span turns into bytes for the
    store, so nothing reaches the database (or the events stream, which reads records)
    without it.
    """
    return dict(zip(RECORD_COLUMNS, to_row(span), strict=True))


def _dump(value: Any, secrets: list[str]) -> str | None:
    """``value`` as JSON text, ``secrets`` (long enough ones only: `scrub_values`'s
    rule, applied once per span by `to_row`) replaced wherever they occur."""
    if value is None:
        return None
    text = orjson.dumps(value, option=_NON_STR_KEYS).decode()
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _body(
    name: str, value: Any, secrets: list[str], dropped: list[str], redact: bool | None = None
) -> str | None:
    """``value`` redacted (when ``redact``, or it has secret fields) and encoded; or,
    when it nests deeper than can be stored, left out and named in ``dropped``: the
    call went through all the same, and the rest of its record is kept."""
    try:
        if redact is None:
            redact = has_secret_fields(value)
        return _dump(redact_body(value) if redact else value, secrets)
    except (NestingTooDeep, orjson.JSONEncodeError):
        if nesting_depth(value) <= MAX_STORED_DEPTH:
            raise  # not the depth: `record_or_outline` stores the outline
        dropped.append(name)
        return None


def to_row(span: Span) -> tuple[Any, ...]:
    """`to_record`'s values as a row in `RECORD_COLUMNS` order, without the dict (the
    writer process stores rows: a dict per span and a getter to make it a row cost it
    ~1.5 us a span). Values are computed in column order, so a span whose record
    cannot be built fails on the same column, with the same error, either way."""
    ctx = span.context
    # The values of the request's key fields too: an upstream may echo them back.
    request_secrets = body_secret_values(span.request)
    # Those `scrub_values` would look for (the shorter ones it skips), in order.
    secrets = [s for s in (*span.secrets, *request_secrets) if len(s) >= MIN_SECRET_VALUE]
    dropped: list[str] = []
    query = span.query
    end_us = span.end_us
    first_token_us = span.first_token_us
    start_us = span.start_us
    input_preview = span.input_preview
    output_text = span.output_text
    row = (
        ctx.span_id,
        ctx.trace_id,
        ctx.parent_span_id,
        ctx.project_id,
        ctx.thread_id,
        ctx.run_id,
        ctx.label,
        _dump(ctx.tags, secrets) if ctx.tags else None,
        span.operation,
        span.method,
        span.path,
        span.provider,
        span.request_model,
        span.response_model,
        int(span.stream),
        span.status,
        span.http_status,
        start_us,
        end_us,
        None if end_us is None else (end_us - start_us) / 1000.0,  # Span.duration_ms
        None if first_token_us is None else (first_token_us - start_us) / 1000.0,  # ttft_ms
        # A body with no secret-named field is dumped as is: the same bytes as a
        # redacted copy, without making one (the writer's largest cost per span).
        _body("request", span.request, secrets, dropped, bool(request_secrets)),
        _dump(span.request_headers, secrets) if span.request_headers else None,
        (redact_query(query, secrets) if query else query) or None,
        _body("response", span.response, secrets, dropped),
        _dump(span.response_headers, secrets) if span.response_headers else None,
        scrub_values(input_preview, secrets) if input_preview and secrets else input_preview,
        scrub_values(output_text, secrets) if output_text and secrets else output_text,
        span.finish_reason,
        span.prompt_tokens,
        span.completion_tokens,
        span.total_tokens,
        span.cached_tokens,
        span.cost_usd,
        _body("error", span.error, secrets, dropped, redact=False),
        _body("attributes", ctx.attributes, secrets, dropped) if ctx.attributes else None,
        _dump(ctx.links, secrets) if ctx.links else None,
        span_origin(ctx.attributes),
    )
    if dropped:
        record = dict(zip(RECORD_COLUMNS, row, strict=True))
        _mark_dropped(
            record,
            dropped,
            {} if "attributes" in dropped else ctx.attributes,
            lambda value: _dump(value, secrets),
        )
        return tuple(record.values())
    return row


def _mark_dropped(
    record: dict[str, Any],
    dropped: list[str],
    attributes: Mapping[str, Any],
    dump: Callable[[Any], str | None],
) -> None:
    """Say in the record what was left out for nesting too deeply, and why: in the
    attribute `CAPTURE_DROPPED`, and as the span's error unless it has one."""
    what = " and ".join(dropped)
    record["attributes"] = dump(_redacted({**attributes, CAPTURE_DROPPED: dropped}))
    if record["error"] is None:
        message = (
            f"{what} too deeply nested to store (over {MAX_STORED_DEPTH} levels):"
            f" the call went through, its {what} is not kept"
        )
        error = {"type": "capture_error", "code": "too_deeply_nested", "message": message}
        record["error"] = dump(error)


def _redacted(value: Any) -> Any:
    return redact_body(value) if has_secret_fields(value) else value
