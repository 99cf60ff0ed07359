"""The registry of built-in evaluator types (`TYPES`), and checking an evaluator's
configuration (`check_config`) when it is added or changed: a known type, its params
checked (a bad one is a 400 naming ``params.<name>``), a metric key.

The scoring functions are in `gateway.evaluation.evaluators_text` (text and
measures) and `gateway.evaluation.tool_calls`; the LLM judge (``llm_judge``) calls a
model and is run by `gateway.evaluation.judge`. `evaluate_builtin` runs one
non-judge evaluator on a cell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest, SpanlabError
from gateway.evaluation import evaluators_text as text
from gateway.evaluation import tool_calls as tools
from gateway.evaluation.cell import EvalCell
from gateway.evaluation.evaluator_base import (
    BOOLEAN,
    UNIT,
    CannotJudge,
    EvaluatorType,
    MetricShape,
    Outcome,
    Param,
    bad_param,
    check_params,
)
from gateway.evaluation.rubrics import RUBRIC_VARIABLES, RUBRICS
from gateway.experiments.requests import render

METRIC_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
JUDGE = "llm_judge"


def _boolean(params: Mapping[str, Any]) -> MetricShape:
    return BOOLEAN


def _unit_or_pass(params: Mapping[str, Any]) -> MetricShape:
    return UNIT if params.get("threshold") is None else BOOLEAN


_CASE = Param("case_sensitive", "boolean", "Compare letter case too.", False)
_STRINGS = (
    Param("strings", "strings", "The strings to look for.", required=True),
    Param("mode", "choice", "any: one of them; all: every one.", "any", choices=("any", "all")),
    _CASE,
)
_FENCE = Param("strip_code_fence", "boolean", "Read JSON inside a Markdown code fence too.", True)
_SCHEMA = Param("schema", "object", "A JSON Schema (checked when configured).", required=True)
_THRESHOLD = Param(
    "threshold",
    "number",
    "Pass when the score reaches this; none: the score itself (0 to 1).",
    minimum=0.0,
    maximum=1.0,
)


def _check_judge(params: dict[str, Any]) -> None:
    rubric = params.get("rubric")
    if rubric is None:
        params["rubric"] = RUBRICS[params.get("template", "correctness")].text
        return
    try:
        render(rubric, {name: "" for name in RUBRIC_VARIABLES}, "params.rubric")
    except SpanlabError as exc:
        raise bad_param(
            "rubric",
            f"params.rubric must be a Mustache template using only"
            f" {', '.join('{{' + v + '}}' for v in RUBRIC_VARIABLES)}: {exc.message}",
        ) from None


TYPES: dict[str, EvaluatorType] = {
    kind.name: kind
    for kind in (
        EvaluatorType(
            "exact_match",
            "Exact match",
            "The output equals the expected output (or a given value).",
            (
                Param("value", "string", "Compare with this instead of the expected output."),
                Param("trim", "boolean", "Ignore leading and trailing whitespace.", True),
                Param("case_sensitive", "boolean", "Compare letter case too.", True),
            ),
            _boolean,
            text.exact_match,
        ),
        EvaluatorType(
            "contains",
            "Contains",
            "The output contains any (or all) of the strings.",
            _STRINGS,
            _boolean,
            text.contains,
        ),
        EvaluatorType(
            "not_contains",
            "Does not contain",
            "The output does not contain the strings (any: none occurs; all: not all do).",
            _STRINGS,
            _boolean,
            text.not_contains,
        ),
        EvaluatorType(
            "regex",
            "Regular expression",
            "The output matches a regular expression (Python syntax).",
            (
                Param("pattern", "string", "The regular expression.", required=True),
                Param(
                    "match",
                    "choice",
                    "search: anywhere; full: the whole output.",
                    "search",
                    choices=("search", "full"),
                ),
                Param("ignore_case", "boolean", "Ignore letter case.", False),
                Param("multiline", "boolean", "^ and $ match at each line.", False),
                Param("dotall", "boolean", ". matches newlines too.", False),
            ),
            _boolean,
            text.regex,
            text.check_regex,
        ),
        EvaluatorType(
            "valid_json",
            "Valid JSON",
            "The output is JSON.",
            (_FENCE,),
            _boolean,
            text.valid_json,
        ),
        EvaluatorType(
            "json_schema",
            "JSON Schema",
            "The output is JSON valid against a JSON Schema.",
            (_SCHEMA, _FENCE),
            _boolean,
            text.json_schema,
            text.check_schema,
        ),
        EvaluatorType(
            "numeric",
            "Numeric closeness",
            "The first number in the output is within a tolerance of the expected number.",
            (
                Param("value", "number", "Compare with this instead of the expected output."),
                Param("tolerance", "number", "Largest difference allowed.", 0.0, minimum=0.0),
                Param(
                    "mode",
                    "choice",
                    "absolute, or relative to the expected number.",
                    "absolute",
                    choices=("absolute", "relative"),
                ),
            ),
            _boolean,
            text.numeric,
        ),
        EvaluatorType(
            "similarity",
            "Text similarity",
            "Similarity to the expected output (rapidfuzz), 0 to 1, or pass at a threshold.",
            (
                Param("value", "string", "Compare with this instead of the expected output."),
                Param(
                    "scorer",
                    "choice",
                    "The rapidfuzz scorer.",
                    "ratio",
                    choices=text.SIMILARITY_SCORERS,
                ),
                Param("normalize", "boolean", "Lower case and strip punctuation first.", True),
                _THRESHOLD,
            ),
            _unit_or_pass,
            text.similarity,
            text.check_similarity,
        ),
        EvaluatorType(
            "latency",
            "Latency",
            "The cell took at most max_ms milliseconds.",
            (Param("max_ms", "number", "Most milliseconds allowed.", required=True, minimum=0),),
            _boolean,
            text.latency,
        ),
        EvaluatorType(
            "cost",
            "Cost",
            "The cell cost at most max_usd.",
            (Param("max_usd", "number", "Most USD allowed.", required=True, minimum=0),),
            _boolean,
            text.cost,
        ),
        EvaluatorType(
            "tokens",
            "Tokens",
            "The cell used at most max_tokens tokens (output, input or total).",
            (
                Param("max_tokens", "number", "Most tokens allowed.", required=True, minimum=0),
                Param(
                    "which",
                    "choice",
                    "Which count.",
                    "output",
                    choices=("output", "input", "total"),
                ),
            ),
            _boolean,
            text.tokens,
        ),
        EvaluatorType(
            "tool_called",
            "Tool called",
            "The model called the tool.",
            (Param("tool", "string", "The tool's (function's) name.", required=True),),
            _boolean,
            tools.tool_called,
        ),
        EvaluatorType(
            "tool_arguments",
            "Tool arguments",
            "Every call of the tool has arguments valid against a JSON Schema.",
            (Param("tool", "string", "The tool's (function's) name.", required=True), _SCHEMA),
            _boolean,
            tools.tool_arguments,
            text.check_schema,
        ),
        EvaluatorType(
            "tool_sequence",
            "Tool sequence",
            "The same tools in the same order as the expected output's tool_calls.",
            (
                Param(
                    "mode",
                    "choice",
                    "exact: the same list; in_order: the expected ones in order, others allowed.",
                    "exact",
                    choices=("exact", "in_order"),
                ),
            ),
            _boolean,
            tools.tool_sequence,
        ),
        EvaluatorType(
            JUDGE,
            "LLM judge",
            "A judge model grades the output with a rubric; its call goes through the"
            " gateway (a span of origin judge) and its cost is counted apart.",
            (
                Param("model", "string", "The judge model.", required=True),
                Param("provider", "string", "Route the judge's call to this provider."),
                Param(
                    "template",
                    "choice",
                    "The rubric template to start from.",
                    "correctness",
                    choices=tuple(RUBRICS),
                ),
                Param(
                    "rubric",
                    "text",
                    "The rubric (Mustache: {{input}}, {{output}}, {{expected}});"
                    " default: the template's.",
                ),
                _THRESHOLD,
                Param("temperature", "number", "Judge temperature.", 0.0, minimum=0, maximum=2),
                Param(
                    "structured",
                    "boolean",
                    "Ask for the verdict with response_format json_schema.",
                    True,
                ),
            ),
            _unit_or_pass,
            None,
            _check_judge,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class EvaluatorConfig:
    """A checked configuration: a known type, its params with defaults, a metric key."""

    name: str
    type: str
    metric_key: str
    params: dict[str, Any]
    enabled: bool


def evaluator_type(name: Any) -> EvaluatorType:
    kind = TYPES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidRequest(
            f"Unknown evaluator type {name!r}. Known: {', '.join(TYPES)}.",
            param="type",
            code="unknown_evaluator_type",
        )
    return kind


def metric_key_of(name: str) -> str:
    """A metric key from an evaluator's name ("Mentions Paris" -> "mentions_paris")."""
    key = re.sub(r"[^A-Za-z0-9_.:-]+", "_", name.strip()).strip("_").lower()
    return key[:100] or "score"


