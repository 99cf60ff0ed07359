"""An experiment's results: one matrix run's cells, scores and feedback read into typed
records, then the statistics (`gateway.evaluation.statistics`) and the verdicts
(`gateway.evaluation.verdict`).

What counts where:
- Quality figures come from *completed* cells only. A failed cell is a run error,
  counted apart per variant; a cell that never finished (pending, running, cancelled,
  interrupted) is counted as not run. A score that records an evaluator error is an
  evaluator error, counted per metric, never a low score.
- Several scores of one cell under one metric (a human's and an evaluator's) are
  averaged into the cell's value.
- A metric's kind and direction come from its definition; a metric without one is
  treated by its values (all 0 or 1: pass/fail; else a number; higher is better). A
  categorical metric is compared on its categories' indexes (listed worst to best).
- A judge's cost (``judge_cost_usd`` on its scores) is reported apart from the
  variant's own cost.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.errors import InvalidRequest, NotFound
from gateway.evaluation.statistics import (
    Analysis,
    Comparison,
    Estimate,
    Kind,
    MetricSpec,
    Observation,
    Stability,
    analyze,
    percentile,
)
from gateway.evaluation.verdict import (
    comparison_sentence,
    corrections_sentence,
    cost_quality_sentence,
)
from gateway.store.evaluation import EvaluationStore, FeedbackRecord, MetricRecord, ScoreRecord
from gateway.store.matrix import SqlMatrixStore

logger = logging.getLogger(__name__)

NOT_RUN = ("pending", "running", "cancelled", "interrupted")


@dataclass(frozen=True, slots=True)
class Cell:
    """A matrix cell as the results read it."""

    id: str
    variant: str
    input: str
    repetition: int
    status: str
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Cell:
        return cls(
            id=str(row["id"]),
            variant=str(row.get("variant_id") or ""),
            input=str(row.get("input_id") or ""),
            repetition=int(row.get("repetition") or 0),
            status=str(row.get("status") or ""),
            latency_ms=row.get("duration_ms"),
            ttft_ms=row.get("ttft_ms"),
            input_tokens=row.get("input_tokens"),
            output_tokens=row.get("output_tokens"),
            cost_usd=row.get("cost_usd"),
        )


@dataclass(slots=True)
class VariantSummary:
    """A variant's operational figures in the run (quality is per metric)."""

    id: str
    name: str
    cells: int
    completed: int
    errors: int  # failed cells: out of the quality figures
    not_run: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    input_tokens: int
    output_tokens: int
    tokens_per_cell: float | None
    cost_total_usd: float | None
    cost_per_cell_usd: float | None
    unpriced_cells: int
    judge_cost_usd: float | None
    thumbs_up: int
    thumbs_down: int
    thumbs_up_rate: float | None
    evaluator_errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricInfo:
    key: str
    name: str
    kind: str  # the definition's kind (categorical is compared as numbers)
    direction: str
    defined: bool


@dataclass(slots=True)
class Results:
    """Everything ``GET /experiments/{id}/results`` answers."""

    experiment_id: str
    run: dict[str, Any] | None
    baseline: str | None
    primary_metric: str | None
    variants: list[VariantSummary]
    metrics: list[MetricInfo]
    analysis: Analysis | None
    message: str | None = None
    input_keys: dict[str, str] = field(default_factory=dict)  # input id -> its key

    def name_of(self, variant_id: str) -> str:
        return next((v.name for v in self.variants if v.id == variant_id), variant_id)

    def as_dict(self) -> dict[str, Any]:
        names = {v.id: v.name for v in self.variants}
        analysis = self.analysis
        costs = {v.id: v.cost_per_cell_usd for v in self.variants}
        return {
            "experiment_id": self.experiment_id,
            "run": self.run,
            "baseline": self.baseline,
            "primary_metric": self.primary_metric,
            "message": self.message,
            "metrics": [asdict(m) for m in self.metrics],
            "variants": [
                {
                    **asdict(v),
                    "metrics": {
                        e.metric: _estimate_dict(e)
                        for e in (analysis.estimates if analysis else [])
                        if e.variant == v.id
                    },
                    "stability": {
                        s.metric: _stability_dict(s)
                        for s in (analysis.stability if analysis else [])
                        if s.variant == v.id
                    },
                }
                for v in self.variants
            ],
            "comparisons": [
                _comparison_dict(c, names, self.input_keys)
                for c in (analysis.comparisons if analysis else [])
            ],
            "corrections": corrections_sentence(analysis.comparisons) if analysis else None,
            "cost_quality": None
            if analysis is None
            else {
                "metric": analysis.cost_quality.metric,
                "best": analysis.cost_quality.best,
                "cheapest_not_worse": analysis.cost_quality.cheapest_not_worse,
                "not_worse": analysis.cost_quality.not_worse,
                "verdict": cost_quality_sentence(analysis.cost_quality, names, costs),
            },
        }


