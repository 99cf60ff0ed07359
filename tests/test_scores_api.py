"""Feedback and scores on experiment runs and captured spans (the seed's routes), with
their errors: every refusal is a clear 4xx and stores nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT, capture, error_of, sse_events
from tests.fakes import FakeUpstream
from tests.scores_helpers import a_run, matrix_cells
from tests.sql_helpers import make_gateway_on_each_backend
from tests.test_matrix import answer

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=answer))
    return gateway


async def test_feedback_on_a_run_keeps_omitted_fields_and_says_who_and_when(gw: Gateway) -> None:
    done = await a_run(gw)
    url = f"/experiments/runs/{done['id']}/feedback"
    r = await gw.client.post(url, json={"thumbsUp": True, "note": "good"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["ok"] is True
    fb = first["feedback"]
    assert (fb["thumbs_up"], fb["note"], fb["run_id"]) == (True, "good", done["id"])
    assert fb["span_id"] == done["result_span_id"]
    assert fb["experiment_id"] == done["experiment_id"] and fb["project_id"] == "proj-1"
    assert fb["created_by"] == fb["updated_by"] == "local"
    # Omitted note keeps its value; the change is by someone else, later.
    r = await gw.client.post(url, json={"thumbsUp": False}, headers={"x-spanlab-user": "ann"})
    fb2 = r.json()["feedback"]
    assert (fb2["thumbs_up"], fb2["note"]) == (False, "good")
    assert fb2["id"] == fb["id"] and fb2["created_at"] == fb["created_at"]
    assert (fb2["created_by"], fb2["updated_by"]) == ("local", "ann")
    assert fb2["updated_at"] >= fb["updated_at"]
    # Omitted thumbs keep theirs; snake_case is accepted too; null clears the note.
    r = await gw.client.post(url, json={"note": None})
    assert r.json()["feedback"]["thumbs_up"] is False and r.json()["feedback"]["note"] is None
    r = await gw.client.post(url, json={"thumbs_up": True})
    assert r.json()["feedback"]["thumbs_up"] is True
    got = (await gw.client.get(url)).json()["feedback"]
    assert got == r.json()["feedback"]
    # The run's span shows it.
    by_span = (await gw.client.get(f"/spans/{done['result_span_id']}/feedback")).json()
    assert by_span["feedback"] == got


async def test_feedback_errors_are_4xx_and_store_nothing(gw: Gateway) -> None:
    done = await a_run(gw)
    url = f"/experiments/runs/{done['id']}/feedback"
    r = await gw.client.post("/experiments/runs/run_nope/feedback", json={"thumbsUp": True})
    assert r.status_code == 404 and error_of(r)["param"] == "run_id"
    for body, param in (
        ({"thumbsUp": "yes"}, "thumbsUp"),
        ({"note": 5}, "note"),
        ({"thumbsUp": True, "stars": 5}, "stars"),
        ([True], "body"),
    ):
        r = await gw.client.post(url, json=body)
        assert r.status_code == 400, (body, r.text)
        assert error_of(r)["param"] == param
    r = await gw.client.post(
        url, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert (await gw.client.get(url)).json() == {"feedback": None}
    assert await gw.state.stores.events.list_events(type="experiment.feedback.updated") == []
    # An empty body is the seed's no-op: ok, nothing stored.
    r = await gw.client.post(url, json={})
    assert r.status_code == 200 and r.json() == {"ok": True, "feedback": None}
    r = await gw.client.get("/experiments/runs/run_nope/feedback")
    assert r.status_code == 404


async def test_feedback_on_an_app_span_by_its_response_header(gw: Gateway) -> None:
    # The span id the proxy answers with, used at once: the writer may not have
    # stored the span yet; the route waits for it rather than answer 404.
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    span_id = r.headers["x-spanlab-span-id"]
    r = await gw.client.post(f"/spans/{span_id}/feedback", json={"thumbsUp": False, "note": "bad"})
    assert r.status_code == 200, r.text
    fb = r.json()["feedback"]
    assert (fb["span_id"], fb["run_id"], fb["thumbs_up"]) == (span_id, None, False)
    got = (await gw.client.get(f"/spans/{span_id}/feedback")).json()["feedback"]
    assert got["note"] == "bad"
    r = await gw.client.post("/spans/0123456789abcdef/feedback", json={"thumbsUp": True})
    assert r.status_code == 404 and error_of(r)["param"] == "span_id"


async def test_a_span_not_yet_written_is_looked_up_again_after_the_writer_flush(
    gw: Gateway,
) -> None:
    """The writer's lag, made certain: the span store answers None until the flush,
    as for a span still in the writer's queue; the id is then found, not a 404."""
    from gateway.evaluation.scoring import ScoringService

    span = await capture(gw, CHAT)
    real = gw.state.stores.spans
    flushed: list[bool] = []

    class Lagging:
        async def get_span(self, span_id: str) -> dict[str, Any] | None:
            return await real.get_span(span_id) if flushed else None

    async def flush() -> None:
        flushed.append(True)

    svc = ScoringService(
        gw.state.stores.evaluation,
        gw.state.stores.experiments,
        Lagging(),
        flush=flush,  # type: ignore[arg-type]
    )
    target = await svc.span_target(span["span_id"])
    assert target.span_id == span["span_id"] and flushed == [True]
    flushed.clear()
    from gateway.errors import NotFound

    with pytest.raises(NotFound):
        await svc.span_target("ffffffffffffffff")
    assert flushed == [True]  # an unknown id waited for the writer once, then 404


