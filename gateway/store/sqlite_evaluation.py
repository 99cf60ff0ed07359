"""Metrics, scores, feedback and evaluators on SQLite or PostgreSQL:
`SqlEvaluationStore` (migration ``0008_evaluation.sql``), one implementation on any
`SQLDatabase`: reads with its ``fetch``, writes in its ``transaction()``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.store.dialect import dialect_for
from gateway.store.evaluation import (
    EvaluationStore,
    EvaluatorRecord,
    FeedbackRecord,
    MetricRecord,
    ScoreRecord,
    column_names,
)
from gateway.store.experiments import row_lock
from gateway.store.sql import IntegrityError, SQLDatabase, SQLRow
from gateway.store.sqlwhere import Where

METRIC_COLUMNS = column_names(MetricRecord)
SCORE_COLUMNS = column_names(ScoreRecord)
FEEDBACK_COLUMNS = column_names(FeedbackRecord)
EVALUATOR_COLUMNS = column_names(EvaluatorRecord)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def metric_from_row(row: SQLRow) -> MetricRecord:
    values = {column: row[column] for column in METRIC_COLUMNS}
    values["categories"] = _loads(values["categories"])
    return MetricRecord(**values)


def metric_params(metric: MetricRecord) -> tuple[Any, ...]:
    return tuple(
        _json(metric.categories) if column == "categories" else getattr(metric, column)
        for column in METRIC_COLUMNS
    )


def score_from_row(row: SQLRow) -> ScoreRecord:
    values = {column: row[column] for column in SCORE_COLUMNS}
    values["error"] = _loads(values["error"])
    return ScoreRecord(**values)


def score_params(score: ScoreRecord) -> tuple[Any, ...]:
    return tuple(
        _json(score.error) if column == "error" else getattr(score, column)
        for column in SCORE_COLUMNS
    )


def feedback_from_row(row: SQLRow) -> FeedbackRecord:
    values = {column: row[column] for column in FEEDBACK_COLUMNS}
    thumbs = values["thumbs_up"]
    values["thumbs_up"] = None if thumbs is None else bool(thumbs)
    return FeedbackRecord(**values)


def evaluator_from_row(row: SQLRow) -> EvaluatorRecord:
    values = {column: row[column] for column in EVALUATOR_COLUMNS}
    values["params"] = _loads(values["params"]) or {}
    values["enabled"] = bool(values["enabled"])
    return EvaluatorRecord(**values)


def evaluator_params(evaluator: EvaluatorRecord) -> tuple[Any, ...]:
    return tuple(
        _json(evaluator.params) if column == "params" else getattr(evaluator, column)
        for column in EVALUATOR_COLUMNS
    )


_SELECT_METRIC = f"SELECT {', '.join(METRIC_COLUMNS)} FROM metric_definitions"
_SELECT_SCORE = f"SELECT {', '.join(SCORE_COLUMNS)} FROM scores"
_SELECT_FEEDBACK = f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM feedback"
_SELECT_EVALUATOR = f"SELECT {', '.join(EVALUATOR_COLUMNS)} FROM experiment_evaluators"
# The unique index on metric keys is on COALESCE(project_id, ''): the default project
# (NULL) is one project like any other.
_SAME_PROJECT = "COALESCE(project_id, '') = COALESCE(?, '')"


@dataclass(slots=True)
class SqlEvaluationStore(EvaluationStore):
    db: SQLDatabase

    # Metric definitions ---------------------------------------------------------------

    async def get_metric(self, project_id: str | None, key: str) -> MetricRecord | None:
        rows = await self.db.fetch(
            f"{_SELECT_METRIC} WHERE {_SAME_PROJECT} AND key = ?", (project_id, key)
        )
        return metric_from_row(rows[0]) if rows else None

    async def list_metrics(self, project_id: str | None) -> list[MetricRecord]:
        rows = await self.db.fetch(
            f"{_SELECT_METRIC} WHERE {_SAME_PROJECT} ORDER BY key", (project_id,)
        )
        return [metric_from_row(row) for row in rows]

    async def ensure_metric(self, metric: MetricRecord) -> MetricRecord:
        async with self.db.transaction() as conn:
            await conn.execute(
                _insert("metric_definitions", METRIC_COLUMNS) + " ON CONFLICT DO NOTHING",
                metric_params(metric),
            )
            cursor = await conn.execute(
                f"{_SELECT_METRIC} WHERE {_SAME_PROJECT} AND key = ?",
                (metric.project_id, metric.key),
            )
            row = await cursor.fetchone()
        assert row is not None  # inserted, or there already
        return metric_from_row(row)

    async def create_metric(self, metric: MetricRecord) -> bool:
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    _insert("metric_definitions", METRIC_COLUMNS), metric_params(metric)
                )
        except IntegrityError:
            return False
        return True

    async def update_metric(self, metric: MetricRecord) -> None:
        editable = [c for c in METRIC_COLUMNS if c not in ("id", "project_id", "key", "created_at")]
        values = dict(zip(METRIC_COLUMNS, metric_params(metric), strict=True))
        async with self.db.transaction() as conn:
            await conn.execute(
                f"UPDATE metric_definitions SET {', '.join(f'{c} = ?' for c in editable)}"
                " WHERE id = ?",
                (*(values[c] for c in editable), metric.id),
            )

    async def delete_metric(self, metric_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM metric_definitions WHERE id = ?", (metric_id,))
            return bool(cursor.rowcount > 0)

    async def count_scores(self, metric_id: str) -> int:
        rows = await self.db.fetch("SELECT COUNT(*) FROM scores WHERE metric_id = ?", (metric_id,))
        return int(rows[0][0])

    # Scores ---------------------------------------------------------------------------

    async def add_scores(self, scores: Sequence[ScoreRecord]) -> None:
        if not scores:
            return
        async with self.db.transaction() as conn:
            for score in scores:
                if score.run_id is not None and score.source.startswith("evaluator:"):
                    await conn.execute(
                        "DELETE FROM scores WHERE run_id = ? AND source = ? AND metric_key = ?",
                        (score.run_id, score.source, score.metric_key),
                    )
            await conn.executemany(
                _insert("scores", SCORE_COLUMNS), [score_params(score) for score in scores]
            )

    async def get_score(self, score_id: str) -> ScoreRecord | None:
        rows = await self.db.fetch(f"{_SELECT_SCORE} WHERE id = ?", (score_id,))
        return score_from_row(rows[0]) if rows else None

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
        where = Where()
        where.equals("run_id", run_id)
        where.equals("span_id", span_id)
        where.equals("experiment_id", experiment_id)
        where.equals("metric_key", metric_key)
        where.equals("source", source)
        sql, params = where.sql()
        tail = " LIMIT ?" if limit is not None else ""
        rows = await self.db.fetch(
            f"{_SELECT_SCORE} WHERE {sql} ORDER BY created_at, id{tail}",
            (*params, *(() if limit is None else (limit,))),
        )
        return [score_from_row(row) for row in rows]

    async def delete_score(self, score_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM scores WHERE id = ?", (score_id,))
            return bool(cursor.rowcount > 0)

    # Feedback -------------------------------------------------------------------------

    async def set_feedback(self, feedback: FeedbackRecord) -> FeedbackRecord:
        # One row per run, else per span (the partial unique indexes feedback_by_run and
        # feedback_by_span): written in one statement, an upsert on the index, so two
        # writers at once (two processes on PostgreSQL) cannot both insert.
        if feedback.run_id is not None:
            match, key, target = "run_id = ?", feedback.run_id, "(run_id) WHERE run_id IS NOT NULL"
        elif feedback.span_id is not None:
            match, key = "run_id IS NULL AND span_id = ?", feedback.span_id
            target = "(span_id) WHERE run_id IS NULL"
        else:
            raise ValueError("feedback needs a run or a span")
        params = tuple(
            (None if feedback.thumbs_up is None else int(feedback.thumbs_up))
            if column == "thumbs_up"
            else getattr(feedback, column)
            for column in FEEDBACK_COLUMNS
        )
        changed = ("thumbs_up", "note", "updated_by", "updated_at")
        async with self.db.transaction() as conn:
            await conn.execute(
                _insert("feedback", FEEDBACK_COLUMNS)
                + f" ON CONFLICT {target} DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in changed),
                params,
            )
            cursor = await conn.execute(f"{_SELECT_FEEDBACK} WHERE {match}", (key,))
            row = await cursor.fetchone()
        assert row is not None  # written just now
        return feedback_from_row(row)

    async def get_feedback(
        self, *, run_id: str | None = None, span_id: str | None = None
    ) -> FeedbackRecord | None:
        if run_id is not None:
            rows = await self.db.fetch(f"{_SELECT_FEEDBACK} WHERE run_id = ?", (run_id,))
        elif span_id is not None:
            # A run's feedback names the run's span, so the span shows it too.
            rows = await self.db.fetch(
                f"{_SELECT_FEEDBACK} WHERE span_id = ? ORDER BY run_id IS NULL DESC LIMIT 1",
                (span_id,),
            )
        else:
            return None
        return feedback_from_row(rows[0]) if rows else None

    async def list_feedback(self, *, experiment_id: str) -> list[FeedbackRecord]:
        rows = await self.db.fetch(
            f"{_SELECT_FEEDBACK} WHERE experiment_id = ? ORDER BY created_at, id",
            (experiment_id,),
        )
        return [feedback_from_row(row) for row in rows]

    # Evaluators -----------------------------------------------------------------------

    async def list_evaluators(self, experiment_id: str) -> list[EvaluatorRecord]:
        rows = await self.db.fetch(
            f"{_SELECT_EVALUATOR} WHERE experiment_id = ? ORDER BY position, created_at",
            (experiment_id,),
        )
        return [evaluator_from_row(row) for row in rows]

    async def get_evaluator(self, experiment_id: str, evaluator_id: str) -> EvaluatorRecord | None:
        rows = await self.db.fetch(
            f"{_SELECT_EVALUATOR} WHERE experiment_id = ? AND id = ?",
            (experiment_id, evaluator_id),
        )
        return evaluator_from_row(rows[0]) if rows else None

    async def add_evaluator(self, evaluator: EvaluatorRecord) -> bool:
        try:
            async with self.db.transaction() as conn:
                if dialect_for(self.db.dialect).postgres:  # the next position, one at a time
                    await conn.execute(
                        "SELECT 1 FROM experiments WHERE id = ?"
                        + row_lock(dialect_for(self.db.dialect)),
                        (evaluator.experiment_id,),
                    )
                cursor = await conn.execute(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM experiment_evaluators"
                    " WHERE experiment_id = ?",
                    (evaluator.experiment_id,),
                )
                row = await cursor.fetchone()
                evaluator.position = int(row[0]) if row is not None else 0
                await conn.execute(
                    _insert("experiment_evaluators", EVALUATOR_COLUMNS),
                    evaluator_params(evaluator),
                )
        except IntegrityError:
            return False
        return True

    async def update_evaluator(self, evaluator: EvaluatorRecord) -> bool:
        editable = ("name", "type", "metric_key", "params", "enabled", "updated_at")
        values = dict(zip(EVALUATOR_COLUMNS, evaluator_params(evaluator), strict=True))
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    f"UPDATE experiment_evaluators SET {', '.join(f'{c} = ?' for c in editable)}"
                    " WHERE experiment_id = ? AND id = ?",
                    (*(values[c] for c in editable), evaluator.experiment_id, evaluator.id),
                )
        except IntegrityError:
            return False
        return True

    async def delete_evaluator(self, experiment_id: str, evaluator_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "DELETE FROM experiment_evaluators WHERE experiment_id = ? AND id = ?",
                (experiment_id, evaluator_id),
            )
            return bool(cursor.rowcount > 0)
