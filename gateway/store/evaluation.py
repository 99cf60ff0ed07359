"""The evaluation store's interface, whatever the database: `EvaluationStore` and its
typed records — metric definitions (`MetricRecord`), scores (`ScoreRecord`), feedback
(`FeedbackRecord`) and the evaluators an experiment runs (`EvaluatorRecord`).

What the tables hold and why is written in ``migrations/sqlite/0008_evaluation.sql``;
`gateway.store.sqlite_evaluation.SqlEvaluationStore` implements this on SQLite.
Checking a value against its metric, and everything else the evaluation *means*, lives
in `gateway.evaluation`; this module only stores and reads.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

MetricKind = Literal["numeric", "boolean", "categorical"]
Direction = Literal["higher", "lower"]
METRIC_KINDS: tuple[MetricKind, ...] = ("numeric", "boolean", "categorical")
DIRECTIONS: tuple[Direction, ...] = ("higher", "lower")


def new_metric_id() -> str:
    return "met_" + secrets.token_hex(12)


def new_score_id() -> str:
    return "scr_" + secrets.token_hex(12)


def new_feedback_id() -> str:
    return "fbk_" + secrets.token_hex(12)


def new_evaluator_id() -> str:
    return "evl_" + secrets.token_hex(12)


@dataclass(slots=True)
class MetricRecord:
    """A metric definition: what a score under ``key`` means and which way is better."""

    id: str
    key: str
    name: str
    created_at: str
    updated_at: str
    project_id: str | None = None
    description: str | None = None
    kind: MetricKind = "numeric"
    direction: Direction = "higher"
    min_value: float | None = None
    max_value: float | None = None
    categories: list[str] | None = None  # categorical: worst to best
    scale: str | None = None  # the seed's free-form description of the scale

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class ScoreRecord:
    """A score under a metric, on a run and/or a span. Exactly one of ``value`` (a
    categorical score also sets ``label``) and ``error`` (an evaluator that could not
    judge) is set."""

    id: str
    metric_id: str
    metric_key: str
    source: str  # human, api, evaluator:<name>
    created_at: str
    value: float | None = None
    label: str | None = None
    note: str | None = None
    error: dict[str, Any] | None = None  # {type, message}
    project_id: str | None = None
    run_id: str | None = None
    span_id: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    input_id: str | None = None
    evaluator_id: str | None = None
    judge_span_id: str | None = None
    judge_cost_usd: float | None = None
    created_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class FeedbackRecord:
    """The current thumbs up/down and note on a run (or on a span that is no run's)."""

    id: str
    created_at: str
    updated_at: str
    thumbs_up: bool | None = None  # None: a note only
    note: str | None = None
    project_id: str | None = None
    run_id: str | None = None
    span_id: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    input_id: str | None = None
    created_by: str | None = None
    updated_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class EvaluatorRecord:
    """An evaluator an experiment runs after each cell: a built-in ``type`` configured
    by ``params``, scoring under ``metric_key``."""

    id: str
    experiment_id: str
    name: str
    type: str
    metric_key: str
    created_at: str
    updated_at: str
    params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    position: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def column_names(record: type[Any]) -> tuple[str, ...]:
    """A record's fields, which are its table's columns, in order."""
    return tuple(f.name for f in fields(record))


class EvaluationStore(ABC):
    """What the gateway needs of stored metrics, scores, feedback and evaluators."""

    # Metric definitions ---------------------------------------------------------------

    @abstractmethod
    async def get_metric(self, project_id: str | None, key: str) -> MetricRecord | None: ...

    @abstractmethod
    async def list_metrics(self, project_id: str | None) -> list[MetricRecord]:
        """The project's metrics by key."""

    @abstractmethod
    async def ensure_metric(self, metric: MetricRecord) -> MetricRecord:
        """The project's metric under ``metric.key``, created as ``metric`` if there is
        none (two callers at once get the same row)."""

    @abstractmethod
    async def create_metric(self, metric: MetricRecord) -> bool:
        """Insert ``metric``; False if its key is taken in its project."""

    @abstractmethod
    async def update_metric(self, metric: MetricRecord) -> None: ...

    @abstractmethod
    async def delete_metric(self, metric_id: str) -> bool:
        """Delete a metric and its scores."""

    @abstractmethod
    async def count_scores(self, metric_id: str) -> int: ...

    # Scores ---------------------------------------------------------------------------

    @abstractmethod
    async def add_scores(self, scores: Sequence[ScoreRecord]) -> None:
        """Insert ``scores`` in one transaction. An evaluator's score (source
        ``evaluator:...``) on a run replaces that evaluator's earlier score on the run
        under the same metric."""

    @abstractmethod
    async def get_score(self, score_id: str) -> ScoreRecord | None: ...

    @abstractmethod
    async def list_scores(
        self,
        *,
        run_id: str | None = None,
        span_id: str | None = None,
        experiment_id: str | None = None,
        metric_key: str | None = None,
        source: str | None = None,
        limit: int | None = None,
    ) -> list[ScoreRecord]:
        """Scores matching every filter given, oldest first."""

    @abstractmethod
    async def delete_score(self, score_id: str) -> bool: ...

    # Feedback -------------------------------------------------------------------------

    @abstractmethod
    async def set_feedback(self, feedback: FeedbackRecord) -> FeedbackRecord:
        """Insert or change the feedback on ``feedback.run_id`` (or, with no run, on
        ``feedback.span_id``); the stored row is returned (its ``id``, ``created_at``
        and ``created_by`` are the first feedback's)."""

    @abstractmethod
    async def get_feedback(
        self, *, run_id: str | None = None, span_id: str | None = None
    ) -> FeedbackRecord | None:
        """The feedback on a run, or on a span (a run's, or the span's own)."""

    @abstractmethod
    async def list_feedback(self, *, experiment_id: str) -> list[FeedbackRecord]: ...

    # Evaluators -----------------------------------------------------------------------

    @abstractmethod
    async def list_evaluators(self, experiment_id: str) -> list[EvaluatorRecord]:
        """The experiment's evaluators in order."""

    @abstractmethod
    async def get_evaluator(
        self, experiment_id: str, evaluator_id: str
    ) -> EvaluatorRecord | None: ...

    @abstractmethod
    async def add_evaluator(self, evaluator: EvaluatorRecord) -> bool:
        """Insert ``evaluator`` last (its ``position`` is set); False if its name is
        taken in the experiment."""

    @abstractmethod
    async def update_evaluator(self, evaluator: EvaluatorRecord) -> bool:
        """False if its new name is taken in the experiment."""

    @abstractmethod
    async def delete_evaluator(self, experiment_id: str, evaluator_id: str) -> bool: ...
