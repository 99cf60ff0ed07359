"""What the gateway shows of its background process (gateway/background/): its metrics
added to the gateway's on ``/metrics``, its cells still being scored counted in
``GET /experiments/{id}/evaluate``, and the limit its cells wait on in the run's
progress. The process itself: tests/e2e/test_background_e2e.py."""

from __future__ import annotations

import time
from typing import Any

from gateway.config import Settings
from gateway.evaluation.service import PENDING_SIGNAL, EvaluationService
from gateway.experiments.matrix_shared import RUN_ENDED, RUN_WAITING, SharedRuns
from gateway.metrics import Metrics


def series(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_add_the_peers_counters_and_show_its_own_series() -> None:
    gateway, background = Metrics(), Metrics()
    gateway.requests.labels("openai", "gpt-4o", "ok").inc(2)
    background.requests.labels("openai", "gpt-4o", "ok").inc(3)
    background.requests.labels("openai", "gpt-4.1", "error").inc(1)
    background.experiment_cell_latency.labels("exp_1", "var_1").observe(0.2)
    gateway.peer_snapshot = background.snapshot()
    text = gateway.render().decode()
    requests = series(text, "spanlab_requests_total")
    assert requests == {
        'spanlab_requests_total{model="gpt-4o",provider="openai",status="ok"}': 5.0,
        'spanlab_requests_total{model="gpt-4.1",provider="openai",status="error"}': 1.0,
    }
    counts = series(text, "spanlab_experiment_cell_duration_seconds_count")
    assert list(counts.values()) == [1.0]
    assert text.count("# TYPE spanlab_requests_total counter") == 1


def test_the_writer_lag_is_the_larger_not_the_sum() -> None:
    gateway, background = Metrics(), Metrics()
    gateway.writer_lag.set(0.5)
    background.writer_lag.set(2.0)
    gateway.peer_snapshot = background.snapshot()
    lag = series(gateway.render().decode(), "spanlab_span_writer_lag_seconds")
    assert lag == {"spanlab_span_writer_lag_seconds": 2.0}
    background.writer_lag.set(0.25)
    gateway.peer_snapshot = background.snapshot()
    lag = series(gateway.render().decode(), "spanlab_span_writer_lag_seconds")
    assert lag == {"spanlab_span_writer_lag_seconds": 0.5}


def test_cells_scored_in_another_process_count_as_pending() -> None:
    here = EvaluationService(Settings(), None, None, None, None)  # type: ignore[arg-type]
    here.signalled({"from": "bg1", "experiment_id": "exp_1", "pending": 3})
    here.signalled({"from": "bg2", "experiment_id": "exp_1", "pending": 2})
    assert here.progress("exp_1")["pending_cells"] == 5
    assert here.progress("exp_2")["pending_cells"] == 0
    here.signalled({"from": "bg1", "experiment_id": "exp_1", "pending": 0})
    assert here.progress("exp_1")["pending_cells"] == 2
    here.signalled({"from": "bg2", "experiment_id": "exp_1", "pending": "x"})  # not a count
    assert here.progress("exp_1")["pending_cells"] == 0


class NoEvaluators:
    async def list_evaluators(self, experiment_id: str) -> list[Any]:
        return []

    async def list_inputs(self, experiment_id: str) -> list[Any]:
        return []


async def test_a_process_tells_its_peers_what_it_is_scoring() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    store = NoEvaluators()
    there = EvaluationService(Settings(), store, store, None, None)  # type: ignore[arg-type]
    there.signal = lambda name, data: sent.append((name, data))
    there.after_cell({"id": "exp_1"}, {"status": "failed", "matrix_run_id": "m"}, None)
    assert sent == []  # a failed cell is not scored
    there.after_cell({"id": "exp_1"}, {"status": "completed", "matrix_run_id": "m"}, None)
    assert [(name, data["pending"]) for name, data in sent] == [(PENDING_SIGNAL, 1)]
    await there.wait("exp_1")
    assert [data["pending"] for _, data in sent] == [1, 0]
    assert {data["experiment_id"] for _, data in sent} == {"exp_1"}
    assert len({data["from"] for _, data in sent}) == 1


def test_the_limit_a_peers_cells_wait_on_shows_while_they_wait() -> None:
    shared = SharedRuns(None, 10.0)  # type: ignore[arg-type]  # no claims needed here
    until = time.time() + 30
    waiting = {"limit": "key 'ci' rpm", "until": until}
    shared.heard_waiting({"what": RUN_WAITING, "run_id": "m1", "waiting": waiting})
    assert shared.peer_waiting("m1") == waiting
    assert shared.peer_waiting("m2") is None
    shared.heard_waiting({"what": RUN_WAITING, "run_id": "m1", "waiting": None})
    assert shared.peer_waiting("m1") is None
    shared.heard_waiting({"what": RUN_WAITING, "run_id": "m1", "waiting": waiting})
    shared.heard_waiting({"what": RUN_ENDED, "run_id": "m1"})
    assert shared.peer_waiting("m1") is None
    long_over = {"limit": "rpm", "until": time.time() - 60}  # its "no longer" was lost
    shared.heard_waiting({"what": RUN_WAITING, "run_id": "m3", "waiting": long_over})
    assert shared.peer_waiting("m3") is None