def _estimate_dict(e: Estimate) -> dict[str, Any]:
    return {
        "kind": e.kind,
        "value": e.value,
        "ci_low": e.low,
        "ci_high": e.high,
        "n_inputs": e.n_inputs,
        "n_values": e.n_values,
        "evaluator_errors": e.errors,
        "method": e.method,
    }


def _stability_dict(s: Stability) -> dict[str, Any]:
    return {
        "repeated_inputs": s.repeated_inputs,
        "repetitions": s.repetitions,
        "agree": s.agree,
        "pass_all": s.pass_all,
    }


def _comparison_dict(
    c: Comparison, names: Mapping[str, str], input_keys: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "metric": c.metric,
        "kind": c.kind,
        "direction": c.direction,
        "baseline": c.baseline,
        "variant": c.variant,
        "n_inputs": c.n_inputs,
        "baseline_value": c.baseline_value,
        "variant_value": c.variant_value,
        "difference": c.difference,
        "ci_low": c.low,
        "ci_high": c.high,
        "test": c.test,
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "comparisons": c.comparisons,
        "significant": c.significant,
        "outcome": c.outcome,
        "mde": c.mde,
        "flips": [{**asdict(f), "input_key": input_keys.get(f.input)} for f in c.flips],
        "verdict": comparison_sentence(c, names),
    }


# --- reading -------------------------------------------------------------------------


def _spec(key: str, definition: MetricRecord | None, values: Sequence[float]) -> MetricSpec:
    if definition is not None:
        kind: Kind = "boolean" if definition.kind == "boolean" else "numeric"
        return MetricSpec(key, kind, definition.direction, definition.name)
    binary = bool(values) and all(v in (0.0, 1.0) for v in values)
    return MetricSpec(key, "boolean" if binary else "numeric", "higher", key)


