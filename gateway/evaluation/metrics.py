"""What a metric definition accepts: parsing one from an API body (`metric_from_body`,
`metric_changes`), checking a score's value against it (`check_value`), and the
defaults of a metric created on first use (`default_metric`).

Every refusal is an `InvalidRequest` (400) naming the bad field in ``param``; nothing
is stored by the caller after one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from gateway.errors import InvalidRequest
from gateway.store.evaluation import (
    DIRECTIONS,
    METRIC_KINDS,
    Direction,
    MetricKind,
    MetricRecord,
    new_metric_id,
)
from gateway.store.experiments import now_iso

# A metric's key is part of URLs and of CI assertions (``correctness>=0.8``): a word.
METRIC_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_CATEGORIES = 100
MAX_CATEGORY = 200

# The seed's camelCase names beside ours.
METRIC_ALIASES = {
    "minValue": "min_value",
    "maxValue": "max_value",
    "min": "min_value",
    "max": "max_value",
    "projectId": "project_id",
    "project": "project_id",
}
METRIC_FIELDS = frozenset(
    {
        "key",
        "name",
        "description",
        "kind",
        "direction",
        "min_value",
        "max_value",
        "categories",
        "scale",
        "project_id",
    }
)
EDITABLE_FIELDS = METRIC_FIELDS - {"key", "project_id"}


@dataclass(frozen=True, slots=True)
class CheckedValue:
    """A score's value as stored: the number, and for a categorical metric its label."""

    value: float
    label: str | None = None


def check_key(key: Any, param: str = "key") -> str:
    if not isinstance(key, str) or not METRIC_KEY.match(key):
        raise InvalidRequest(
            f"{param} must be 1 to 64 letters, digits, '_', '.' or '-' (starting with a"
            f" letter, digit or '_'), got {key!r}.",
            param=param,
        )
    return key


def _text(body: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRequest(f"{name} must be a string of at most {limit} characters.", param=name)
    return value


def _number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number or null.", param=name)
    return float(value)


def _categories(value: Any) -> list[str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_CATEGORIES
        or not all(isinstance(c, str) and 0 < len(c) <= MAX_CATEGORY for c in value)
    ):
        raise InvalidRequest(
            f"categories must be a list of 1 to {MAX_CATEGORIES} non-empty strings"
            f" (at most {MAX_CATEGORY} characters each), worst to best.",
            param="categories",
        )
    if len(set(value)) != len(value):
        raise InvalidRequest("categories must not repeat a category.", param="categories")
    return list(value)


def normalize(body: Any) -> dict[str, Any]:
    """A metric body with the seed's names mapped to ours; unknown fields refused."""
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", param="body")
    out: dict[str, Any] = {METRIC_ALIASES.get(str(k), str(k)): v for k, v in body.items()}
    unknown = sorted(set(out) - METRIC_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"Unknown field(s): {', '.join(unknown)}. A metric has"
            f" {', '.join(sorted(METRIC_FIELDS))}.",
            param=unknown[0],
        )
    return out


def _apply(metric: MetricRecord, body: Mapping[str, Any]) -> MetricRecord:
    """``metric`` with the fields given in ``body`` (already normalized) changed and the
    whole checked: kind, direction, range and categories agree."""
    if "name" in body:
        name = _text(body, "name", MAX_NAME)
        if not name:
            raise InvalidRequest("name must be a non-empty string.", param="name")
        metric.name = name
    if "description" in body:
        metric.description = _text(body, "description", MAX_DESCRIPTION)
    if "scale" in body:
        metric.scale = _text(body, "scale", MAX_NAME)
    if "kind" in body:
        kind = body["kind"]
        if kind not in METRIC_KINDS:
            raise InvalidRequest(
                f"kind must be one of {', '.join(METRIC_KINDS)}, got {kind!r}.", param="kind"
            )
        metric.kind = cast(MetricKind, kind)
    if "direction" in body:
        direction = body["direction"]
        if direction not in DIRECTIONS:
            raise InvalidRequest(
                f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}.",
                param="direction",
            )
        metric.direction = cast(Direction, direction)
    if "min_value" in body:
        metric.min_value = _number(body, "min_value")
    if "max_value" in body:
        metric.max_value = _number(body, "max_value")
    if "categories" in body:
        metric.categories = _categories(body["categories"])
    # The kind decides what else may be set: a range only on numbers, categories only
    # on a categorical metric (and it needs them).
    if metric.kind == "numeric":
        if metric.categories is not None and "categories" in body:
            raise InvalidRequest("categories are for a categorical metric.", param="categories")
        metric.categories = None
        if (
            metric.min_value is not None
            and metric.max_value is not None
            and metric.min_value > metric.max_value
        ):
            raise InvalidRequest("min_value must not be above max_value.", param="min_value")
    else:
        for name in ("min_value", "max_value"):
            if body.get(name) is not None:
                raise InvalidRequest(f"{name} is for a numeric metric.", param=name)
        metric.min_value = metric.max_value = None
        if metric.kind == "categorical" and not metric.categories:
            raise InvalidRequest(
                "A categorical metric needs its categories (worst to best).", param="categories"
            )
        if metric.kind == "boolean":
            if metric.categories is not None and "categories" in body:
                raise InvalidRequest("categories are for a categorical metric.", param="categories")
            metric.categories = None
    return metric


