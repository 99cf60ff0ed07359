"""Tool-call assertions on a cell: a tool was called, its arguments are valid
against a JSON Schema, the same tools were called in the same order as the expected
output's. The calls come from the cell's captured response, whatever its dialect
(`gateway.evaluation.cell.tool_calls_of`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.evaluation.cell import EvalCell, expected_tool_names
from gateway.evaluation.evaluator_base import CannotJudge, Outcome
from gateway.evaluation.evaluators_text import schema_errors


def _names(cell: EvalCell) -> list[str]:
    return [call.name for call in cell.tool_calls]


def tool_called(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    name = params["tool"]
    count = _names(cell).count(name)
    if count:
        return Outcome(True, f"{name} called {count} time(s).")
    called = ", ".join(_names(cell)) or "no tool"
    return Outcome(False, f"{name} not called (called: {called}).")


def tool_arguments(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    """Every call of ``tool`` has arguments valid against ``schema``; a cell that does
    not call it fails (there is nothing valid to show)."""
    name = params["tool"]
    calls = [call for call in cell.tool_calls if call.name == name]
    if not calls:
        return Outcome(False, f"{name} not called.")
    for i, call in enumerate(calls, start=1):
        if isinstance(call.arguments, str):
            return Outcome(False, f"Call {i} of {name}: arguments are not JSON.")
        errors = schema_errors(params["schema"], call.arguments)
        if errors:
            return Outcome(False, f"Call {i} of {name}: {'; '.join(errors)}")
    return Outcome(True, f"{len(calls)} call(s) of {name}, arguments valid.")


def tool_sequence(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    """The tools called, in order, against the expected output's (``exact``: the same
    list; ``in_order``: the expected ones appear in that order, others allowed)."""
    expected = expected_tool_names(cell.expected)
    if expected is None:
        raise CannotJudge("no_expected_output", "The input's expected output names no tool calls.")
    got = _names(cell)
    if params.get("mode", "exact") == "exact":
        ok = got == expected
    else:
        rest = iter(got)
        ok = all(name in rest for name in expected)  # a subsequence, in order
    shown = f"[{', '.join(got)}] vs expected [{', '.join(expected)}]"
    return Outcome(ok, f"{'Same tools in order' if ok else 'Tools differ'}: {shown}.")
