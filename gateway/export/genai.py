"""A stored span row as an OpenTelemetry GenAI span: its name, attributes, status.

Pure functions over the row as the writer committed it (`SPAN_COLUMNS` order, JSON
columns as text, secrets already redacted by `capture.to_record`): no SDK here, so the
mapping is tested without it. The `gen_ai.*` core comes from `capture.otel`
(`genai_attributes`, the same attributes ``GET /spans/{id}`` shows); this module adds
what an exporter needs besides: values OTLP can carry, the request parameters of each
dialect, the span's grouping and experiment links, and, only when asked, the messages.

Message content follows the current GenAI convention (semantic conventions 1.37 and
later): ``gen_ai.input.messages``, ``gen_ai.output.messages`` and
``gen_ai.system_instructions`` span attributes, each a JSON array of
``{"role", "parts": [{"type": "text", "content"}, ...]}`` (the SDK takes no nested
attribute values, so JSON text, as the convention allows). The older per-message span
events (``gen_ai.user.message``...) are deprecated there, and attributes reach every
OTLP backend as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.capture.otel import genai_attributes
from gateway.capture.span_table import SPAN_COLUMNS

Attributes = dict[str, Any]

# Request fields named differently in another dialect (Anthropic: stop_sequences).
EXTRA_PARAMETERS = {"stop_sequences": "gen_ai.request.stop_sequences"}
# Longest error message kept in the span's status description.
MAX_STATUS_DESCRIPTION = 1000
_INDEX = {name: i for i, name in enumerate(SPAN_COLUMNS)}


@dataclass(slots=True)
class Link:
    trace_id: str
    span_id: str
    attributes: Attributes = field(default_factory=dict)


@dataclass(slots=True)
class GenAISpan:
    """What the exporter turns into an SDK span (`gateway.export.otlp`)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int
    attributes: Attributes
    error: str | None  # the status description of a failed call; None: ok
    links: list[Link]


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _otel_value(value: Any) -> Any:
    """A value OTLP attributes take (a primitive, or a list of primitives of one type);
    anything else as JSON text; None for nothing."""
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        items = [v for v in value if v is not None]
        if items and all(isinstance(v, str) for v in items):
            return list(items)
        kinds = {type(v) for v in items}
        if len(kinds) == 1 and kinds <= {int, float, bool}:
            return list(items)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def span_from_row(row: Sequence[Any], provider_kinds: Mapping[str, str]) -> GenAISpan:
    """The span to export for a stored row. ``provider_kinds``: provider name -> its
    API dialect (``openai``, ``anthropic``), the ``gen_ai.provider.name``."""
    get = row.__getitem__
    request = _json(get(_INDEX["request"]))
    response = _json(get(_INDEX["response"]))
    error = _json(get(_INDEX["error"]))
    own = _json(get(_INDEX["attributes"])) or {}
    provider = get(_INDEX["provider"])
    operation = get(_INDEX["operation"])
    span = {
        "operation": operation,
        "provider": provider,
        "request_model": get(_INDEX["request_model"]),
        "response_model": get(_INDEX["response_model"]),
        "request": request,
        "response": response,
        "finish_reason": get(_INDEX["finish_reason"]),
        "thread_id": get(_INDEX["thread_id"]),
        "error": error,
        "usage": {
            "prompt_tokens": get(_INDEX["prompt_tokens"]),
            "completion_tokens": get(_INDEX["completion_tokens"]),
        },
    }
    kind = provider_kinds.get(provider or "")
    attrs: Attributes = {}
    for key, value in genai_attributes(span, kind).items():
        if key == "gen_ai.request.stop_sequences" and isinstance(value, str):
            value = [value]  # OpenAI's stop may be one string; the convention: string[]
        if (converted := _otel_value(value)) is not None:
            attrs[key] = converted
    if kind is None and provider:
        attrs["gen_ai.provider.name"] = provider
    # gen_ai.system: the name before semantic conventions 1.37; backends still read it.
    if "gen_ai.provider.name" in attrs:
        attrs["gen_ai.system"] = attrs["gen_ai.provider.name"]
    if isinstance(request, dict):
        for key, name in EXTRA_PARAMETERS.items():
            if name not in attrs and (value := _otel_value(request.get(key))) is not None:
                attrs[name] = value
        if operation == "embeddings":
            if isinstance(request.get("encoding_format"), str):
                attrs["gen_ai.request.encoding_formats"] = [request["encoding_format"]]
            if isinstance(request.get("dimensions"), int):
                attrs["gen_ai.embeddings.dimension.count"] = request["dimensions"]
    cached = get(_INDEX["cached_tokens"])
    if cached is not None:
        attrs["gen_ai.usage.cache_read.input_tokens"] = cached
    _grouping(row, own, attrs)
    model = get(_INDEX["request_model"]) or get(_INDEX["response_model"])
    name = f"{attrs['gen_ai.operation.name']} {model}" if model else attrs["gen_ai.operation.name"]
    start_us = get(_INDEX["start_us"]) or 0
    end_us = get(_INDEX["end_us"]) or start_us
    return GenAISpan(
        name=name,
        trace_id=get(_INDEX["trace_id"]),
        span_id=get(_INDEX["span_id"]),
        parent_span_id=get(_INDEX["parent_span_id"]),
        start_ns=start_us * 1000,
        end_ns=end_us * 1000,
        attributes=attrs,
        error=_status_description(get(_INDEX["status"]), error),
        links=_links(_json(get(_INDEX["links"]))),
    )


