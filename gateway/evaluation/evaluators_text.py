"""The built-in evaluators of a cell's output text and of its measures: exact match,
contains / not contains, regex, valid JSON, JSON Schema (the ``jsonschema`` library),
numeric closeness, similarity to the expected output (``rapidfuzz``) and latency /
cost / token thresholds. Each is a function of (cell, checked params) -> `Outcome`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.evaluation.cell import EvalCell, expected_text
from gateway.evaluation.evaluator_base import CannotJudge, Outcome, bad_param

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
SIMILARITY_SCORERS = ("ratio", "token_sort_ratio", "token_set_ratio", "partial_ratio")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def reference(cell: EvalCell, params: Mapping[str, Any]) -> str:
    """What to compare with: the ``value`` param if given, else the input's expected
    output; an input without one cannot be judged."""
    value = params.get("value")
    if isinstance(value, str):
        return value
    text = expected_text(cell.expected)
    if text is None:
        raise CannotJudge("no_expected_output", "The input has no expected output to compare with.")
    return text


def exact_match(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    expected, output = reference(cell, params), cell.output
    if params.get("trim", True):
        expected, output = expected.strip(), output.strip()
    if not params.get("case_sensitive", True):
        expected, output = expected.casefold(), output.casefold()
    if output == expected:
        return Outcome(True, "The output equals the expected output.")
    return Outcome(False, f"The output {_short(output)} differs from {_short(expected)}.")


def _found(cell: EvalCell, params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    strings: list[str] = list(params["strings"])
    output = cell.output
    exact = bool(params.get("case_sensitive", False))
    if not exact:
        output = output.casefold()
    present = [s for s in strings if (s if exact else s.casefold()) in output]
    return present, [s for s in strings if s not in present]


def contains(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    present, absent = _found(cell, params)
    if params.get("mode", "any") == "all":
        if absent:
            return Outcome(False, f"Missing: {', '.join(map(repr, absent))}.")
        return Outcome(True, "Contains every string.")
    if present:
        return Outcome(True, f"Contains {', '.join(map(repr, present))}.")
    return Outcome(False, f"Contains none of {', '.join(map(repr, absent))}.")


def not_contains(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    """Passes when ``contains`` with the same params fails: mode ``any`` (the default)
    passes when none of the strings occurs, ``all`` when not all of them do."""
    present, absent = _found(cell, params)
    if params.get("mode", "any") == "all":
        if absent:
            return Outcome(True, f"Not all present (missing {', '.join(map(repr, absent))}).")
        return Outcome(False, "Contains every one of the strings.")
    if present:
        return Outcome(False, f"Contains {', '.join(map(repr, present))}.")
    return Outcome(True, "Contains none of the strings.")


def _flags(params: Mapping[str, Any]) -> int:
    flags = 0
    if params.get("ignore_case"):
        flags |= re.IGNORECASE
    if params.get("multiline"):
        flags |= re.MULTILINE
    if params.get("dotall"):
        flags |= re.DOTALL
    return flags


def check_regex(params: dict[str, Any]) -> None:
    try:
        re.compile(params["pattern"], _flags(params))
    except re.error as exc:
        message = f"params.pattern is not a valid regular expression: {exc}."
        raise bad_param("pattern", message) from None


def regex(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    pattern = re.compile(params["pattern"], _flags(params))
    full = params.get("match") == "full"
    found = pattern.fullmatch(cell.output) if full else pattern.search(cell.output)
    if found:
        return Outcome(True, f"Matches at {found.start()}: {_short(found.group(0), 40)}.")
    return Outcome(False, f"No {'full ' if full else ''}match of /{params['pattern']}/.")


def parse_json(text: str, strip_fence: bool) -> Any:
    """``text`` as JSON (inside a Markdown code fence too, when ``strip_fence``)."""
    if strip_fence:
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
    return orjson.loads(text)


def valid_json(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    try:
        value = parse_json(cell.output, params.get("strip_code_fence", True))
    except orjson.JSONDecodeError as exc:
        return Outcome(False, f"Not JSON: {exc}.")
    return Outcome(True, f"Valid JSON ({type(value).__name__}).")


def check_schema(params: dict[str, Any], name: str = "schema") -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(params[name])
    except SchemaError as exc:
        message = f"params.{name} is not a valid JSON Schema: {exc.message}."
        raise bad_param(name, message) from None


def schema_errors(schema: Mapping[str, Any], value: Any) -> list[str]:
    """Why ``value`` does not satisfy ``schema`` (empty: it does), first errors first."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: e.path)
    return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:3]]


