"""Feedback and scores on runs and spans, and the metric definitions they name:
`ScoringService`.

Every score and feedback change goes through here, whoever makes it (a person in the
UI, an app through the API, an evaluator after a matrix cell: `record_scores`), so each
one is counted in Prometheus (``spanlab_feedback_total``, ``spanlab_scores_created_total``),
stored in the events table and sent to ``/events`` listeners
(``experiment.feedback.updated``, ``experiment.score.created``).

A score or feedback is on a `Target`: an experiment run (which names its span, so the
span shows it) or a captured span. A span that is a run's result is the run's target:
feedback given on it from the trace view is the run's feedback. None of this is on the
proxy's request path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.evaluation.metrics import check_key, check_value, default_metric
from gateway.experiments.runner import ATTR_RUN
from gateway.metrics import Metrics
from gateway.store.evaluation import (
    EvaluationStore,
    FeedbackRecord,
    MetricRecord,
    ScoreRecord,
    new_feedback_id,
    new_score_id,
)
from gateway.store.events import EventRecord, EventStore
from gateway.store.experiments import ExperimentStore, now_iso
from gateway.store.spans import SpanStore

logger = logging.getLogger(__name__)

FEEDBACK_EVENT = "experiment.feedback.updated"
SCORE_EVENT = "experiment.score.created"
Publish = Callable[[str, dict[str, Any]], None]
Flush = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Target:
    """What a score or feedback is on: a run (and its span), or a span alone."""

    run_id: str | None = None
    span_id: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    input_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackChange:
    """A feedback update: only the fields given change (the seed keeps the others)."""

    thumbs_up: bool | None = None
    note: str | None = None
    has_thumbs: bool = False
    has_note: bool = False

    @property
    def empty(self) -> bool:
        return not (self.has_thumbs or self.has_note)


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """A score as asked for, before its metric is known and its value checked."""

    metric_key: str
    value: Any = None
    note: str | None = None
    source: str = "api"
    error: dict[str, Any] | None = None
    created_by: str | None = None


@dataclass
class ScoringService:
    store: EvaluationStore
    experiments: ExperimentStore
    spans: SpanStore
    metrics: Metrics | None = None
    events: EventStore | None = None
    publish: Publish | None = None
    # Waits until the spans answered so far are stored (the writer's lag, see `span_target`).
    flush: Flush | None = None
    # Who acts and from where (an audit entry's actor, actor_name, address, method and
    # path), added to every event this writes: set by the API for the request.
    context: dict[str, Any] | None = None

    # Targets --------------------------------------------------------------------------

    async def run_target(self, run_id: str) -> Target:
        run = await self.experiments.get_experiment_run(run_id)
        if run is None:
            raise NotFound(f"No experiment run with id {run_id!r}.", param="run_id")
        experiment = await self.experiments.get_experiment(str(run["experiment_id"]))
        return Target(
            run_id=run_id,
            span_id=run.get("result_span_id"),
            experiment_id=str(run["experiment_id"]),
            variant_id=run.get("variant_id"),
            input_id=run.get("input_id"),
            project_id=(experiment or {}).get("project_id"),
        )

    async def span_target(self, span_id: str) -> Target:
        """The target of a span: its run's, if it is a run's result; else its own.

        An app sends feedback with the ``x-spanlab-span-id`` it was just answered with,
        and the span may still be in the writer's queue: an unknown id waits for the
        writer to store what it holds (at most ``flush_timeout_s``; past it, 503) and is
        looked up again before it is a 404."""
        span = await self.spans.get_span(span_id)
        if span is None and self.flush is not None:
            await self.flush()
            span = await self.spans.get_span(span_id)
        if span is None:
            raise NotFound(f"No span with id {span_id!r}.", param="span_id")
        run_id = (span.get("attributes") or {}).get(ATTR_RUN)
        if isinstance(run_id, str):
            run = await self.experiments.get_experiment_run(run_id)
            if run is not None and run.get("result_span_id") == span_id:
                return await self.run_target(run_id)
        return Target(span_id=span_id, project_id=span.get("project_id"))

    # Feedback -------------------------------------------------------------------------

    async def get_feedback(self, target: Target) -> FeedbackRecord | None:
        if target.run_id is not None:
            return await self.store.get_feedback(run_id=target.run_id)
        return await self.store.get_feedback(span_id=target.span_id)

    async def set_feedback(
        self, target: Target, change: FeedbackChange, user: str
    ) -> FeedbackRecord | None:
        """Change the feedback on ``target`` (fields not given keep their value); an
        empty change changes nothing and answers the current feedback."""
        current = await self.get_feedback(target)
        if change.empty:
            return current
        now = now_iso()
        record = FeedbackRecord(
            id=current.id if current else new_feedback_id(),
            created_at=current.created_at if current else now,
            updated_at=now,
            thumbs_up=current.thumbs_up if current and not change.has_thumbs else change.thumbs_up,
            note=current.note if current and not change.has_note else change.note,
            project_id=target.project_id,
            run_id=target.run_id,
            span_id=target.span_id,
            experiment_id=target.experiment_id,
            variant_id=target.variant_id,
            input_id=target.input_id,
            created_by=current.created_by if current else user,
            updated_by=user,
        )
        stored = await self.store.set_feedback(record)
        if self.metrics is not None:
            # Counted by what this change gave: a note edited under a thumbs up is no
            # second thumbs up.
            given = change.thumbs_up if change.has_thumbs else None
            self.metrics.observe_feedback(target.experiment_id, target.variant_id, given)
        previous = None if current is None else current.thumbs_up
        await self._announce(
            FEEDBACK_EVENT,
            target,
            # actor: who, as every audit entry names it (a key's id when keys are on)
            {"feedback": stored.as_dict(), "previous_thumbs_up": previous, "actor": user},
        )
        return stored

    # Scores ---------------------------------------------------------------------------

    async def add_score(self, target: Target, score: ScoreInput) -> ScoreRecord:
        """Check ``score`` against its metric (created with defaults on first use) and
        store it; a value that does not fit is a 400 and nothing is stored."""
        check_key(score.metric_key, "metricKey")
        metric = await self.store.get_metric(target.project_id, score.metric_key)
        if score.error is not None:
            if score.value is not None:
                raise InvalidRequest("A score has a value or an error, not both.", param="error")
            if not score.source.startswith("evaluator:"):
                raise InvalidRequest(
                    "Only an evaluator's score (source evaluator:<name>) records an error.",
                    param="error",
                )
            if metric is None:
                raise InvalidRequest(
                    f"Metric {score.metric_key!r} is not defined.",
                    param="metricKey",
                    code="unknown_metric",
                )
            checked_value, label = None, None
        else:
            if metric is None:
                # Checked before it is created: a refused value creates no metric.
                metric = default_metric(target.project_id, score.metric_key, score.value)
                check_value(metric, score.value)
                metric = await self.store.ensure_metric(metric)
            checked = check_value(metric, score.value)
            checked_value, label = checked.value, checked.label
        record = ScoreRecord(
            id=new_score_id(),
            metric_id=metric.id,
            metric_key=metric.key,
            source=score.source,
            created_at=now_iso(),
            value=checked_value,
            label=label,
            note=score.note,
            error=score.error,
            project_id=target.project_id,
            run_id=target.run_id,
            span_id=target.span_id,
            experiment_id=target.experiment_id,
            variant_id=target.variant_id,
            input_id=target.input_id,
            created_by=score.created_by,
        )
        await self.record_scores([record])
        return record

    async def record_scores(self, scores: Sequence[ScoreRecord]) -> None:
        """Store several scores at once (an evaluator's, after a matrix cell), each
        checked against its metric first: one that does not fit stores none of them.
        Each is then counted and announced like a score from the API."""
        metrics: dict[str, MetricRecord | None] = {}
        for score in scores:
            if score.value is None:
                continue
            key = f"{score.project_id or ''}\0{score.metric_key}"
            if key not in metrics:
                metrics[key] = await self.store.get_metric(score.project_id, score.metric_key)
            metric = metrics[key]
            if metric is not None:
                value: Any = score.value
                if metric.kind == "categorical":
                    # A category by its label, else by its index.
                    value = score.label if score.label is not None else int(score.value)
                checked = check_value(metric, value)
                score.value, score.label = checked.value, checked.label
        await self.store.add_scores(scores)
        for score in scores:
            if self.metrics is not None:
                self.metrics.observe_score(score.experiment_id, score.variant_id)
            target = Target(
                run_id=score.run_id,
                span_id=score.span_id,
                experiment_id=score.experiment_id,
                variant_id=score.variant_id,
                input_id=score.input_id,
                project_id=score.project_id,
            )
            actor = score.created_by or score.source  # an evaluator's own score: its source
            await self._announce(SCORE_EVENT, target, {"score": score.as_dict(), "actor": actor})

    async def delete_score(self, score_id: str) -> None:
        if not await self.store.delete_score(score_id):
            raise NotFound(f"No score with id {score_id!r}.", param="score_id")

    # Metric definitions ---------------------------------------------------------------

    async def metric(self, project_id: str | None, key: str) -> MetricRecord:
        metric = await self.store.get_metric(project_id, key)
        if metric is None:
            raise NotFound(f"No metric definition {key!r}.", param="key")
        return metric

    async def create_metric(self, metric: MetricRecord) -> MetricRecord:
        if not await self.store.create_metric(metric):
            raise Conflict(f"Metric {metric.key!r} is defined already.", param="key")
        return metric

    async def update_metric(
        self, current: MetricRecord, changed: MetricRecord, *, force: bool
    ) -> MetricRecord:
        """Store ``changed``. A change of kind, range or categories could leave stored
        scores that no longer fit: with scores under the metric it needs ``force``."""
        reshaped = (
            changed.kind != current.kind
            or changed.categories != current.categories
            or (changed.min_value is not None and changed.min_value != current.min_value)
            or (changed.max_value is not None and changed.max_value != current.max_value)
        )
        if reshaped and not force:
            count = await self.store.count_scores(current.id)
            if count:
                raise Conflict(
                    f"Metric {current.key!r} has {count} score(s) that may not fit the new"
                    " kind, range or categories; add ?force=true to change it anyway.",
                    param="force",
                    code="metric_has_scores",
                )
        await self.store.update_metric(changed)
        return changed

    async def delete_metric(self, metric: MetricRecord, *, force: bool) -> int:
        """Delete ``metric`` and its scores (their number is returned); with scores it
        needs ``force``."""
        count = await self.store.count_scores(metric.id)
        if count and not force:
            raise Conflict(
                f"Metric {metric.key!r} has {count} score(s); deleting it deletes them:"
                " add ?force=true to confirm.",
                param="force",
                code="metric_has_scores",
            )
        await self.store.delete_metric(metric.id)
        return count

    # Events ---------------------------------------------------------------------------

    async def _announce(self, name: str, target: Target, payload: dict[str, Any]) -> None:
        event = EventRecord(
            type=name,
            at=now_iso(),
            project_id=target.project_id,
            subject_id=target.experiment_id or target.span_id,
            related_ids=[i for i in (target.run_id, target.span_id) if i is not None],
            payload={**payload, **self.context} if self.context else payload,
        )
        if self.events is not None:
            try:
                await self.events.append(event)
            except Exception:  # the score is stored; an event log failure must not hide it
                logger.exception("could not store the %s event", name)
        if self.publish is not None:
            self.publish(name, event.as_dict())
