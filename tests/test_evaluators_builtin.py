"""The built-in evaluators, each on a cell that passes and one that fails, their
params checked on configuration (a clear 400 naming the param), tool calls read from
each dialect's captured response, and the judge's verdict parsed robustly."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.evaluation.cell import EvalCell, ToolCall, tool_calls_of
from gateway.evaluation.evaluator_base import CannotJudge, Outcome
from gateway.evaluation.evaluators import TYPES, check_config, evaluate_builtin, types_listing
from gateway.evaluation.judge import parse_verdict


def cell(output: str = "", **fields: Any) -> EvalCell:
    return EvalCell(run_id="exprun_1", experiment_id="exp_1", output=output, **fields)


def run(type_name: str, c: EvalCell, **params: Any) -> Outcome:
    config = check_config({"name": "e", "type": type_name, "params": params})
    return evaluate_builtin(type_name, c, config.params)


def bad(type_name: str, **params: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check_config({"name": "e", "type": type_name, "params": params})
    assert caught.value.status_code == 400
    return caught.value


WEATHER = (ToolCall("get_weather", {"city": "Paris"}), ToolCall("book", {"seat": 3}))

# type, params, a passing cell, a failing cell
CASES: list[tuple[str, dict[str, Any], EvalCell, EvalCell]] = [
    ("exact_match", {}, cell(" Paris\n", expected="Paris"), cell("paris", expected="Paris")),
    (
        "exact_match",
        {"case_sensitive": False, "trim": False},
        cell("PARIS", expected="paris"),
        cell(" paris", expected="paris"),
    ),
    ("exact_match", {"value": "42"}, cell("42"), cell("43", expected="43")),
    ("contains", {"strings": ["paris", "lyon"]}, cell("I love PARIS"), cell("Berlin")),
    (
        "contains",
        {"strings": ["paris", "lyon"], "mode": "all"},
        cell("Paris and Lyon"),
        cell("Paris only"),
    ),
    ("contains", {"strings": ["Paris"], "case_sensitive": True}, cell("Paris"), cell("paris")),
    ("not_contains", {"strings": ["sorry", "cannot"]}, cell("Sure: 4"), cell("Sorry, no.")),
    (
        "not_contains",
        {"strings": ["a1", "b2"], "mode": "all"},
        cell("a1 only"),
        cell("a1 and b2"),
    ),
    ("regex", {"pattern": r"\b\d{4}\b"}, cell("in 1789."), cell("in the 18th century")),
    ("regex", {"pattern": r"yes|no", "match": "full"}, cell("yes"), cell("yes sir")),
    ("regex", {"pattern": "^ok$", "ignore_case": True}, cell("OK"), cell("okay")),
    ("valid_json", {}, cell('```json\n{"a": 1}\n```'), cell("{'a': 1}")),
    ("valid_json", {"strip_code_fence": False}, cell("[1, 2]"), cell("```json\n[1]\n```")),
    (
        "json_schema",
        {
            "schema": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string"}},
            }
        },
        cell('{"city": "Paris"}'),
        cell('{"city": 3}'),
    ),
    ("json_schema", {"schema": {"type": "array"}}, cell("[]"), cell("not json")),
    ("numeric", {}, cell("The answer is 42.", expected=42), cell("41", expected=42)),
    ("numeric", {"tolerance": 0.5}, cell("3.4", expected="3.0"), cell("3.6", expected="3.0")),
    (
        "numeric",
        {"tolerance": 0.1, "mode": "relative"},
        cell("1,050", expected=1000),
        cell("1200", expected=1000),
    ),
    ("numeric", {"value": 7}, cell("seven is 7"), cell("no number here")),
    (
        "similarity",
        {"threshold": 0.8},
        cell("The capital is Paris.", expected="the capital is paris"),
        cell("Berlin is nice", expected="the capital is paris"),
    ),
    (
        "similarity",
        {"threshold": 0.9, "scorer": "token_sort_ratio"},
        cell("Paris capital", expected="capital Paris"),
        cell("Paris", expected="capital Paris of France"),
    ),
    ("latency", {"max_ms": 500}, cell(latency_ms=120.0), cell(latency_ms=900.5)),
    ("cost", {"max_usd": 0.01}, cell(cost_usd=0.002), cell(cost_usd=0.05)),
    (
        "tokens",
        {"max_tokens": 100},
        cell(output_tokens=99),
        cell(output_tokens=101),
    ),
    (
        "tokens",
        {"max_tokens": 100, "which": "total"},
        cell(input_tokens=50, output_tokens=50),
        cell(input_tokens=60, output_tokens=50),
    ),
    ("tool_called", {"tool": "book"}, cell(tool_calls=WEATHER), cell(tool_calls=WEATHER[:1])),
    (
        "tool_arguments",
        {
            "tool": "get_weather",
            "schema": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string"}},
            },
        },
        cell(tool_calls=WEATHER),
        cell(tool_calls=(ToolCall("get_weather", {"town": "Paris"}),)),
    ),
    (
        "tool_arguments",
        {"tool": "get_weather", "schema": {"type": "object"}},
        cell(tool_calls=WEATHER),
        cell(tool_calls=(ToolCall("get_weather", "{not json", "{not json"),)),
    ),
    (
        "tool_sequence",
        {},
        cell(
            tool_calls=WEATHER,
            expected={"tool_calls": [{"function": {"name": "get_weather"}}, {"name": "book"}]},
        ),
        cell(tool_calls=WEATHER[::-1], expected=["get_weather", "book"]),
    ),
    (
        "tool_sequence",
        {"mode": "in_order"},
        cell(tool_calls=(*WEATHER, ToolCall("pay")), expected=["get_weather", "pay"]),
        cell(tool_calls=(ToolCall("pay"), *WEATHER), expected=["get_weather", "pay"]),
    ),
]


@pytest.mark.parametrize(
    ("type_name", "params", "passing", "failing"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_evaluator_passes_the_good_cell_and_fails_the_bad_one(
    type_name: str, params: dict[str, Any], passing: EvalCell, failing: EvalCell
) -> None:
    good = run(type_name, passing, **params)
    assert good.value is True, good.note
    worse = run(type_name, failing, **params)
    assert worse.value is False, worse.note
    assert good.note and worse.note and good.note != worse.note


def test_every_builtin_type_but_the_judge_has_a_case_here() -> None:
    covered = {c[0] for c in CASES}
    assert covered == set(TYPES) - {"llm_judge"}


def test_similarity_without_a_threshold_is_a_score_from_zero_to_one() -> None:
    same = run("similarity", cell("Paris", expected="paris"))
    assert same.value == 1.0
    partial = run("similarity", cell("Parisian", expected="Paris"))
    assert isinstance(partial.value, float) and 0.5 < partial.value < 1.0
    other = run("similarity", cell("xyz", expected="Paris"))
    assert other.value == 0.0
    from rapidfuzz import fuzz

    assert partial.value == pytest.approx(fuzz.ratio("parisian", "paris") / 100, abs=1e-6)
    kind = TYPES["similarity"]
    assert kind.metric({}).kind == "numeric" and kind.metric({}).max_value == 1.0
    assert kind.metric({"threshold": 0.5}).kind == "boolean"


@pytest.mark.parametrize(
    ("type_name", "c"),
    [
        ("exact_match", cell("x")),
        ("similarity", cell("x")),
        ("numeric", cell("3", expected="no number")),
        ("tool_sequence", cell(tool_calls=WEATHER, expected="just text")),
        ("latency", cell(latency_ms=None)),
        ("cost", cell(cost_usd=None)),
        ("tokens", cell(output_tokens=None)),
    ],
)
def test_a_cell_without_what_it_needs_is_an_evaluator_error_not_a_fail(
    type_name: str, c: EvalCell
) -> None:
    params = {
        "latency": {"max_ms": 1},
        "cost": {"max_usd": 1},
        "tokens": {"max_tokens": 1},
    }.get(type_name, {})
    with pytest.raises(CannotJudge) as caught:
        run(type_name, c, **params)
    assert caught.value.as_error()["type"] in ("no_expected_output", "no_measure")


@pytest.mark.parametrize(
    ("type_name", "params", "param"),
    [
        ("regex", {"pattern": "(unclosed"}, "params.pattern"),
        ("regex", {}, "params.pattern"),
        ("json_schema", {"schema": {"type": "no-such-type"}}, "params.schema"),
        ("json_schema", {"schema": "an object please"}, "params.schema"),
        ("tool_arguments", {"tool": "x", "schema": {"minimum": "ten"}}, "params.schema"),
        ("contains", {"strings": []}, "params.strings"),
        ("contains", {"strings": ["a"], "mode": "some"}, "params.mode"),
        ("numeric", {"tolerance": -1}, "params.tolerance"),
        ("similarity", {"threshold": 1.5}, "params.threshold"),
        ("latency", {"max_ms": "fast"}, "params.max_ms"),
        ("exact_match", {"trim": "yes"}, "params.trim"),
        ("exact_match", {"nonsense": 1}, "params.nonsense"),
        ("llm_judge", {}, "params.model"),
        ("llm_judge", {"model": "m", "rubric": "Grade {{answer}}"}, "params.rubric"),
        ("llm_judge", {"model": "m", "template": "kindness"}, "params.template"),
    ],
)
def test_bad_params_are_a_400_naming_the_param(
    type_name: str, params: dict[str, Any], param: str
) -> None:
    error = bad(type_name, **params)
    assert error.param == param, error.message


def test_unknown_type_and_bad_fields_are_400s() -> None:
    for body, param in (
        ({"name": "x", "type": "vibes"}, "type"),
        ({"name": "", "type": "valid_json"}, "name"),
        ({"type": "valid_json", "metricKey": "has space"}, "metricKey"),
        ({"type": "valid_json", "enabled": "yes"}, "enabled"),
        ({"type": "valid_json", "colour": "red"}, "colour"),
        ({"type": "valid_json", "params": [1]}, "params"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            check_config(body)
        assert caught.value.param == param


def test_defaults_are_filled_and_the_metric_key_comes_from_the_name() -> None:
    config = check_config(
        {"name": "Mentions Paris!", "type": "contains", "params": {"strings": "Paris"}}
    )
    assert config.metric_key == "mentions_paris"
    assert config.params == {"strings": ["Paris"], "mode": "any", "case_sensitive": False}
    judge = check_config({"type": "llm_judge", "params": {"model": "gpt-4o", "template": "style"}})
    assert "{{output}}" in judge.params["rubric"] and "style" in judge.params["rubric"]


def test_the_types_listing_names_params_defaults_and_rubrics() -> None:
    listing = types_listing()
    by_type = {t["type"]: t for t in listing["data"]}
    assert set(by_type) == set(TYPES)
    mode = next(p for p in by_type["contains"]["params"] if p["name"] == "mode")
    assert mode["default"] == "any" and mode["choices"] == ["any", "all"]
    assert by_type["exact_match"]["metric"]["kind"] == "boolean"
    assert by_type["similarity"]["metric"] == {
        "kind": "numeric",
        "direction": "higher",
        "min_value": 0.0,
        "max_value": 1.0,
    }
    assert {r["name"] for r in listing["rubrics"]} == {"correctness", "faithfulness", "style"}
    assert all("{{output}}" in r["text"] for r in listing["rubrics"])


def test_tool_calls_are_read_from_chat_responses_and_anthropic_responses() -> None:
    chat = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "a", "arguments": '{"x": 1}'},
                        },
                        {
                            "id": "2",
                            "type": "function",
                            "function": {"name": "b", "arguments": "oops"},
                        },
                    ],
                }
            }
        ]
    }
    assert tool_calls_of(chat) == (
        ToolCall("a", {"x": 1}, '{"x": 1}'),
        ToolCall("b", "oops", "oops"),
    )
    legacy = {"choices": [{"message": {"function_call": {"name": "f", "arguments": "{}"}}}]}
    assert tool_calls_of(legacy) == (ToolCall("f", {}, "{}"),)
    responses = {
        "object": "response",
        "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "hi"}]},
            {"type": "function_call", "name": "lookup", "arguments": '{"q": "z"}', "call_id": "c"},
        ],
    }
    assert tool_calls_of(responses) == (ToolCall("lookup", {"q": "z"}, '{"q": "z"}'),)
    anthropic = {
        "type": "message",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "t", "name": "weather", "input": {"city": "Oslo"}},
        ],
    }
    assert tool_calls_of(anthropic) == (ToolCall("weather", {"city": "Oslo"}, '{"city":"Oslo"}'),)
    assert tool_calls_of({"choices": [{"message": {"content": "no tools"}}]}) == ()
    assert tool_calls_of(None) == () and tool_calls_of("text") == ()


@pytest.mark.parametrize(
    ("text", "score", "reason"),
    [
        ('{"score": 0.8, "reason": "Mostly right."}', 0.8, "Mostly right."),
        ('```json\n{"score": 1, "reason": "ok"}\n```', 1.0, "ok"),
        ('Verdict: {"Score": "75%", "Explanation": "partly"} done', 0.75, "partly"),
        ('{"score": 7, "reason": "out of ten"}', 0.7, "out of ten"),
        ('{"pass": true, "reason": "fine"}', 1.0, "fine"),
        ('{"score": "fail", "reason": "wrong"}', 0.0, "wrong"),
    ],
)
def test_a_verdict_is_parsed_from_what_judges_answer(text: str, score: float, reason: str) -> None:
    verdict = parse_verdict(text)
    assert verdict is not None
    assert verdict.score == pytest.approx(score) and verdict.reason == reason


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "I think it is good.",
        '{"reason": "no score"}',
        '{"score": -3}',
        '{"score": 500}',
        "[0.5]",
    ],
)
def test_an_answer_without_a_verdict_parses_to_none(text: str | None) -> None:
    assert parse_verdict(text) is None
