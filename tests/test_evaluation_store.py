"""The evaluation store on SQLite and on PostgreSQL (migration 0008; the ``stores``
fixture): its records are its tables' columns,
metrics are unique per project and created once under a race, an evaluator's score on
a run replaces its earlier one, feedback is one changeable row per run or span, and
deleting an experiment takes its runs' scores and feedback with it."""

from __future__ import annotations

import asyncio

from gateway.store.evaluation import (
    EvaluatorRecord,
    FeedbackRecord,
    MetricRecord,
    ScoreRecord,
    new_metric_id,
    new_score_id,
)
from gateway.store.sql import SQLDatabase
from gateway.store.sqlite_evaluation import (
    EVALUATOR_COLUMNS,
    FEEDBACK_COLUMNS,
    METRIC_COLUMNS,
    SCORE_COLUMNS,
    SqlEvaluationStore,
)
from gateway.store.stores import Stores
from tests.sql_helpers import sql_db, table_columns


def metric(key: str, project: str | None = None) -> MetricRecord:
    return MetricRecord(
        id=new_metric_id(), key=key, name=key, created_at="t0", updated_at="t0", project_id=project
    )


async def add_run(db: SQLDatabase, experiment_id: str, run_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO experiments (id, name, original_span_id, original_trace_id,"
            " original_request, modified_request, kind) VALUES (?, 'e', '', '', '{}', '{}',"
            " 'matrix') ON CONFLICT DO NOTHING",
            (experiment_id,),
        )
        await conn.execute(
            "INSERT INTO experiment_runs (id, experiment_id, status, request, started_at)"
            " VALUES (?, ?, 'completed', '{}', 't0')",
            (run_id, experiment_id),
        )


async def test_tables_match_the_records(stores: Stores) -> None:
    db = sql_db(stores.database)
    assert isinstance(stores.evaluation, SqlEvaluationStore)
    for table, columns in (
        ("metric_definitions", METRIC_COLUMNS),
        ("scores", SCORE_COLUMNS),
        ("feedback", FEEDBACK_COLUMNS),
        ("experiment_evaluators", EVALUATOR_COLUMNS),
    ):
        found = await table_columns(db, table)
        assert sorted(found) == sorted(columns), table
    assert "0008_evaluation" in await stores.database.applied_migrations()


async def test_metric_keys_are_unique_per_project_and_ensured_once(stores: Stores) -> None:
    store = stores.evaluation
    assert await store.create_metric(metric("correctness"))
    assert not await store.create_metric(metric("correctness"))  # the default project
    assert await store.create_metric(metric("correctness", project="p1"))
    results = await asyncio.gather(*(store.ensure_metric(metric("style")) for _ in range(5)))
    assert len({m.id for m in results}) == 1
    assert [m.key for m in await store.list_metrics(None)] == ["correctness", "style"]
    assert [m.key for m in await store.list_metrics("p1")] == ["correctness"]
    found = await store.get_metric(None, "style")
    assert found is not None and found.id == results[0].id
    found.kind, found.min_value, found.max_value = "numeric", 1.0, 5.0
    await store.update_metric(found)
    again = await store.get_metric(None, "style")
    assert again is not None and (again.min_value, again.max_value) == (1.0, 5.0)


async def test_an_evaluator_score_replaces_its_earlier_one_and_others_add_up(
    stores: Stores,
) -> None:
    store = stores.evaluation
    await add_run(stores.database, "exp_1", "run_1")  # type: ignore[arg-type]
    m = await store.ensure_metric(metric("exact"))

    def score(value: float, source: str) -> ScoreRecord:
        return ScoreRecord(
            id=new_score_id(),
            metric_id=m.id,
            metric_key="exact",
            source=source,
            created_at="t1",
            value=value,
            run_id="run_1",
            experiment_id="exp_1",
        )

    await store.add_scores([score(0.0, "evaluator:exact")])
    await store.add_scores([score(1.0, "evaluator:exact")])
    await store.add_scores([score(1.0, "human"), score(0.0, "human")])
    scores = await store.list_scores(run_id="run_1")
    assert sorted((s.source, s.value) for s in scores) == [
        ("evaluator:exact", 1.0),
        ("human", 0.0),
        ("human", 1.0),
    ]
    assert await store.count_scores(m.id) == 3


async def test_feedback_is_one_changeable_row_and_goes_with_its_experiment(
    stores: Stores,
) -> None:
    store = stores.evaluation
    db = sql_db(stores.database)
    await add_run(db, "exp_1", "run_1")
    first = await store.set_feedback(
        FeedbackRecord(
            id="fbk_1",
            created_at="t1",
            updated_at="t1",
            thumbs_up=True,
            run_id="run_1",
            span_id="span_1",
            experiment_id="exp_1",
            created_by="ann",
            updated_by="ann",
        )
    )
    second = await store.set_feedback(
        FeedbackRecord(
            id="fbk_2",
            created_at="t2",
            updated_at="t2",
            thumbs_up=False,
            note="wrong",
            run_id="run_1",
            span_id="span_1",
            experiment_id="exp_1",
            updated_by="bob",
        )
    )
    assert (second.id, second.created_by, second.created_at) == ("fbk_1", "ann", "t1")
    assert (second.thumbs_up, second.note, second.updated_by) == (False, "wrong", "bob")
    assert first.thumbs_up is True
    by_span = await store.get_feedback(span_id="span_1")
    assert by_span is not None and by_span.id == "fbk_1"

    m = await store.ensure_metric(metric("x"))
    await store.add_scores(
        [
            ScoreRecord(
                id=new_score_id(),
                metric_id=m.id,
                metric_key="x",
                source="api",
                created_at="t",
                value=1.0,
                run_id="run_1",
            )
        ]
    )
    await store.add_evaluator(
        EvaluatorRecord(
            id="evl_1",
            experiment_id="exp_1",
            name="exact",
            type="exact_match",
            metric_key="x",
            created_at="t",
            updated_at="t",
        )
    )
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM experiments WHERE id = 'exp_1'")
    assert await store.get_feedback(run_id="run_1") is None
    assert await store.list_scores(run_id="run_1") == []
    assert await store.list_evaluators("exp_1") == []


async def test_evaluator_names_are_unique_per_experiment_and_kept_in_order(
    stores: Stores,
) -> None:
    store = stores.evaluation
    await add_run(stores.database, "exp_1", "run_1")  # type: ignore[arg-type]

    def evaluator(id: str, name: str) -> EvaluatorRecord:
        return EvaluatorRecord(
            id=id,
            experiment_id="exp_1",
            name=name,
            type="contains",
            metric_key=name,
            created_at="t",
            updated_at="t",
            params={"text": "x"},
        )

    assert await store.add_evaluator(evaluator("evl_a", "a"))
    assert await store.add_evaluator(evaluator("evl_b", "b"))
    assert not await store.add_evaluator(evaluator("evl_c", "a"))
    listed = await store.list_evaluators("exp_1")
    assert [(e.name, e.position, e.params) for e in listed] == [
        ("a", 0, {"text": "x"}),
        ("b", 1, {"text": "x"}),
    ]
    renamed = evaluator("evl_b", "a")
    assert not await store.update_evaluator(renamed)
    assert await store.delete_evaluator("exp_1", "evl_a")
    assert await store.update_evaluator(renamed)
    assert [e.name for e in await store.list_evaluators("exp_1")] == ["a"]
