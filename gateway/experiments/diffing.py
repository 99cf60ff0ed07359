"""Comparison of two captured calls: the original and an experiment's result.

Everything here is a pure function of two spans as the API presents them (``GET
/spans/{id}``), so the numbers a comparison shows can be checked against the spans.
The JSON shape `compare_spans` returns is documented in ``docs/api.md``.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Mapping
from typing import Any

import orjson

# Words, runs of whitespace, and single punctuation marks: a diff at this grain shows
# "cat -> dog" rather than whole lines, and joining the pieces gives the text back.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)

METRICS = (
    ("prompt_tokens", "usage.prompt_tokens"),
    ("completion_tokens", "usage.completion_tokens"),
    ("total_tokens", "usage.total_tokens"),
    ("cost_usd", "cost_usd"),
    ("latency_ms", "duration_ms"),
    ("ttft_ms", "ttft_ms"),
)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def word_diff(original: str, result: str) -> list[dict[str, str]]:
    """The edit from ``original`` to ``result`` as runs of ``equal``, ``delete`` and
    ``insert`` (a replacement is a delete then an insert). Joining the ``equal`` and
    ``delete`` runs gives ``original``; ``equal`` and ``insert`` give ``result``."""
    a, b = tokens(original), tokens(result)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    out: list[dict[str, str]] = []

    def add(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1]["op"] == op:
            out[-1]["text"] += text
        else:
            out.append({"op": op, "text": text})

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("equal", "".join(a[i1:i2]))
        else:
            add("delete", "".join(a[i1:i2]))
            add("insert", "".join(b[j1:j2]))
    return out


def unified_diff(
    original: str, result: str, *, from_name: str = "original", to_name: str = "result"
) -> str:
    """A line-level unified diff (``git diff`` style, 3 lines of context); "" if equal."""
    if original == result:
        return ""
    lines = difflib.unified_diff(
        _lines(original), _lines(result), fromfile=from_name, tofile=to_name, lineterm=""
    )
    return "\n".join(lines) + "\n"


def _lines(text: str) -> list[str]:
    return text.split("\n") if text else []


def similarity(original: str, result: str) -> float:
    """Share of the two texts' words in common, 0..1 (1 when both are empty)."""
    if not original and not result:
        return 1.0
    matcher = difflib.SequenceMatcher(a=tokens(original), b=tokens(result), autojunk=False)
    return round(matcher.ratio(), 4)


# --- tool calls -------------------------------------------------------------------------


def tool_calls(response: Any) -> list[dict[str, Any]]:
    """The tool calls a response asked for, whatever the dialect, as
    ``{"id", "name", "arguments"}`` with ``arguments`` parsed when it is JSON."""
    if not isinstance(response, Mapping):
        return []
    calls: list[dict[str, Any]] = []
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
        if isinstance(message, Mapping):
            for call in message.get("tool_calls") or []:
                if isinstance(call, Mapping):
                    function = call.get("function") or {}
                    calls.append(
                        _call(call.get("id"), function.get("name"), function.get("arguments"))
                    )
            legacy = message.get("function_call")
            if isinstance(legacy, Mapping):
                calls.append(_call(None, legacy.get("name"), legacy.get("arguments")))
        return calls
    output = response.get("output")
    if isinstance(output, list):  # Responses API
        for item in output:
            if isinstance(item, Mapping) and item.get("type") == "function_call":
                calls.append(
                    _call(
                        item.get("call_id") or item.get("id"),
                        item.get("name"),
                        item.get("arguments"),
                    )
                )
        return calls
    content = response.get("content")
    if isinstance(content, list):  # Anthropic
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "tool_use":
                calls.append(_call(block.get("id"), block.get("name"), block.get("input")))
    return calls


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        # Kept as the raw string when it is not JSON: a model can emit broken JSON.
        with contextlib.suppress(orjson.JSONDecodeError):
            arguments = orjson.loads(arguments) if arguments.strip() else {}
    return {
        "id": call_id if isinstance(call_id, str) else None,
        "name": name if isinstance(name, str) else None,
        "arguments": arguments,
    }


