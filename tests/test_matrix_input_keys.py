"""Inputs sent without a key are numbered on from the experiment's own keys: a second
paste of lines adds to the inputs instead of colliding with the first (409)."""

from __future__ import annotations

from gateway.experiments.variants import parse_inputs
from tests.conftest import Gateway
from tests.test_matrix import add_inputs, matrix_experiment


def test_unnamed_inputs_skip_the_keys_taken_in_the_batch_and_the_experiment() -> None:
    parsed = parse_inputs({"inputs": ["a", {"key": "input-2", "content": "b"}, "c"]}, {"input-1"})
    assert [p["key"] for p in parsed] == ["input-3", "input-2", "input-4"]


async def test_a_second_paste_adds_inputs(gateway: Gateway) -> None:
    experiment = await matrix_experiment(gateway)
    await add_inputs(gateway, experiment["id"], ["one", "two"])
    await add_inputs(gateway, experiment["id"], ["three"])  # was a 409: input-1 again
    shown = (await gateway.client.get(f"/experiments/{experiment['id']}")).json()
    assert {i["key"]: i["content"] for i in shown["inputs"]} == {
        "input-1": "one",
        "input-2": "two",
        "input-3": "three",
    }
