"""The parts every evaluator type is made of: its parameters (`Param`, checked and
given their defaults by `check_params`), the metric it scores under (`MetricShape`),
what it gives (`Outcome`: a value and a note saying why) and how it says it could not
judge (`CannotJudge`: stored as the score's ``error``, never as a low score).

A type's parameters are checked when the evaluator is configured (a bad one is a 400
naming ``params.<name>``), so running it later only meets cells, never bad settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.errors import InvalidRequest
from gateway.evaluation.cell import EvalCell
from gateway.store.evaluation import Direction, MetricKind

ParamKind = Literal["string", "text", "strings", "boolean", "number", "choice", "object"]


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an evaluator type, as ``GET /evaluators/types`` lists it."""

    name: str
    kind: ParamKind
    description: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "default": self.default,
            "required": self.required,
        }
        if self.choices:
            out["choices"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True, slots=True)
class MetricShape:
    """The metric an evaluator's scores go under, created so on its first score."""

    kind: MetricKind
    direction: Direction = "higher"
    min_value: float | None = None
    max_value: float | None = None


BOOLEAN = MetricShape("boolean")
UNIT = MetricShape("numeric", "higher", 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """An evaluator's verdict on a cell: pass/fail (``bool``) or a number, and why."""

    value: bool | float
    note: str
    judge_span_id: str | None = None
    judge_cost_usd: float | None = None

    @property
    def number(self) -> float:
        return float(self.value)


class CannotJudge(Exception):
    """The evaluator could not judge this cell (no expected output to compare with, a
    judge that failed or answered unparseably): an evaluator error, not a score."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        judge_span_id: str | None = None,
        judge_cost_usd: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.judge_span_id = judge_span_id
        self.judge_cost_usd = judge_cost_usd

    def as_error(self) -> dict[str, Any]:
        return {"type": self.kind, "message": self.message}


Score = Callable[[EvalCell, Mapping[str, Any]], Outcome]


@dataclass(frozen=True)
class EvaluatorType:
    """A built-in evaluator: its parameters, extra checks on them (a regex compiles, a
    schema is a schema), the metric it scores under, and the scoring itself (None for
    the LLM judge, which calls a model and is run apart)."""

    name: str
    label: str
    description: str
    params: tuple[Param, ...]
    metric: Callable[[Mapping[str, Any]], MetricShape]
    score: Score | None
    check: Callable[[dict[str, Any]], None] = field(default=lambda params: None)

    def as_dict(self, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        shape = self.metric({p.name: p.default for p in self.params} | dict(defaults or {}))
        return {
            "type": self.name,
            "label": self.label,
            "description": self.description,
            "params": [p.as_dict() for p in self.params],
            "metric": {
                "kind": shape.kind,
                "direction": shape.direction,
                "min_value": shape.min_value,
                "max_value": shape.max_value,
            },
        }


def bad_param(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=f"params.{name}", code="invalid_evaluator_params")


def _checked(param: Param, value: Any) -> Any:
    name = param.name
    if param.kind in ("string", "text"):
        if not isinstance(value, str) or (param.required and not value.strip()):
            raise bad_param(name, f"params.{name} must be a non-empty string.")
        return value
    if param.kind == "choice":
        if value not in param.choices:
            raise bad_param(name, f"params.{name} must be one of {', '.join(param.choices)}.")
        return value
    if param.kind == "boolean":
        if not isinstance(value, bool):
            raise bad_param(name, f"params.{name} must be true or false.")
        return value
    if param.kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise bad_param(name, f"params.{name} must be a number.")
        if param.minimum is not None and value < param.minimum:
            raise bad_param(name, f"params.{name} must be at least {param.minimum:g}.")
        if param.maximum is not None and value > param.maximum:
            raise bad_param(name, f"params.{name} must be at most {param.maximum:g}.")
        return value
    if param.kind == "strings":
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            raise bad_param(name, f"params.{name} must be a non-empty list of non-empty strings.")
        return value
    # object
    if not isinstance(value, dict):
        raise bad_param(name, f"params.{name} must be a JSON object.")
    return value


def check_params(kind: EvaluatorType, params: Any) -> dict[str, Any]:
    """``params`` checked against ``kind``'s parameters, with defaults filled in."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be a JSON object.", param="params")
    known = {p.name: p for p in kind.params}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise bad_param(
            unknown[0],
            f"Evaluator type {kind.name!r} takes no parameter {unknown[0]!r}."
            f" It takes: {', '.join(known) or 'none'}.",
        )
    out: dict[str, Any] = {}
    for param in kind.params:
        value = params.get(param.name)
        if value is None:
            if param.required:
                message = f"params.{param.name} is required ({param.description})"
                raise bad_param(param.name, message)
            if param.default is not None:
                out[param.name] = param.default
            continue
        out[param.name] = _checked(param, value)
    kind.check(out)
    return out
