"""``POST /experiments/{id}/estimate``: calls and cost of a matrix run before it runs,
from the inputs' captured usage where known, else a stated approximation; nothing is
written."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.experiments.estimate import APPROXIMATION, DEFAULT_COMPLETION
from tests.conftest import Gateway
from tests.experiments_helpers import capture, create, error_of
from tests.test_matrix import add_inputs, add_variant, assert_nothing_written, matrix_experiment


async def estimate(gw: Gateway, experiment_id: str, **body: Any) -> dict[str, Any]:
    r = await gw.client.post(f"/experiments/{experiment_id}/estimate", json=body)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_counts_calls_and_prices_captured_and_approximated_inputs(gateway: Gateway) -> None:
    captured = await capture(gateway)
    usage = captured["usage"]
    assert usage["prompt_tokens"] and usage["completion_tokens"]
    exp = await matrix_experiment(gateway)
    mini = await add_variant(gateway, exp["id"], name="mini", config={"model": "gpt-4o-mini"})
    big = await add_variant(
        gateway, exp["id"], name="4o", config={"model": "gpt-4o", "max_tokens": 50}
    )
    text = "x" * 400  # 400 characters: 100 prompt tokens by the approximation
    [plain, real] = await add_inputs(
        gateway,
        exp["id"],
        [
            {"key": "plain", "content": text},
            {"key": "real", "request": captured["request"], "sourceSpanId": captured["span_id"]},
        ],
    )
    gateway.upstream.bodies.clear()
    result = await estimate(gateway, exp["id"], repetitions=3)
    assert result["calls"] == 2 * 2 * 3
    assert (result["variants"], result["inputs"], result["repetitions"]) == (2, 2, 3)
    assert result["basis"]["captured"] == [real["id"]]
    assert result["basis"]["approximated"] == [plain["id"]]
    assert result["basis"]["approximation"] == APPROXIMATION
    rows = {row["name"]: row for row in result["per_variant"]}
    # mini: plain is 100 prompt tokens + the default completion; real its captured usage.
    assert rows["mini"]["calls"] == 6
    assert rows["mini"]["prompt_tokens"] == 3 * (100 + usage["prompt_tokens"])
    assert rows["mini"]["completion_tokens"] == 3 * (
        DEFAULT_COMPLETION + usage["completion_tokens"]
    )
    # 4o: its max_tokens stands for the completion of the approximated input.
    assert rows["4o"]["completion_tokens"] == 3 * (50 + usage["completion_tokens"])
    table = gateway.state.experiments.matrix.prices
    want_mini = 3 * (
        table.cost("gpt-4o-mini", 100, DEFAULT_COMPLETION)
        + table.cost("gpt-4o-mini", usage["prompt_tokens"], usage["completion_tokens"])
    )
    assert rows["mini"]["cost_usd"] == pytest.approx(want_mini)
    assert rows["4o"]["cost_usd"] > rows["mini"]["cost_usd"] > 0
    assert result["cost_usd"] == pytest.approx(rows["mini"]["cost_usd"] + rows["4o"]["cost_usd"])
    assert result["unpriced_calls"] == 0
    # Only the chosen ids, once each.
    one = await estimate(gateway, exp["id"], variantIds=[big["id"]], inputIds=[plain["id"]])
    assert one["calls"] == 1 and [r["variant_id"] for r in one["per_variant"]] == [big["id"]]
    assert one["prompt_tokens"] == 100 and one["completion_tokens"] == 50
    assert mini["id"] not in {r["variant_id"] for r in one["per_variant"]}
    await assert_nothing_written(gateway, exp["id"])


async def test_an_unpriced_model_gets_no_cost_rather_than_a_guess(gateway: Gateway) -> None:
    exp = await matrix_experiment(gateway)
    await add_variant(gateway, exp["id"], name="local", config={"model": "local/llama"})
    await add_inputs(gateway, exp["id"], ["hello"])
    result = await estimate(gateway, exp["id"])
    assert result["calls"] == 1 and result["unpriced_calls"] == 1
    assert result["cost_usd"] is None and result["per_variant"][0]["cost_usd"] is None


async def test_a_replay_experiments_own_call_is_its_captured_input(gateway: Gateway) -> None:
    captured = await capture(gateway)
    exp = await create(gateway, original_span_id=captured["span_id"])
    await add_variant(gateway, exp["id"], name="4o", kind="override", config={"model": "gpt-4o"})
    r = await gateway.client.post(f"/experiments/{exp['id']}/estimate")
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["calls"] == 1 and result["basis"]["captured"] == ["original"]
    assert result["prompt_tokens"] == captured["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"variantIds": ["var_nope"]}, 404, "not_found", "variantIds"),
        ({"inputIds": ["inp_nope"]}, 404, "not_found", "inputIds"),
        ({"variantIds": []}, 422, "empty_matrix", "variantIds"),
        ({"repetitions": 0}, 422, "validation_failed", "repetitions"),
        ({"resume": True}, 422, "validation_failed", "resume"),
        ({"colour": "red"}, 422, "validation_failed", "colour"),
    ],
)
async def test_bad_bodies_are_refused_and_nothing_is_written(
    gateway: Gateway, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    exp = await matrix_experiment(gateway)
    await add_variant(gateway, exp["id"], name="a", config={"model": "gpt-4o-mini"})
    await add_inputs(gateway, exp["id"], ["hello"])
    r = await gateway.client.post(f"/experiments/{exp['id']}/estimate", json=body)
    assert r.status_code == status, r.text
    error = error_of(r)
    assert (error["code"], error["param"]) == (code, param)
    await assert_nothing_written(gateway, exp["id"])


async def test_an_unknown_experiment_and_an_empty_matrix_are_refused(gateway: Gateway) -> None:
    r = await gateway.client.post("/experiments/exp_nope/estimate", json={})
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    exp = await matrix_experiment(gateway)
    r = await gateway.client.post(f"/experiments/{exp['id']}/estimate", json={})
    assert r.status_code == 422 and error_of(r)["code"] == "empty_matrix"
    r = await gateway.client.post(f"/experiments/{exp['id']}/estimate", content=b"{nope")
    assert r.status_code in (400, 415)