def metric_from_body(body: Any, project_id: str | None) -> MetricRecord:
    """A new metric definition from an API body (``key`` required, the rest defaults)."""
    fields = normalize(body)
    key = check_key(fields.get("key"))
    project = fields.get("project_id", project_id)
    if project is not None and not isinstance(project, str):
        raise InvalidRequest("project must be a string.", param="project")
    now = now_iso()
    metric = MetricRecord(
        id=new_metric_id(), key=key, name=key, created_at=now, updated_at=now, project_id=project
    )
    return _apply(metric, fields)


def metric_changes(metric: MetricRecord, body: Any) -> MetricRecord:
    """``metric`` changed by an API body; its key and project stay."""
    fields = normalize(body)
    for fixed in ("key", "project_id"):
        if fixed in fields and fields[fixed] != getattr(metric, fixed):
            raise InvalidRequest(f"A metric's {fixed} cannot change.", param=fixed)
    changed = MetricRecord(**metric.as_dict())
    changed.updated_at = now_iso()
    return _apply(changed, {k: v for k, v in fields.items() if k in EDITABLE_FIELDS})


def default_metric(project_id: str | None, key: str, value: Any) -> MetricRecord:
    """The metric a score under an undefined ``key`` creates (the seed's behaviour): its
    kind from the value — a boolean makes a boolean metric, a number an unbounded
    numeric one, higher better. A category (a string) cannot define its metric: its
    other categories and their order are unknown."""
    check_key(key, "metricKey")
    if isinstance(value, bool):
        kind: MetricKind = "boolean"
    elif isinstance(value, int | float):
        kind = "numeric"
    elif isinstance(value, str):
        raise InvalidRequest(
            f"Metric {key!r} is not defined; a categorical metric must be defined first"
            " (POST /metric-definitions with its categories).",
            param="metricKey",
            code="unknown_metric",
        )
    else:
        raise InvalidRequest("value must be a number, a boolean or a category.", param="value")
    now = now_iso()
    return MetricRecord(
        id=new_metric_id(),
        key=key,
        name=key,
        created_at=now,
        updated_at=now,
        project_id=project_id,
        kind=kind,
        scale="custom",  # the seed's default for a metric made on first use
    )


def check_value(metric: MetricRecord, value: Any) -> CheckedValue:
    """``value`` as stored under ``metric``, or a 400 saying why it does not fit."""
    if metric.kind == "boolean":
        if isinstance(value, bool):
            return CheckedValue(1.0 if value else 0.0)
        if not isinstance(value, bool) and value in (0, 1) and isinstance(value, int | float):
            return CheckedValue(float(value))
        raise InvalidRequest(
            f"Metric {metric.key!r} is boolean: value must be true or false (or 1 or 0),"
            f" got {value!r}.",
            param="value",
            code="wrong_kind",
        )
    if metric.kind == "categorical":
        categories = metric.categories or []
        if isinstance(value, str):
            if value not in categories:
                raise InvalidRequest(
                    f"{value!r} is not a category of metric {metric.key!r}"
                    f" ({', '.join(categories)}).",
                    param="value",
                    code="unknown_category",
                )
            return CheckedValue(float(categories.index(value)), value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(categories):
            return CheckedValue(float(value), categories[value])
        raise InvalidRequest(
            f"Metric {metric.key!r} is categorical: value must be one of"
            f" {', '.join(categories)} (or its index), got {value!r}.",
            param="value",
            code="wrong_kind",
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(
            f"Metric {metric.key!r} is numeric: value must be a number, got {value!r}.",
            param="value",
            code="wrong_kind",
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRequest("value must be a finite number.", param="value")
    low, high = metric.min_value, metric.max_value
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = (
            f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        )
        raise InvalidRequest(
            f"{number:g} is outside metric {metric.key!r}'s range {bounds}.",
            param="value",
            code="out_of_range",
        )
    return CheckedValue(number)
