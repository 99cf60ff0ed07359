"""``GET /experiments/{id}/results``: a 3 x 10 x 2 matrix run in process (fake upstream),
scored through the evaluation store, read back per variant with the comparisons; the
figures are checked against values computed here from the cells and planted scores."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from scipy import stats

from gateway.evaluation.results import CSV_COLUMNS
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import error_of
from tests.fakes import FakeUpstream
from tests.results_helpers import define, score, thumbs
from tests.test_matrix import add_inputs, add_variant, answer, cells, finish, start


def refusing(request: httpx.Request) -> httpx.Response:
    """Answers like the matrix tests' upstream, but gpt-4o refuses question 9."""
    body = orjson.loads(request.content)
    user = body["messages"][-1]["content"]
    if body["model"] == "gpt-4o" and user == "question 9":
        return httpx.Response(400, json={"error": {"message": "refused"}})
    return answer(request)


def base_value(index: int, repetition: int) -> float:
    return 0.4 + 0.03 * index + (0.01 if repetition == 1 else -0.01)


class Scored:
    def __init__(
        self,
        gw: Gateway,
        exp: dict[str, Any],
        variants: list[dict[str, Any]],
        inputs: list[dict[str, Any]],
        cells: list[dict[str, Any]],
    ) -> None:
        self.gw, self.exp, self.variants, self.inputs, self.cells = gw, exp, variants, inputs, cells
        self.index = {i["id"]: n for n, i in enumerate(inputs)}
        self.name = {v["id"]: v["name"] for v in variants}

    def of(self, variant: str, status: str | None = "completed") -> list[dict[str, Any]]:
        return [
            c
            for c in self.cells
            if self.name[c["variant_id"]] == variant and (status is None or c["status"] == status)
        ]


def correctness(s: Scored) -> Any:
    def value(cell: dict[str, Any]) -> float:
        i, rep = s.index[cell["input_id"]], cell["repetition"]
        name = s.name[cell["variant_id"]]
        shift = {"v1": 0.0, "v2": 0.2, "v3": 0.02 if i % 2 else -0.02}[name]
        return base_value(i, rep) + shift

    return value


def exact(s: Scored) -> Any:
    def value(cell: dict[str, Any]) -> float:
        i, name = s.index[cell["input_id"]], s.name[cell["variant_id"]]
        passing = i >= 2  # v1 and v2 fail inputs 0 and 1
        if name == "v3":  # v3 flips: input 0 now passes, input 5 now fails
            passing = (i >= 2 and i != 5) or i == 0
        return 1.0 if passing else 0.0

    return value


@pytest.fixture
async def scored(make_gateway: GatewayFactory) -> Scored:
    gw = await make_gateway(FakeUpstream(handler=refusing))
    r = await gw.client.post("/experiments", json={"name": "results"})
    exp = r.json()
    variants = [
        await add_variant(gw, exp["id"], name=name, config={"model": model})
        for name, model in (("v1", "gpt-4o-mini"), ("v2", "gpt-4o"), ("v3", "gpt-4o-mini"))
    ]
    inputs = await add_inputs(
        gw, exp["id"], [{"key": f"case_{i}", "content": f"question {i}"} for i in range(10)]
    )
    await start(gw, exp["id"], repetitions=2, concurrency=4)
    await finish(gw, exp["id"])
    s = Scored(gw, exp, variants, inputs, await cells(gw, exp["id"]))
    store = gw.state.stores.evaluation
    m_correct = await define(store, "correctness")
    m_exact = await define(store, "exact", kind="boolean")
    error_cell = next(c for c in s.of("v1") if s.index[c["input_id"]] == 3 and c["repetition"] == 1)
    await score(
        store, s.cells, m_correct, correctness(s), judge_cost_usd=0.001, errors=[error_cell["id"]]
    )
    await score(store, s.cells, m_exact, exact(s))
    for cell, up in zip(s.of("v1")[:4], (True, True, False, True), strict=True):
        await thumbs(store, cell, up)
    return s


def t_ci(x: list[float]) -> tuple[float, float, float]:
    a = np.array(x)
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