async def test_feedback_on_a_runs_span_is_the_runs_feedback(gw: Gateway) -> None:
    done = await a_run(gw)
    r = await gw.client.post(f"/spans/{done['result_span_id']}/feedback", json={"thumbsUp": True})
    assert r.json()["feedback"]["run_id"] == done["id"]
    got = (await gw.client.get(f"/experiments/runs/{done['id']}/feedback")).json()
    assert got["feedback"]["thumbs_up"] is True


async def test_scores_as_the_seed_with_the_metric_created_on_first_use(gw: Gateway) -> None:
    done = await a_run(gw)
    url = f"/experiments/runs/{done['id']}/scores"
    r = await gw.client.post(url, json={"metricKey": "correctness", "value": 4, "note": "close"})
    assert r.status_code == 201, r.text
    score = r.json()["score"]
    assert (score["metric_key"], score["value"], score["note"]) == ("correctness", 4.0, "close")
    assert (score["source"], score["created_by"]) == ("api", "local")
    assert (score["run_id"], score["span_id"]) == (done["id"], done["result_span_id"])
    metric = (await gw.client.get("/metric-definitions/correctness?project=proj-1")).json()
    assert metric["metric"]["kind"] == "numeric" and metric["metric"]["scale"] == "custom"
    assert metric["metric"]["id"] == score["metric_id"]
    # A boolean value creates a boolean metric, stored as 1/0.
    r = await gw.client.post(url, json={"metric_key": "polite", "value": True, "source": "human"})
    assert r.json()["score"]["value"] == 1.0 and r.json()["score"]["source"] == "human"
    kinds = {
        m["key"]: m["kind"]
        for m in (await gw.client.get("/metric-definitions?project=proj-1")).json()["data"]
    }
    assert kinds == {"correctness": "numeric", "polite": "boolean"}
    # A score on the run is on its span too, and on the experiment.
    on_span = (await gw.client.get(f"/spans/{done['result_span_id']}/scores")).json()["data"]
    assert [s["metric_key"] for s in on_span] == ["correctness", "polite"]
    on_run = (await gw.client.get(url)).json()["data"]
    assert on_run == on_span
    detail = (await gw.client.get(f"/spans/{done['result_span_id']}/evaluation")).json()
    assert detail["scores"] == on_span and detail["target"]["run_id"] == done["id"]