def _grouping(row: Sequence[Any], own: Any, attrs: Attributes) -> None:
    """Spanlab's own facts: grouping, origin, timings, cost, and the span's attributes
    (an experiment's, variant's and input's ids: ``spanlab.experiment.*``)."""
    get = row.__getitem__
    for column, name in (
        ("origin", "spanlab.origin"),
        ("project_id", "spanlab.project.id"),
        ("thread_id", "spanlab.thread.id"),
        ("run_id", "spanlab.run.id"),
        ("label", "spanlab.label"),
        ("provider", "spanlab.provider"),
        ("status", "spanlab.status"),
        ("stream", "spanlab.stream"),
        ("ttft_ms", "spanlab.ttft_ms"),
        ("cost_usd", "spanlab.cost_usd"),
        ("http_status", "http.response.status_code"),
        ("method", "http.request.method"),
    ):
        value = get(_INDEX[column])
        if value is not None:
            attrs[name] = bool(value) if column == "stream" else value
    tags = _json(get(_INDEX["tags"]))
    if isinstance(tags, dict):
        for key, value in tags.items():
            attrs[f"spanlab.tag.{key}"] = str(value)
    if isinstance(own, dict):
        for key, value in own.items():
            name = key if "." in key else f"spanlab.{key}"
            if (converted := _otel_value(value)) is not None:
                attrs.setdefault(name, converted)


def _status_description(status: str | None, error: Any) -> str | None:
    if status in (None, "ok"):
        return None
    message = error.get("message") if isinstance(error, dict) else None
    text = message if isinstance(message, str) and message else str(status)
    return text[:MAX_STATUS_DESCRIPTION]


def _links(links: Any) -> list[Link]:
    out = []
    for link in links if isinstance(links, list) else ():
        if (
            isinstance(link, dict)
            and _hex(link.get("trace_id"), 32)
            and _hex(link.get("span_id"), 16)
        ):
            attrs = link.get("attributes")
            clean = {}
            if isinstance(attrs, dict):
                clean = {k: v for k, a in attrs.items() if (v := _otel_value(a)) is not None}
            out.append(Link(link["trace_id"], link["span_id"], clean))
    return out


def _hex(value: Any, length: int) -> bool:
    if not isinstance(value, str) or len(value) != length:
        return False
    try:
        return int(value, 16) != 0
    except ValueError:
        return False


# --- message content (only with otlp_capture_content) ---------------------------------


def content_attributes(row: Sequence[Any]) -> Attributes:
    """``gen_ai.system_instructions``, ``gen_ai.input.messages`` and
    ``gen_ai.output.messages`` of a stored row, as JSON text (module docstring)."""
    request = _json(row[_INDEX["request"]])
    response = _json(row[_INDEX["response"]])
    finish = row[_INDEX["finish_reason"]]
    attrs: Attributes = {}
    system, inputs = input_messages(request)
    if system:
        attrs["gen_ai.system_instructions"] = _dump(system)
    if inputs:
        attrs["gen_ai.input.messages"] = _dump(inputs)
    outputs = output_messages(response, finish)
    if outputs:
        attrs["gen_ai.output.messages"] = _dump(outputs)
    return attrs