def json_changes(original: Any, result: Any, path: str = "") -> list[dict[str, Any]]:
    """Leaf-level differences between two JSON values: ``{"path", "op", "original",
    "result"}`` with ``op`` one of ``added``, ``removed``, ``changed``."""
    if isinstance(original, Mapping) and isinstance(result, Mapping):
        out: list[dict[str, Any]] = []
        for key in sorted(set(original) | set(result), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in result:
                out.append(
                    {"path": sub, "op": "removed", "original": original[key], "result": None}
                )
            elif key not in original:
                out.append({"path": sub, "op": "added", "original": None, "result": result[key]})
            else:
                out += json_changes(original[key], result[key], sub)
        return out
    if isinstance(original, list) and isinstance(result, list):
        out = []
        for i in range(max(len(original), len(result))):
            sub = f"{path}[{i}]"
            if i >= len(result):
                out.append({"path": sub, "op": "removed", "original": original[i], "result": None})
            elif i >= len(original):
                out.append({"path": sub, "op": "added", "original": None, "result": result[i]})
            else:
                out += json_changes(original[i], result[i], sub)
        return out
    if original == result and type(original) is type(result):
        return []
    return [{"path": path, "op": "changed", "original": original, "result": result}]


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def compare_tool_calls(
    original: list[dict[str, Any]], result: list[dict[str, Any]]
) -> dict[str, Any]:
    """Tool calls paired by position: each pair ``equal``, ``changed``, ``added`` or
    ``removed``, with the argument changes and a unified diff of the arguments."""
    pairs: list[dict[str, Any]] = []
    for i in range(max(len(original), len(result))):
        a = original[i] if i < len(original) else None
        b = result[i] if i < len(result) else None
        entry: dict[str, Any] = {"index": i, "original": a, "result": b}
        if a is None or b is None:
            entry["op"] = "added" if a is None else "removed"
            entry["name_changed"] = True
            entry["arguments_changes"] = []
            entry["arguments_diff"] = ""
        else:
            changes = json_changes(a["arguments"], b["arguments"])
            entry["name_changed"] = a["name"] != b["name"]
            entry["op"] = "changed" if changes or entry["name_changed"] else "equal"
            entry["arguments_changes"] = changes
            entry["arguments_diff"] = unified_diff(_pretty(a["arguments"]), _pretty(b["arguments"]))
        pairs.append(entry)
    return {
        "original": original,
        "result": result,
        "identical": all(p["op"] == "equal" for p in pairs),
        "pairs": pairs,
    }


# --- numbers ----------------------------------------------------------------------------


def _get(span: Mapping[str, Any], dotted: str) -> Any:
    value: Any = span
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def metric(original: float | int | None, result: float | int | None) -> dict[str, Any]:
    """``delta`` = result - original; ``percent_change`` = delta / original * 100,
    rounded to 2 places; each None when a side is missing (or the original is 0)."""
    delta: float | int | None = None
    percent: float | None = None
    if original is not None and result is not None:
        delta = result - original
        if isinstance(delta, float):
            delta = round(delta, 12)  # no 1e-17 noise from float subtraction
        if original != 0:
            percent = round((result - original) / original * 100, 2)
    return {"original": original, "result": result, "delta": delta, "percent_change": percent}


def side(span: Mapping[str, Any]) -> dict[str, Any]:
    """One side of a comparison: what the span was, and what it produced."""
    return {
        "span_id": span.get("span_id"),
        "trace_id": span.get("trace_id"),
        "provider": span.get("provider"),
        "request_model": span.get("request_model"),
        "response_model": span.get("response_model"),
        "status": span.get("status"),
        "http_status": span.get("http_status"),
        "error": span.get("error"),
        "stream": span.get("stream"),
        "output_text": span.get("output_text"),
        "finish_reason": span.get("finish_reason"),
        "tool_calls": tool_calls(span.get("response")),
        "usage": span.get("usage"),
        "cost_usd": span.get("cost_usd"),
        "latency_ms": span.get("duration_ms"),
        "ttft_ms": span.get("ttft_ms"),
        "start_time": span.get("start_time"),
    }


def compare_spans(original: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    a, b = side(original), side(result)
    text_a = a["output_text"] or ""
    text_b = b["output_text"] or ""
    model_a = a["response_model"] or a["request_model"]
    model_b = b["response_model"] or b["request_model"]
    return {
        "original": a,
        "result": b,
        "output": {
            "original": a["output_text"],
            "result": b["output_text"],
            "identical": a["output_text"] == b["output_text"],
            "similarity": similarity(text_a, text_b),
            "word_diff": word_diff(text_a, text_b),
            "unified_diff": unified_diff(text_a, text_b),
        },
        "tool_calls": compare_tool_calls(a["tool_calls"], b["tool_calls"]),
        "finish_reason": {
            "original": a["finish_reason"],
            "result": b["finish_reason"],
            "changed": a["finish_reason"] != b["finish_reason"],
        },
        "model": {"original": model_a, "result": model_b, "changed": model_a != model_b},
        "metrics": {
            name: metric(_get(original, path), _get(result, path)) for name, path in METRICS
        },
    }