async def test_score_errors_are_400_with_param_and_store_nothing(gw: Gateway) -> None:
    done = await a_run(gw)
    url = f"/experiments/runs/{done['id']}/scores"
    for body in (
        {"key": "rating", "kind": "numeric", "min_value": 1, "max_value": 5},
        {"key": "ok", "kind": "boolean"},
        {"key": "tone", "kind": "categorical", "categories": ["rude", "neutral", "kind"]},
    ):
        r = await gw.client.post("/metric-definitions?project=proj-1", json=body)
        assert r.status_code == 201, r.text
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"metricKey": "rating", "value": 6}, "value", "out_of_range"),
        ({"metricKey": "rating", "value": 0.5}, "value", "out_of_range"),
        ({"metricKey": "rating", "value": "5"}, "value", "wrong_kind"),
        ({"metricKey": "ok", "value": 0.5}, "value", "wrong_kind"),
        ({"metricKey": "tone", "value": "sarcastic"}, "value", "unknown_category"),
        ({"metricKey": "tone", "value": 3}, "value", "wrong_kind"),
        ({"metricKey": "new_one", "value": "good"}, "metricKey", "unknown_metric"),
        ({"metricKey": "new_one", "value": None}, "value", None),
        ({"metricKey": "", "value": 1}, "metricKey", None),
        ({"metricKey": "a b", "value": 1}, "metricKey", None),
        ({"value": 1}, "metricKey", None),
        ({"metricKey": "rating", "value": 3, "source": "robot"}, "source", "bad_source"),
        ({"metricKey": "rating", "value": 3, "extra": 1}, "extra", None),
        ({"metricKey": "rating", "value": 3, "note": ["x"]}, "note", None),
        ({"metricKey": "rating", "value": 3, "error": {"type": "x"}}, "error", None),
    ]
    for body, param, code in cases:
        r = await gw.client.post(url, json=body)
        assert r.status_code == 400, (body, r.text)
        error = error_of(r)
        assert error["param"] == param, (body, error)
        if code is not None:
            assert error["code"] == code, (body, error)
    assert (await gw.client.get(url)).json()["data"] == []
    keys = {
        m["key"] for m in (await gw.client.get("/metric-definitions?project=proj-1")).json()["data"]
    }
    assert keys == {"rating", "ok", "tone"}  # no metric made by a refused score
    assert await gw.state.stores.events.list_events(type="experiment.score.created") == []
    r = await gw.client.post(
        "/experiments/runs/run_nope/scores", json={"metricKey": "x", "value": 1}
    )
    assert r.status_code == 404 and error_of(r)["param"] == "run_id"
    # What fits is stored: a category by name or index, a boolean as 1/0.
    r = await gw.client.post(url, json={"metricKey": "tone", "value": "kind"})
    assert (r.json()["score"]["value"], r.json()["score"]["label"]) == (2.0, "kind")
    r = await gw.client.post(url, json={"metricKey": "tone", "value": 0})
    assert r.json()["score"]["label"] == "rude"
    r = await gw.client.post(url, json={"metricKey": "ok", "value": 0})
    assert r.json()["score"]["value"] == 0.0
    r = await gw.client.post(url, json={"metricKey": "rating", "value": 5})
    assert r.status_code == 201


async def test_an_evaluator_error_is_stored_without_a_value(gw: Gateway) -> None:
    done = await a_run(gw)
    url = f"/experiments/runs/{done['id']}/scores"
    await gw.client.post("/metric-definitions?project=proj-1", json={"key": "judge"})
    error = {"type": "unparseable", "message": "no verdict"}
    r = await gw.client.post(
        url, json={"metricKey": "judge", "source": "evaluator:llm", "error": error}
    )
    assert r.status_code == 201, r.text
    assert r.json()["score"]["value"] is None and r.json()["score"]["error"] == error
    r = await gw.client.post(url, json={"metricKey": "judge", "source": "api", "error": error})
    assert r.status_code == 400 and error_of(r)["param"] == "error"


async def test_scores_on_spans_list_filter_and_delete(gw: Gateway) -> None:
    exp, grid = await matrix_cells(gw)
    assert len(grid) == 4
    for n, cell in enumerate(grid):
        await gw.client.post(
            f"/experiments/runs/{cell['id']}/scores",
            json={"metricKey": "correctness", "value": n, "source": "human"},
        )
    # A score posted on a cell's span is the cell's.
    cell = grid[0]
    r = await gw.client.post(
        f"/spans/{cell['result_span_id']}/scores",
        json={"metricKey": "style", "value": 0.5, "source": "evaluator:style"},
    )
    assert r.status_code == 201
    assert r.json()["score"]["run_id"] == cell["id"]
    assert r.json()["score"]["variant_id"] == cell["variant_id"]
    listed = (await gw.client.get(f"/experiments/{exp['id']}/scores")).json()["data"]
    assert len(listed) == 5
    only = (await gw.client.get(f"/experiments/{exp['id']}/scores?metric=style")).json()["data"]
    assert [s["metric_key"] for s in only] == ["style"]
    human = (await gw.client.get(f"/experiments/{exp['id']}/scores?source=human")).json()["data"]
    assert len(human) == 4 and {s["source"] for s in human} == {"human"}
    r = await gw.client.get("/experiments/exp_nope/scores")
    assert r.status_code == 404
    # A span of the app's own (no run) takes scores too.
    app_span = await capture(gw, CHAT)
    r = await gw.client.post(
        f"/spans/{app_span['span_id']}/scores", json={"metricKey": "correctness", "value": 1}
    )
    assert r.status_code == 201 and r.json()["score"]["run_id"] is None
    # Delete.
    score_id = r.json()["score"]["id"]
    assert (await gw.client.delete(f"/scores/{score_id}")).status_code == 204
    assert (await gw.client.get(f"/spans/{app_span['span_id']}/scores")).json()["data"] == []
    r = await gw.client.delete(f"/scores/{score_id}")
    assert r.status_code == 404 and error_of(r)["param"] == "score_id"
    feedback = (await gw.client.get(f"/experiments/{exp['id']}/feedback")).json()
    assert feedback == {"data": []}