def check_config(body: Any, current: EvaluatorConfig | None = None) -> EvaluatorConfig:
    """A new evaluator's body, or (with ``current``) a change to one; camelCase
    (``metricKey``) is read as snake_case. A change of type checks its params anew."""
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", param="body")
    body = {("metric_key" if k == "metricKey" else k): v for k, v in body.items()}
    unknown = sorted(set(body) - {"name", "type", "metric_key", "params", "enabled"})
    if unknown:
        raise InvalidRequest(
            f"Unknown evaluator field(s): {', '.join(unknown)}. Accepted: name, type,"
            " metricKey, params, enabled.",
            param=unknown[0],
        )
    name = body.get("name", current.name if current else None)
    type_name = body.get("type", current.type if current else None)
    kind = evaluator_type(type_name)
    if name is None:
        name = kind.name
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidRequest(
            "name must be a non-empty string (200 characters at most).", param="name"
        )
    params = body.get("params")
    if params is None and current is not None and kind.name == current.type:
        params = current.params
    checked = check_params(kind, params)
    metric_key = body.get("metric_key", current.metric_key if current else None)
    if metric_key is None:
        metric_key = metric_key_of(name)
    if not isinstance(metric_key, str) or not METRIC_KEY.match(metric_key):
        raise InvalidRequest(
            "metricKey must be 1 to 100 letters, digits or _ . : - (starting with a letter"
            " or digit).",
            param="metricKey",
        )
    enabled = body.get("enabled", current.enabled if current else True)
    if not isinstance(enabled, bool):
        raise InvalidRequest("enabled must be true or false.", param="enabled")
    return EvaluatorConfig(name.strip(), kind.name, metric_key, checked, enabled)


def evaluate_builtin(type_name: str, cell: EvalCell, params: Mapping[str, Any]) -> Outcome:
    """Run a non-judge evaluator on a cell; `CannotJudge` when it cannot."""
    kind = TYPES[type_name]
    if kind.score is None:
        raise ValueError(f"{type_name} is not a built-in scoring function")
    try:
        return kind.score(cell, params)
    except CannotJudge:
        raise
    except Exception as exc:  # a bug or a pathological input: an error row, not a crash
        raise CannotJudge("evaluator_error", f"{type(exc).__name__}: {exc}") from exc


def types_listing() -> dict[str, Any]:
    """``GET /evaluators/types``: every type with its params and defaults, and the
    judge's rubric templates."""
    return {
        "data": [kind.as_dict() for kind in TYPES.values()],
        "rubrics": [rubric.as_dict() for rubric in RUBRICS.values()],
        "rubric_variables": list(RUBRIC_VARIABLES),
    }
