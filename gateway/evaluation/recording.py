"""Writing evaluators' scores: `record_scores`, the ONE function through which every
evaluator score is stored (built-ins and the judge after each cell or on a re-run,
and the CLI's Python evaluators posting theirs).

A score names its metric by key; a metric used for the first time is created with
the evaluator's shape (boolean for pass/fail; numeric 0..1 for a similarity or a
judge's score; numeric unbounded for a Python evaluator's number), higher is better.
A value that does not fit an existing metric (a number under a boolean metric, out of
its range) is stored as an evaluator error saying so, never forced into it. An
evaluator's new score on a run replaces its earlier one under that metric (the store
does it for ``evaluator:`` sources), which is what makes re-running idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.evaluation.evaluator_base import MetricShape
from gateway.store.evaluation import (
    EvaluationStore,
    MetricRecord,
    ScoreRecord,
    new_metric_id,
    new_score_id,
)
from gateway.store.experiments import now_iso

EVALUATOR_SOURCE = "evaluator:"
# What stores the scores made: the app routes them through
# `gateway.evaluation.scoring.ScoringService.record_scores` (events, Prometheus counts);
# without one, the store's `add_scores`.
ScoreWriter = Callable[[Sequence[ScoreRecord]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """One evaluator's verdict on one cell, before it is a stored score: a value (a
    boolean or a number) and a note, or an error (``{type, message}``)."""

    metric_key: str
    shape: MetricShape
    source: str  # evaluator:<name> or evaluator:<module:function>
    run_id: str
    experiment_id: str
    value: bool | float | None = None
    note: str | None = None
    error: dict[str, Any] | None = None
    project_id: str | None = None
    span_id: str | None = None
    variant_id: str | None = None
    input_id: str | None = None
    evaluator_id: str | None = None
    judge_span_id: str | None = None
    judge_cost_usd: float | None = None
    created_by: str | None = None


def _fit(metric: MetricRecord, value: bool | float) -> tuple[float | None, str | None]:
    """The stored value of ``value`` under ``metric``, or why it does not fit."""
    if metric.kind == "boolean":
        if isinstance(value, bool) or value in (0, 1):
            return float(value), None
        return None, f"{value!r} is not pass/fail, and metric {metric.key!r} is boolean."
    if metric.kind == "categorical":
        return None, f"Metric {metric.key!r} is categorical; an evaluator gives no category."
    number = float(value)
    if not math.isfinite(number):
        return None, f"{value!r} is not a finite number."
    low, high = metric.min_value, metric.max_value
    if (low is not None and number < low) or (high is not None and number > high):
        shown = f"{'' if low is None else f'{low:g}'}..{'' if high is None else f'{high:g}'}"
        return None, f"{number:g} is outside metric {metric.key!r}'s range {shown}."
    return number, None


async def record_scores(
    store: EvaluationStore, scores: Sequence[ScoreInput], write: ScoreWriter | None = None
) -> list[ScoreRecord]:
    """Store ``scores`` (one transaction, through ``write`` when given), creating each
    new metric on first use."""
    metrics: dict[tuple[str | None, str], MetricRecord] = {}
    records: list[ScoreRecord] = []
    for score in scores:
        key = (score.project_id, score.metric_key)
        metric = metrics.get(key)
        if metric is None:  # a read first: creating one is a write transaction of its own
            metric = await store.get_metric(score.project_id, score.metric_key)
        if metric is None:
            now = now_iso()
            metric = await store.ensure_metric(
                MetricRecord(
                    id=new_metric_id(),
                    key=score.metric_key,
                    name=score.metric_key,
                    created_at=now,
                    updated_at=now,
                    project_id=score.project_id,
                    kind=score.shape.kind,
                    direction=score.shape.direction,
                    min_value=score.shape.min_value,
                    max_value=score.shape.max_value,
                )
            )
            metrics[key] = metric
        value: float | None = None
        error = score.error
        if error is None and score.value is not None:
            value, problem = _fit(metric, score.value)
            if problem is not None:
                error = {"type": "metric_mismatch", "message": problem}
        elif error is None:
            error = {"type": "no_value", "message": "The evaluator gave no value."}
        records.append(
            ScoreRecord(
                id=new_score_id(),
                metric_id=metric.id,
                metric_key=metric.key,
                source=score.source,
                created_at=now_iso(),
                value=None if error is not None else value,
                note=score.note,
                error=error,
                project_id=score.project_id,
                run_id=score.run_id,
                span_id=score.span_id,
                experiment_id=score.experiment_id,
                variant_id=score.variant_id,
                input_id=score.input_id,
                evaluator_id=score.evaluator_id,
                judge_span_id=score.judge_span_id,
                judge_cost_usd=score.judge_cost_usd,
                created_by=score.created_by,
            )
        )
    await (store.add_scores if write is None else write)(records)
    return records