def _variant_order(run: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """The run's variants in the experiment's order (deleted ones after, as run)."""
    in_run = list(run.get("variant_ids") or [])
    ordered = [str(v["id"]) for v in variants if v["id"] in in_run]
    return ordered + [v for v in in_run if v not in ordered]


def _resolve_variant(value: str, ids: Sequence[str], names: Mapping[str, str]) -> str:
    if value in ids:
        return value
    matches = [i for i in ids if names.get(i) == value]
    if not matches:
        raise InvalidRequest(
            f"baseline {value!r} is no variant of this run (give a variant id or name:"
            f" {', '.join(names.get(i, i) for i in ids)}).",
            param="baseline",
            code="unknown_baseline",
        )
    return matches[0]


async def load_results(
    matrix: SqlMatrixStore,
    evaluation: EvaluationStore,
    experiment: Mapping[str, Any],
    *,
    run_id: str | None = None,
    baseline: str | None = None,
    metric: str | None = None,
) -> Results:
    """The results of the experiment's matrix run ``run_id`` (default: the latest).
    An unknown run is a 404 naming ``run``; an unknown baseline or metric a 400 naming
    its parameter. An experiment with no run answers an empty result with a message."""
    experiment_id = str(experiment["id"])
    runs = await matrix.list_runs(experiment_id)
    run = next((r for r in runs if run_id in (None, r["id"])), None)
    if run is None:
        if run_id is not None:
            raise NotFound(
                f"Experiment {experiment_id!r} has no matrix run {run_id!r}.",
                param="run",
                code="unknown_run",
            )
        if baseline is not None:
            raise InvalidRequest(
                f"baseline {baseline!r}: the experiment has no run yet.", param="baseline"
            )
        return Results(
            experiment_id,
            None,
            None,
            None,
            [],
            [],
            None,
            message="No results yet: the experiment has no matrix run.",
        )
    rows = await matrix.cells(str(run["id"]))
    cells = [Cell.from_row(r) for r in rows]
    snapshots = {str(r.get("variant_id")): (r.get("config") or {}) for r in rows}
    variants = await matrix.list_variants(experiment_id)
    names = {str(v["id"]): str(v["name"]) for v in variants}
    order = _variant_order(run, variants)
    for vid in order:
        names.setdefault(vid, str(snapshots.get(vid, {}).get("variant_name") or vid))
    base = _resolve_variant(baseline, order, names) if baseline is not None else None
    by_cell = {c.id: c for c in cells}

    scores = [
        s for s in await evaluation.list_scores(experiment_id=experiment_id) if s.run_id in by_cell
    ]
    feedback = [
        f
        for f in await evaluation.list_feedback(experiment_id=experiment_id)
        if f.run_id in by_cell
    ]
    definitions = {m.key: m for m in await evaluation.list_metrics(experiment.get("project_id"))}
    by_metric, specs, evaluator_errors = _observations(scores, by_cell, definitions)
    if metric is not None and metric not in {s.key for s in specs}:
        raise InvalidRequest(
            f"metric {metric!r} has no scores in this run"
            f"{' (scored: ' + ', '.join(s.key for s in specs) + ')' if specs else ''}.",
            param="metric",
            code="unknown_metric",
        )
    summaries = [
        _summary(vid, names[vid], cells, scores, feedback, evaluator_errors.get(vid, {}), by_cell)
        for vid in order
    ]
    # In a worker thread: the first call imports scipy (seconds on a busy machine) and a
    # large run takes a while to analyse; the event loop keeps serving the proxy.
    analysis = await asyncio.to_thread(
        functools.partial(
            analyze,
            by_metric,
            specs,
            order,
            baseline=base,
            primary=metric,
            cost_per_cell={s.id: s.cost_per_cell_usd for s in summaries},
        )
    )
    position = {str(i): n for n, i in enumerate(run.get("input_ids") or [])}
    for comparison in analysis.comparisons:  # flips in the inputs' order, as the grid has them
        comparison.flips.sort(key=lambda f: (position.get(f.input, len(position)), f.input))
    infos = [
        MetricInfo(
            s.key,
            s.label,
            definitions[s.key].kind if s.key in definitions else s.kind,
            s.direction,
            s.key in definitions,
        )
        for s in specs
    ]
    message = None
    if not cells:
        message = "The run has no cells."
    elif not specs:
        message = "No scores yet: add evaluators or score the cells to compare quality."
    return Results(
        experiment_id,
        run,
        analysis.baseline,
        analysis.cost_quality.metric,
        summaries,
        infos,
        analysis,
        message,
        _input_keys(rows),
    )


def _input_keys(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Input id -> its key, as the cells' snapshots recorded it (an input deleted
    since the run keeps its key)."""
    keys: dict[str, str] = {}
    for row in rows:
        key = (row.get("config") or {}).get("input_key")
        if key is not None and row.get("input_id"):
            keys[str(row["input_id"])] = str(key)
    return keys


def _observations(
    scores: Sequence[ScoreRecord],
    cells: Mapping[str, Cell],
    definitions: Mapping[str, MetricRecord],
) -> tuple[dict[str, list[Observation]], list[MetricSpec], dict[str, dict[str, int]]]:
    """Per metric, one observation per completed cell it scored (its scores averaged;
    None when every score of it is an evaluator error); evaluator errors counted per
    variant and metric."""
    values: dict[tuple[str, str], list[float]] = {}
    errored: set[tuple[str, str]] = set()
    for score in scores:
        cell = cells[score.run_id or ""]
        if cell.status != "completed":
            continue  # a failed cell's scores say nothing about quality
        key = (score.metric_key, cell.id)
        if score.error is not None or score.value is None:
            errored.add(key)
        else:
            values.setdefault(key, []).append(float(score.value))
    by_metric: dict[str, list[Observation]] = {}
    errors: dict[str, dict[str, int]] = {}
    for metric_key, cell_id in sorted(values.keys() | errored):
        cell = cells[cell_id]
        own = values.get((metric_key, cell_id))
        if own is None:
            per_variant = errors.setdefault(cell.variant, {})
            per_variant[metric_key] = per_variant.get(metric_key, 0) + 1
        value = sum(own) / len(own) if own else None
        by_metric.setdefault(metric_key, []).append(
            Observation(cell.variant, cell.input, value, cell.repetition)
        )
    specs = [
        _spec(
            key,
            definitions.get(key),
            [o.value for o in by_metric[key] if o.value is not None],
        )
        for key in sorted(by_metric)
    ]
    return by_metric, specs, errors


def _summary(
    variant_id: str,
    name: str,
    cells: Sequence[Cell],
    scores: Sequence[ScoreRecord],
    feedback: Sequence[FeedbackRecord],
    evaluator_errors: dict[str, int],
    by_cell: Mapping[str, Cell],
) -> VariantSummary:
    own = [c for c in cells if c.variant == variant_id]
    done = [c for c in own if c.status == "completed"]
    failed = [c for c in own if c.status == "failed"]
    ran = done + failed
    priced = [c.cost_usd for c in ran if c.cost_usd is not None]
    latencies = [float(c.latency_ms) for c in done if c.latency_ms is not None]
    ttfts = [float(c.ttft_ms) for c in done if c.ttft_ms is not None]
    input_tokens = sum(c.input_tokens or 0 for c in done)
    output_tokens = sum(c.output_tokens or 0 for c in done)
    judge = [
        s.judge_cost_usd
        for s in scores
        if s.judge_cost_usd is not None and by_cell[s.run_id or ""].variant == variant_id
    ]
    thumbs = [
        f.thumbs_up
        for f in feedback
        if f.thumbs_up is not None and by_cell[f.run_id or ""].variant == variant_id
    ]
    up = sum(1 for t in thumbs if t)
    return VariantSummary(
        id=variant_id,
        name=name,
        cells=len(own),
        completed=len(done),
        errors=len(failed),
        not_run=sum(1 for c in own if c.status in NOT_RUN),
        error_rate=len(failed) / len(ran) if ran else None,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        ttft_p50_ms=percentile(ttfts, 50),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_per_cell=(input_tokens + output_tokens) / len(done) if done else None,
        cost_total_usd=sum(priced) if priced else None,
        cost_per_cell_usd=sum(priced) / len(priced) if priced else None,
        unpriced_cells=len(ran) - len(priced),
        judge_cost_usd=sum(judge) if judge else None,
        thumbs_up=up,
        thumbs_down=len(thumbs) - up,
        thumbs_up_rate=up / len(thumbs) if thumbs else None,
        evaluator_errors=dict(evaluator_errors),
    )


# --- CSV -----------------------------------------------------------------------------

CSV_COLUMNS = (
    "variant_id",
    "variant",
    "baseline",
    "metric",
    "kind",
    "direction",
    "value",
    "ci_low",
    "ci_high",
    "n_inputs",
    "n_values",
    "evaluator_errors",
    "stability_agree",
    "pass_all",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "test",
    "p_value",
    "p_adjusted",
    "outcome",
    "verdict",
    "cells",
    "errors",
    "cost_total_usd",
    "cost_per_cell_usd",
    "judge_cost_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "input_tokens",
    "output_tokens",
    "thumbs_up_rate",
)


def csv_text(results: Results) -> str:
    """One row per variant x metric (a variant with no scored metric: one row with the
    metric columns empty); the columns are `CSV_COLUMNS`, documented in docs/api.md."""
    data = results.as_dict()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    comparisons = {(c["variant"], c["metric"]): c for c in data["comparisons"]}
    kinds = {m["key"]: m for m in data["metrics"]}
    for variant in data["variants"]:
        common = {
            "variant_id": variant["id"],
            "variant": variant["name"],
            "baseline": "yes" if variant["id"] == data["baseline"] else "no",
            "cells": variant["cells"],
            "errors": variant["errors"],
            "cost_total_usd": variant["cost_total_usd"],
            "cost_per_cell_usd": variant["cost_per_cell_usd"],
            "judge_cost_usd": variant["judge_cost_usd"],
            "latency_p50_ms": variant["latency_p50_ms"],
            "latency_p95_ms": variant["latency_p95_ms"],
            "ttft_p50_ms": variant["ttft_p50_ms"],
            "input_tokens": variant["input_tokens"],
            "output_tokens": variant["output_tokens"],
            "thumbs_up_rate": variant["thumbs_up_rate"],
        }
        if not variant["metrics"]:
            writer.writerow(common)
            continue
        for key, figure in variant["metrics"].items():
            comparison = comparisons.get((variant["id"], key), {})
            stable = variant["stability"].get(key, {})
            writer.writerow(
                {
                    **common,
                    "metric": key,
                    "kind": kinds[key]["kind"],
                    "direction": kinds[key]["direction"],
                    "value": figure["value"],
                    "ci_low": figure["ci_low"],
                    "ci_high": figure["ci_high"],
                    "n_inputs": figure["n_inputs"],
                    "n_values": figure["n_values"],
                    "evaluator_errors": figure["evaluator_errors"],
                    "stability_agree": stable.get("agree"),
                    "pass_all": stable.get("pass_all"),
                    "difference": comparison.get("difference"),
                    "difference_ci_low": comparison.get("ci_low"),
                    "difference_ci_high": comparison.get("ci_high"),
                    "test": comparison.get("test"),
                    "p_value": comparison.get("p_value"),
                    "p_adjusted": comparison.get("p_adjusted"),
                    "outcome": comparison.get("outcome"),
                    "verdict": comparison.get("verdict"),
                }
            )
    return out.getvalue()