async def test_results_per_variant_with_errors_apart_and_the_verdicts(scored: Scored) -> None:
    s = scored
    r = await s.gw.client.get(f"/experiments/{s.exp['id']}/results")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["baseline"] == s.variants[0]["id"]
    v1, v2, v3 = data["variants"]
    assert [v["name"] for v in (v1, v2, v3)] == ["v1", "v2", "v3"]
    # Run errors: v2's two cells of question 9 failed, counted apart.
    assert (v2["cells"], v2["completed"], v2["errors"]) == (20, 18, 2)
    assert v2["error_rate"] == pytest.approx(0.1)
    assert v1["errors"] == 0
    # Operational figures from the cells themselves.
    done = s.of("v1")
    latencies = [c["duration_ms"] for c in done]
    assert v1["latency_p50_ms"] == pytest.approx(float(np.percentile(latencies, 50)))
    assert v1["latency_p95_ms"] == pytest.approx(float(np.percentile(latencies, 95)))
    costs = [c["cost_usd"] for c in done]
    assert v1["cost_total_usd"] == pytest.approx(sum(costs))
    assert v1["cost_per_cell_usd"] == pytest.approx(sum(costs) / 20)
    assert v1["input_tokens"] == sum(c["input_tokens"] for c in done)
    # The judge's cost is apart from the variant's: 20 scores at $0.001 (one an error).
    assert v1["judge_cost_usd"] == pytest.approx(0.02)
    assert v1["thumbs_up"] == 3 and v1["thumbs_up_rate"] == pytest.approx(0.75)
    # Correctness of v1: input means (input 3 has only its second repetition left,
    # the first was an evaluator error), t-interval over the 10 inputs.
    means = [
        base_value(i, 2) if i == 3 else (base_value(i, 1) + base_value(i, 2)) / 2 for i in range(10)
    ]
    mean, low, high = t_ci(means)
    figure = v1["metrics"]["correctness"]
    assert figure["value"] == pytest.approx(mean)
    assert (figure["ci_low"], figure["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert figure["n_inputs"] == 10 and figure["n_values"] == 19
    assert figure["evaluator_errors"] == 1 and v1["evaluator_errors"] == {"correctness": 1}
    assert v1["metrics"]["exact"]["value"] == pytest.approx(0.8)
    assert v1["stability"]["exact"] == {
        "repeated_inputs": 10, "repetitions": 2, "agree": 1.0, "pass_all": 0.8,
    }  # fmt: skip
    assert v1["stability"]["correctness"]["agree"] == 0.0
    # Comparisons against v1, Holm over 2 variants x 2 metrics.
    by = {(c["variant"], c["metric"]): c for c in data["comparisons"]}
    assert len(by) == 4 and all(c["comparisons"] == 4 for c in by.values())
    up = by[(s.variants[1]["id"], "correctness")]
    assert up["n_inputs"] == 9  # question 9 failed under v2: not shared
    diffs = [0.2 + base_value(i, 1) / 2 + base_value(i, 2) / 2 - means[i] for i in range(9)]
    assert up["difference"] == pytest.approx(float(np.mean(diffs)))
    assert up["outcome"] == "improvement" and up["significant"]
    assert up["verdict"].startswith("v2 scores 0.2 higher than v1 on correctness (95% CI")
    assert up["verdict"].endswith(
        "over 9 inputs: a real improvement. Only 9 inputs: treat it as a first look."
    )
    same = by[(s.variants[2]["id"], "correctness")]
    assert same["outcome"] == "no_difference"
    assert same["verdict"].startswith("No detectable difference between v3 and v1 on correctness")
    flipped = by[(s.variants[2]["id"], "exact")]
    assert flipped["test"] == "mcnemar_exact" and flipped["p_value"] == pytest.approx(1.0)
    index = {i["id"]: n for n, i in enumerate(s.inputs)}
    assert {(index[f["input"]], f["change"], f["input_key"]) for f in flipped["flips"]} == {
        (0, "fail_to_pass", "case_0"), (5, "pass_to_fail", "case_5"),
    }  # fmt: skip
    assert "Holm" in data["corrections"]
    # Cost against quality on correctness: v2 is best; v1 and v3 are significantly worse.
    cq = data["cost_quality"]
    assert cq["metric"] == "correctness" and cq["best"] == s.variants[1]["id"]
    assert cq["cheapest_not_worse"] == s.variants[1]["id"]


async def test_csv_has_one_row_per_variant_and_metric(scored: Scored) -> None:
    s = scored
    r = await s.gw.client.get(f"/experiments/{s.exp['id']}/results?format=csv&baseline=v2")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(row["variant"], row["metric"]) for row in rows] == [
        (v, m) for v in ("v1", "v2", "v3") for m in ("correctness", "exact")
    ]
    as_json = (await s.gw.client.get(f"/experiments/{s.exp['id']}/results?baseline=v2")).json()
    v1 = as_json["variants"][0]
    assert float(rows[0]["value"]) == pytest.approx(v1["metrics"]["correctness"]["value"])
    assert [row["baseline"] for row in rows] == ["no", "no", "yes", "yes", "no", "no"]
    # Against v2, v1 is the regression now.
    assert rows[0]["outcome"] == "regression" and "a real regression" in rows[0]["verdict"]
    assert rows[2]["outcome"] == ""  # the baseline is not compared with itself


async def test_the_run_and_metric_can_be_chosen(scored: Scored) -> None:
    s = scored
    run_id = s.cells[0]["matrix_run_id"]
    r = await s.gw.client.get(f"/experiments/{s.exp['id']}/results?run={run_id}&metric=exact")
    assert r.status_code == 200
    data = r.json()
    assert data["run"]["id"] == run_id and data["primary_metric"] == "exact"
    # On exact, v1 and v2 tie at 80% and v3 is not worse: the cheapest of them is named.
    assert set(data["cost_quality"]["not_worse"]) == {v["id"] for v in s.variants}


async def test_bad_parameters_are_4xx_naming_the_parameter(scored: Scored) -> None:
    s = scored
    base = f"/experiments/{s.exp['id']}/results"
    cases = [
        ("/experiments/exp_missing/results", 404, "id"),
        (f"{base}?run=mxr_missing", 404, "run"),
        (f"{base}?baseline=nope", 400, "baseline"),
        (f"{base}?metric=nope", 400, "metric"),
        (f"{base}?format=xml", 400, "format"),
    ]
    for path, status, param in cases:
        r = await s.gw.client.get(path)
        assert r.status_code == status, (path, r.text)
        assert error_of(r)["param"] == param


async def test_an_experiment_without_cells_is_an_empty_result(gateway: Gateway) -> None:
    exp = (await gateway.client.post("/experiments", json={"name": "empty"})).json()
    r = await gateway.client.get(f"/experiments/{exp['id']}/results")
    assert r.status_code == 200
    data = r.json()
    assert data["run"] is None and data["variants"] == [] and data["comparisons"] == []
    assert "no matrix run" in data["message"]
    r = await gateway.client.get(f"/experiments/{exp['id']}/results?format=csv")
    assert r.status_code == 200 and r.text.strip() == ",".join(CSV_COLUMNS)


async def test_a_run_without_scores_still_has_its_operational_figures(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(FakeUpstream(handler=answer))
    exp = (await gw.client.post("/experiments", json={"name": "unscored"})).json()
    await add_variant(gw, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gw, exp["id"], ["hello", "world"])
    await start(gw, exp["id"])
    await finish(gw, exp["id"])
    data = (await gw.client.get(f"/experiments/{exp['id']}/results")).json()
    [variant] = data["variants"]
    assert variant["cells"] == 2 and variant["metrics"] == {}
    assert variant["latency_p50_ms"] is not None
    assert data["message"].startswith("No scores yet")


async def test_the_statistics_run_off_the_event_loop(
    scored: Scored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first results request imports scipy (seconds on a busy machine): never on the
    loop that serves the proxy."""
    import threading

    from gateway.evaluation import results as results_module

    threads: list[int] = []
    real = results_module.analyze

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(results_module, "analyze", spy)
    r = await scored.gw.client.get(f"/experiments/{scored.exp['id']}/results")
    assert r.status_code == 200
    assert threads and threads[0] != threading.get_ident()
