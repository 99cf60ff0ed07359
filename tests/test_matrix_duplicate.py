"""Duplicating an experiment copies its variants and inputs (not its runs)."""

from __future__ import annotations

from tests.conftest import Gateway
from tests.experiments_helpers import capture, create
from tests.test_matrix import add_inputs, add_variant, finish, matrix_experiment, start


async def test_a_duplicate_has_copies_of_the_variants_and_inputs(gateway: Gateway) -> None:
    exp = await matrix_experiment(gateway)
    await add_variant(
        gateway, exp["id"], name="a", systemPrompt="Be brief.", config={"model": "gpt-4o-mini"}
    )
    await add_variant(gateway, exp["id"], name="b", config={"model": "gpt-4o", "temperature": 0})
    await add_inputs(gateway, exp["id"], ["one", {"key": "k2", "content": "two"}, "three"])
    await start(gateway, exp["id"])
    await finish(gateway, exp["id"])
    r = await gateway.client.post(f"/experiments/{exp['id']}/duplicate", json={"name": "copy"})
    assert r.status_code == 201, r.text
    copy_id = r.json()["id"]
    source = (await gateway.client.get(f"/experiments/{exp['id']}")).json()
    copy = (await gateway.client.get(f"/experiments/{copy_id}")).json()
    fields = ("name", "description", "system_prompt", "config", "kind", "position")
    assert [{k: v[k] for k in fields} for v in copy["variants"]] == [
        {k: v[k] for k in fields} for v in source["variants"]
    ]
    fields = ("key", "content", "variables", "request", "expected_output", "position")
    assert [{k: i[k] for k in fields} for i in copy["inputs"]] == [
        {k: i[k] for k in fields} for i in source["inputs"]
    ]
    assert {v["experiment_id"] for v in copy["variants"] + copy["inputs"]} == {copy_id}
    old_ids = {v["id"] for v in source["variants"] + source["inputs"]}
    assert old_ids.isdisjoint(v["id"] for v in copy["variants"] + copy["inputs"])
    # Results stay with the source; the copy runs its own matrix.
    assert copy["matrix_runs"] == [] and copy["runs"] == []
    assert len(source["matrix_runs"]) == 1
    await start(gateway, copy_id)
    assert (await finish(gateway, copy_id))["done"] == 6
    # Editing the copy leaves the source as it was.
    r = await gateway.client.delete(f"/experiments/{copy_id}/variants/{copy['variants'][0]['id']}")
    assert r.status_code == 204
    again = (await gateway.client.get(f"/experiments/{exp['id']}")).json()
    assert len(again["variants"]) == 2


async def test_a_replay_experiment_duplicates_as_before(gateway: Gateway) -> None:
    original = await capture(gateway)
    exp = await create(gateway, original_span_id=original["span_id"])
    r = await gateway.client.post(f"/experiments/{exp['id']}/duplicate")
    assert r.status_code == 201, r.text
    copy = (await gateway.client.get(f"/experiments/{r.json()['id']}")).json()
    assert "variants" not in copy  # a seed-1 experiment nobody grew reads as it always has
    assert copy["original_span_id"] == original["span_id"]