def json_schema(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    try:
        value = parse_json(cell.output, params.get("strip_code_fence", True))
    except orjson.JSONDecodeError as exc:
        return Outcome(False, f"Not JSON: {exc}.")
    errors = schema_errors(params["schema"], value)
    if errors:
        return Outcome(False, "; ".join(errors))
    return Outcome(True, "Valid against the schema.")


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        found = _NUMBER.search(text)
        if found is None:
            return None
        try:
            return float(found.group(0).replace(",", ""))
        except ValueError:
            return None


def numeric(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    """The first number in the output against the expected number (the ``value``
    param, else the expected output), within ``tolerance``: absolute, or relative to
    the expected number's size."""
    target = params.get("value")
    if target is None:
        expected = cell.expected
        if isinstance(expected, int | float) and not isinstance(expected, bool):
            target = float(expected)
        else:
            text = expected_text(expected)
            target = None if text is None else _number(text)
            if target is None:
                raise CannotJudge(
                    "no_expected_output", "The input has no expected number to compare with."
                )
    got = _number(cell.output)
    if got is None:
        return Outcome(False, "The output holds no number.")
    tolerance = float(params.get("tolerance", 0.0))
    relative = params.get("mode", "absolute") == "relative"
    allowed = tolerance * abs(target) if relative else tolerance
    difference = abs(got - float(target))
    ok = difference <= allowed or math.isclose(difference, allowed)
    how = f"{tolerance:g}{' (relative)' if relative else ''}"
    verb = "within" if ok else "outside"
    return Outcome(ok, f"{got:g} vs {float(target):g}: off by {difference:g}, {verb} {how}.")


def check_similarity(params: dict[str, Any]) -> None:
    if params.get("scorer", "ratio") not in SIMILARITY_SCORERS:
        raise bad_param("scorer", f"params.scorer must be one of {', '.join(SIMILARITY_SCORERS)}.")


def similarity(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    from rapidfuzz import fuzz, utils

    expected = reference(cell, params)
    scorer = getattr(fuzz, params.get("scorer", "ratio"))
    processor = utils.default_process if params.get("normalize", True) else None
    value = round(float(scorer(cell.output, expected, processor=processor)) / 100.0, 6)
    threshold = params.get("threshold")
    if threshold is None:
        return Outcome(value, f"Similarity {value:.3f} to the expected output.")
    ok = value >= float(threshold)
    sign = ">=" if ok else "<"
    return Outcome(ok, f"Similarity {value:.3f} {sign} threshold {float(threshold):g}.")


def latency(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    limit = float(params["max_ms"])
    if cell.latency_ms is None:
        raise CannotJudge("no_measure", "The cell has no recorded latency.")
    ok = cell.latency_ms <= limit
    return Outcome(ok, f"{cell.latency_ms:.0f} ms {'<=' if ok else '>'} {limit:g} ms.")


def cost(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    limit = float(params["max_usd"])
    if cell.cost_usd is None:
        raise CannotJudge("no_measure", "The cell's cost is unknown (model not priced).")
    ok = cell.cost_usd <= limit
    return Outcome(ok, f"${cell.cost_usd:.6f} {'<=' if ok else '>'} ${limit:g}.")


def tokens(cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    which = params.get("which", "output")
    count = {
        "input": cell.input_tokens,
        "output": cell.output_tokens,
        "total": cell.total_tokens,
    }[which]
    if count is None:
        raise CannotJudge("no_measure", f"The cell's {which} token count is unknown.")
    limit = float(params["max_tokens"])
    ok = count <= limit
    return Outcome(ok, f"{count} {which} tokens {'<=' if ok else '>'} {limit:g}.")
