"""Helpers for the results tests: scores and feedback written on a run's cells through
the evaluation store, the way evaluators and people write them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.store.evaluation import (
    EvaluationStore,
    FeedbackRecord,
    MetricRecord,
    ScoreRecord,
    new_feedback_id,
    new_metric_id,
    new_score_id,
)
from gateway.store.experiments import now_iso

# A cell (as ``GET /experiments/{id}`` lists it) -> its score, or None for no score.
Scorer = Callable[[Mapping[str, Any]], float | None]


async def define(
    store: EvaluationStore, key: str, kind: str = "numeric", direction: str = "higher"
) -> MetricRecord:
    now = now_iso()
    return await store.ensure_metric(
        MetricRecord(
            id=new_metric_id(),
            key=key,
            name=key,
            created_at=now,
            updated_at=now,
            kind=kind,  # type: ignore[arg-type]
            direction=direction,  # type: ignore[arg-type]
        )
    )


async def score(
    store: EvaluationStore,
    cells: Sequence[Mapping[str, Any]],
    metric: MetricRecord,
    scorer: Scorer,
    *,
    source: str = "evaluator:test",
    judge_cost_usd: float | None = None,
    errors: Sequence[str] = (),
) -> int:
    """Score each cell with ``scorer``; cells whose id is in ``errors`` get an
    evaluator error instead. Returns how many scores were written."""
    records = []
    for cell in cells:
        failed = cell["id"] in errors
        value = None if failed else scorer(cell)
        if value is None and not failed:
            continue
        records.append(
            ScoreRecord(
                id=new_score_id(),
                metric_id=metric.id,
                metric_key=metric.key,
                source=source,
                created_at=now_iso(),
                value=value,
                error={"type": "judge_error", "message": "unparseable"} if failed else None,
                run_id=cell["id"],
                span_id=cell.get("result_span_id"),
                experiment_id=cell["experiment_id"],
                variant_id=cell["variant_id"],
                input_id=cell["input_id"],
                judge_cost_usd=judge_cost_usd,
            )
        )
    await store.add_scores(records)
    return len(records)


async def thumbs(store: EvaluationStore, cell: Mapping[str, Any], up: bool) -> None:
    now = now_iso()
    await store.set_feedback(
        FeedbackRecord(
            id=new_feedback_id(),
            created_at=now,
            updated_at=now,
            thumbs_up=up,
            run_id=cell["id"],
            experiment_id=cell["experiment_id"],
            variant_id=cell["variant_id"],
            input_id=cell["input_id"],
        )
    )