def _dump(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def _parts(content: Any) -> list[dict[str, Any]]:
    """Message content of any dialect (a string, or a list of typed blocks) as parts."""
    if isinstance(content, str):
        return [_text(content)]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        if isinstance(block, str):
            parts.append(_text(block))
            continue
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if isinstance(block.get("text"), str):  # text, input_text, output_text
            parts.append(_text(block["text"]))
        elif kind == "tool_use":  # Anthropic
            parts.append(_tool_call(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            result = block.get("content")
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": block.get("tool_use_id"),
                    "response": result,
                }
            )
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            parts.append({"type": "reasoning", "content": block["thinking"]})
        elif isinstance(kind, str):  # an image, a file, audio: named, not copied
            parts.append({"type": kind})
    return parts


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        arguments = _json(arguments) if arguments else None
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def _chat_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role") or "user"
    parts = _parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict):
            function = call.get("function") or {}
            parts.append(
                _tool_call(call.get("id"), function.get("name"), function.get("arguments"))
            )
    if role == "tool":
        content = message.get("content")
        parts = [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": content,
            }
        ]
    return {"role": role, "parts": parts}


def input_messages(request: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system instructions as parts, input messages) of a request of any dialect."""
    if not isinstance(request, dict):
        return [], []
    system: list[dict[str, Any]] = []
    if "system" in request:  # Anthropic
        system = _parts(request["system"])
    elif isinstance(request.get("instructions"), str):  # Responses
        system = [_text(request["instructions"])]
    messages = request.get("messages")
    if isinstance(messages, list):  # chat, Anthropic messages
        return system, [_chat_message(m) for m in messages if isinstance(m, dict)]
    value = request.get("input", request.get("prompt"))
    if isinstance(value, str):  # Responses, completions (embeddings' input is not a message)
        return system, [{"role": "user", "parts": [_text(value)]}]
    out = []
    for item in value if isinstance(value, list) else ():
        if isinstance(item, str):
            out.append({"role": "user", "parts": [_text(item)]})
        elif isinstance(item, dict) and item.get("type") == "function_call_output":
            response = item.get("output")
            part = {
                "type": "tool_call_response",
                "id": item.get("call_id"),
                "response": response,
            }
            out.append({"role": "tool", "parts": [part]})
        elif isinstance(item, dict) and item.get("type") == "function_call":
            call = _tool_call(item.get("call_id"), item.get("name"), item.get("arguments"))
            out.append({"role": "assistant", "parts": [call]})
        elif isinstance(item, dict) and "role" in item:
            out.append({"role": item["role"], "parts": _parts(item.get("content"))})
    return system, out


def output_messages(response: Any, finish_reason: str | None) -> list[dict[str, Any]]:
    """The messages a response of any dialect holds (assembled, for a stream)."""
    if not isinstance(response, dict):
        return []
    choices = response.get("choices")
    if isinstance(choices, list):  # chat, completions
        out = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            if isinstance(message, dict):
                entry = _chat_message({**message, "role": message.get("role") or "assistant"})
            elif isinstance(choice.get("text"), str):
                entry = {"role": "assistant", "parts": [_text(choice["text"])]}
            else:
                continue
            entry["finish_reason"] = choice.get("finish_reason") or finish_reason or ""
            out.append(entry)
        return out
    if isinstance(response.get("output"), list):  # Responses
        parts: list[dict[str, Any]] = []
        for item in response["output"]:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                parts += _parts(item.get("content"))
            elif item.get("type") == "function_call":
                parts.append(
                    _tool_call(item.get("call_id"), item.get("name"), item.get("arguments"))
                )
        if not parts:
            return []
        return [{"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}]
    if response.get("type") == "message":  # Anthropic
        return [
            {
                "role": response.get("role") or "assistant",
                "parts": _parts(response.get("content")),
                "finish_reason": finish_reason or "",
            }
        ]
    return []
