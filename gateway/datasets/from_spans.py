"""Items from captured calls: a span's request becomes the item's request, its answer
the expected output.

The request is the one stored (as sent upstream, secrets already redacted by
capture), tools and all; the item's ``operation`` is the span's dialect. The expected
output is the answer's text, or, when the model answered with tool calls,
``{"content": text or null, "tool_calls": [...]}`` with the calls in the OpenAI chat
shape whatever the dialect (``{"id", "type": "function", "function": {"name",
"arguments"}}``, arguments as JSON text). ``metadata.span`` keeps what an experiment
may want of the original: model, provider, status, usage, cost, latency, thread.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.datasets.items import OPERATIONS
from gateway.store.datasets import ItemContent

# The span fields an item keeps in ``metadata.span``.
SPAN_FACTS = (
    "trace_id",
    "operation",
    "provider",
    "request_model",
    "response_model",
    "status",
    "finish_reason",
    "thread_id",
    "label",
    "project_id",
    "start_time",
    "duration_ms",
    "usage",
    "cost_usd",
)


class NotAnInput(ValueError):
    """A span that cannot be a dataset item (why, in its message)."""


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _function_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id if isinstance(call_id, str) else None,
        "type": "function",
        "function": {"name": name, "arguments": _arguments(arguments)},
    }


def tool_calls(response: Any) -> list[dict[str, Any]]:
    """The tool calls an answer asked for, in the OpenAI chat shape."""
    if not isinstance(response, Mapping):
        return []
    choices = response.get("choices")
    if isinstance(choices, list):  # OpenAI chat (a stream is stored assembled so)
        message = choices[0].get("message") if choices and isinstance(choices[0], Mapping) else None
        if not isinstance(message, Mapping):
            return []
        calls = [copy.deepcopy(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        legacy = message.get("function_call")
        if isinstance(legacy, Mapping):
            calls.append(_function_call(None, legacy.get("name"), legacy.get("arguments")))
        return calls
    output = response.get("output")
    if isinstance(output, list):  # Responses API
        return [
            _function_call(
                item.get("call_id") or item.get("id"), item.get("name"), item.get("arguments")
            )
            for item in output
            if isinstance(item, Mapping) and item.get("type") == "function_call"
        ]
    content = response.get("content")
    if isinstance(content, list):  # Anthropic Messages
        return [
            _function_call(block.get("id"), block.get("name"), block.get("input"))
            for block in content
            if isinstance(block, Mapping) and block.get("type") == "tool_use"
        ]
    return []


def expected_output(span: Mapping[str, Any]) -> Any:
    text = span.get("output_text")
    calls = tool_calls(span.get("response"))
    if calls:
        return {"content": text, "tool_calls": calls}
    return text


def item_from_span(span: Mapping[str, Any]) -> ItemContent:
    """The item a stored span (``SpanStore.get_span``'s shape) makes; `NotAnInput`
    when it has no request to replay."""
    operation = span.get("operation")
    if operation not in OPERATIONS:
        raise NotAnInput(f"a {operation} call is not a model call to replay")
    request = span.get("request")
    if not isinstance(request, dict):
        raise NotAnInput("no JSON request was captured")
    return ItemContent(
        key=str(span["span_id"]),
        request=copy.deepcopy(request),
        operation=str(operation),
        expected_output=expected_output(span),
        metadata={"span": {name: span.get(name) for name in SPAN_FACTS}},
        source_span_id=str(span["span_id"]),
    )
