"""What an evaluator reads: `EvalCell`, one finished matrix cell as a typed record.

A cell's row (``experiment_runs``) holds its output text, tokens, cost and duration;
its tool calls are not in it but in the captured response of its span, whose shape
is the API dialect's: chat (``choices[0].message.tool_calls``, or the legacy
``function_call``), Responses (``output`` items of type ``function_call``) and
Anthropic Messages (``content`` blocks of type ``tool_use``). `tool_calls_of` reads
all three into `ToolCall` records. The input gives the prompt text and the expected
output (any JSON: a string, a number, an object with ``content`` and/or
``tool_calls``, a list of tool names).

The same record is what a Python evaluator of the CLI gets (``GET
/experiments/{id}/evaluation/cells`` serves it as JSON; `EvalCell.from_dict` reads it
back), so a check behaves the same in the gateway and in a script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool (function) call a model made: its name and its arguments, parsed from
    JSON when they are JSON (``arguments_text`` keeps them as sent)."""

    name: str
    arguments: Any = None
    arguments_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class EvalCell:
    """One finished matrix cell, what any evaluator judges.

    ``latency_ms`` is the cell's duration as the matrix recorded it; ``cost_usd`` and
    the token counts are None when unknown; ``expected`` is the input's expected
    output as stored (None: the input has none)."""

    run_id: str
    experiment_id: str
    output: str
    input: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    expected: Any = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    variant_id: str | None = None
    variant: str | None = None
    input_id: str | None = None
    input_key: str | None = None
    repetition: int | None = None
    matrix_run_id: str | None = None
    span_id: str | None = None
    status: str = "completed"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["tool_calls"] = [call.as_dict() for call in self.tool_calls]
        out["total_tokens"] = self.total_tokens
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalCell:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["tool_calls"] = tuple(
            ToolCall(
                name=str(c.get("name") or ""),
                arguments=c.get("arguments"),
                arguments_text=c.get("arguments_text"),
            )
            for c in data.get("tool_calls") or []
            if isinstance(c, Mapping)
        )
        values.setdefault("output", "")
        values["output"] = values["output"] or ""
        values["metadata"] = dict(values.get("metadata") or {})
        return cls(**values)


def _arguments(raw: Any) -> tuple[Any, str | None]:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw), raw
        except orjson.JSONDecodeError:
            return raw, raw
    return raw, None if raw is None else orjson.dumps(raw).decode()


def tool_calls_of(response: Any) -> tuple[ToolCall, ...]:
    """The tool calls in a captured response, whichever dialect it is in."""
    if not isinstance(response, Mapping):
        return ()
    calls: list[ToolCall] = []
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
        if isinstance(message, Mapping):
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    args, text = _arguments(function.get("arguments"))
                    calls.append(ToolCall(str(function.get("name") or ""), args, text))
            legacy = message.get("function_call")
            if isinstance(legacy, Mapping):
                args, text = _arguments(legacy.get("arguments"))
                calls.append(ToolCall(str(legacy.get("name") or ""), args, text))
        return tuple(calls)
    output = response.get("output")
    if isinstance(output, list):  # Responses API
        for item in output:
            if isinstance(item, Mapping) and item.get("type") == "function_call":
                args, text = _arguments(item.get("arguments"))
                calls.append(ToolCall(str(item.get("name") or ""), args, text))
        return tuple(calls)
    content = response.get("content")
    if isinstance(content, list):  # Anthropic Messages
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "tool_use":
                args, text = _arguments(block.get("input"))
                calls.append(ToolCall(str(block.get("name") or ""), args, text))
    return tuple(calls)


def expected_text(expected: Any) -> str | None:
    """The expected output as text: a string as is, an object's ``content`` (or
    ``output``/``text``), a number or other JSON as its JSON text; None when there is
    no expected output."""
    if expected is None:
        return None
    if isinstance(expected, str):
        return expected
    if isinstance(expected, Mapping):
        for key in ("content", "output", "text"):
            value = expected.get(key)
            if isinstance(value, str):
                return value
    return orjson.dumps(expected).decode()


def expected_tool_names(expected: Any) -> list[str] | None:
    """The tools the expected output calls, in order: from an object's ``tool_calls``
    (chat shape, or ``{name}`` items) or a list of names; None if it says none."""
    items: Any = None
    if isinstance(expected, Mapping):
        items = expected.get("tool_calls")
    elif isinstance(expected, list):
        items = expected
    if not isinstance(items, list):
        return None
    names: list[str] = []
    for item in items:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, Mapping):
            function = item.get("function")
            name = function.get("name") if isinstance(function, Mapping) else item.get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def input_text(item: Mapping[str, Any]) -> str:
    """An input's prompt as text: its content, else its request's last user message."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    request = item.get("request")
    if isinstance(request, Mapping):
        for message in reversed(request.get("messages") or []):
            if isinstance(message, Mapping) and message.get("role") == "user":
                text = message.get("content")
                if isinstance(text, str):
                    return text
                if isinstance(text, list):
                    return " ".join(
                        p["text"] for p in text if isinstance(p, Mapping) and "text" in p
                    )
        prompt = request.get("input") or request.get("prompt")
        if isinstance(prompt, str):
            return prompt
    variables = item.get("variables")
    return orjson.dumps(variables).decode() if variables else ""


def cell_of(cell: Mapping[str, Any], item: Mapping[str, Any] | None, response: Any) -> EvalCell:
    """The record of a matrix cell (an ``experiment_runs`` row as the matrix store
    gives it), its input (None: deleted since) and its span's captured response."""
    config = cell.get("config") or {}
    return EvalCell(
        run_id=str(cell["id"]),
        experiment_id=str(cell["experiment_id"]),
        output=cell.get("output_text") or "",
        input=input_text(item) if item is not None else "",
        tool_calls=tool_calls_of(response),
        expected=None if item is None else item.get("expected_output"),
        latency_ms=cell.get("duration_ms"),
        ttft_ms=cell.get("ttft_ms"),
        cost_usd=cell.get("cost_usd"),
        input_tokens=cell.get("input_tokens"),
        output_tokens=cell.get("output_tokens"),
        variant_id=cell.get("variant_id"),
        variant=config.get("variant_name"),
        input_id=cell.get("input_id"),
        input_key=config.get("input_key"),
        repetition=cell.get("repetition"),
        matrix_run_id=cell.get("matrix_run_id"),
        span_id=cell.get("result_span_id"),
        status=str(cell.get("status") or "completed"),
        metadata=dict((item or {}).get("metadata") or {}),
    )