async def test_events_and_prometheus_metrics(gw: Gateway) -> None:
    exp, grid = await matrix_cells(gw)
    listener = asyncio.create_task(gw.client.get("/events"))
    for _ in range(500):  # until the listener is subscribed
        if gw.state.events.listeners:
            break
        await asyncio.sleep(0.01)
    cell = grid[0]
    await gw.client.post(f"/experiments/runs/{cell['id']}/feedback", json={"thumbsUp": True})
    await gw.client.post(f"/experiments/runs/{cell['id']}/feedback", json={"thumbsUp": False})
    await gw.client.post(f"/experiments/runs/{grid[1]['id']}/feedback", json={"note": "meh"})
    r = await gw.client.post(
        f"/experiments/runs/{cell['id']}/scores", json={"metricKey": "m", "value": 1}
    )
    gw.state.events.close()
    streamed = sse_events((await asyncio.wait_for(listener, 5)).text.split("\n\n", 1)[1])
    feedback = [e for n, e in streamed if n == "experiment.feedback.updated"]
    assert [e["payload"]["feedback"]["thumbs_up"] for e in feedback] == [True, False, None]
    assert [e["payload"]["previous_thumbs_up"] for e in feedback] == [None, True, None]
    assert feedback[0]["subject_id"] == exp["id"]
    assert feedback[0]["related_ids"] == [cell["id"], cell["result_span_id"]]
    [scored] = [e for n, e in streamed if n == "experiment.score.created"]
    assert scored["payload"]["score"] == r.json()["score"]
    rows = await gw.state.stores.events.list_events(type="experiment.feedback.updated")
    assert sorted(e.id for e in rows) == sorted(e["id"] for e in feedback)
    [row] = await gw.state.stores.events.list_events(type="experiment.score.created")
    assert row.as_dict() == scored
    text = (await gw.client.get("/metrics")).text

    # The exposition lists labels sorted by name.
    def series(variant: str, thumbs: str) -> str:
        return (
            f'spanlab_feedback_total{{experiment="{exp["id"]}",thumbs="{thumbs}",'
            f'variant="{variant}"}} 1.0'
        )

    assert series(cell["variant_id"], "up") in text
    assert series(cell["variant_id"], "down") in text
    assert series(grid[1]["variant_id"], "none") in text
    labels = f'experiment="{exp["id"]}",variant="{cell["variant_id"]}"'
    assert f"spanlab_scores_created_total{{{labels}}} 1.0" in text


async def test_record_scores_takes_several_at_once_and_counts_each(gw: Gateway) -> None:
    """The evaluators' way in: several `ScoreRecord`s, checked, stored, announced."""
    from gateway.api.scores import service as scoring_service
    from gateway.store.evaluation import MetricRecord, ScoreRecord, new_metric_id, new_score_id
    from gateway.store.experiments import now_iso

    exp, grid = await matrix_cells(gw)

    class Req:  # what `service` reads of a request
        app = gw.app
        scope: dict[str, Any] = {}

    svc = scoring_service(Req())  # type: ignore[arg-type]
    now = now_iso()
    metric = await gw.state.stores.evaluation.ensure_metric(
        MetricRecord(
            id=new_metric_id(),
            key="exact",
            name="exact",
            created_at=now,
            updated_at=now,
            kind="boolean",
        )
    )

    def record(cell: dict[str, Any], value: float) -> ScoreRecord:
        return ScoreRecord(
            id=new_score_id(),
            metric_id=metric.id,
            metric_key="exact",
            source="evaluator:exact",
            created_at=now_iso(),
            value=value,
            run_id=cell["id"],
            span_id=cell["result_span_id"],
            experiment_id=exp["id"],
            variant_id=cell["variant_id"],
            input_id=cell["input_id"],
        )

    bad = [record(grid[0], 1.0), record(grid[1], 0.5)]
    with pytest.raises(Exception, match="boolean"):
        await svc.record_scores(bad)
    assert await gw.state.stores.evaluation.list_scores(experiment_id=exp["id"]) == []
    await svc.record_scores([record(c, float(n % 2)) for n, c in enumerate(grid)])
    stored = await gw.state.stores.evaluation.list_scores(experiment_id=exp["id"])
    assert sorted(s.value or 0 for s in stored) == [0.0, 0.0, 1.0, 1.0]
    events = await gw.state.stores.events.list_events(type="experiment.score.created")
    assert len(events) == 4
    text = (await gw.client.get("/metrics")).text
    for cell in grid:
        series = f'experiment="{exp["id"]}",variant="{cell["variant_id"]}"'
        assert f"spanlab_scores_created_total{{{series}}} 2.0" in text
