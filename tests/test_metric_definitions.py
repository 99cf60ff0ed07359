"""Metric definitions per project: create, list, read, edit, delete (with scores only
when confirmed), and every refusal a 400/404/409 naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import error_of
from tests.fakes import FakeUpstream
from tests.scores_helpers import a_run
from tests.test_matrix import answer

DEFS = "/metric-definitions"


@pytest.fixture
async def gw(make_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=answer))
    return gateway


async def test_crud_per_project(gw: Gateway) -> None:
    body = {
        "key": "correctness",
        "name": "Correctness",
        "description": "Is the answer right?",
        "kind": "numeric",
        "minValue": 0,
        "maxValue": 1,
        "direction": "higher",
        "scale": "0-1",
    }
    r = await gw.client.post(DEFS, json=body)
    assert r.status_code == 201, r.text
    metric = r.json()["metric"]
    assert (metric["min_value"], metric["max_value"], metric["project_id"]) == (0, 1, None)
    assert metric["name"] == "Correctness" and metric["scale"] == "0-1"
    # The same key in another project is another metric.
    r = await gw.client.post(f"{DEFS}?project=p2", json={"key": "correctness", "kind": "boolean"})
    assert r.status_code == 201 and r.json()["metric"]["project_id"] == "p2"
    r = await gw.client.post(DEFS, json={"key": "correctness"})
    assert r.status_code == 409 and error_of(r)["param"] == "key"
    assert [m["key"] for m in (await gw.client.get(DEFS)).json()["data"]] == ["correctness"]
    p2 = (await gw.client.get(f"{DEFS}?project=p2")).json()["data"]
    assert [m["kind"] for m in p2] == ["boolean"]
    r = await gw.client.patch(
        f"{DEFS}/correctness", json={"name": "Right", "direction": "lower", "max_value": 10}
    )
    assert r.status_code == 200, r.text
    changed = r.json()["metric"]
    assert (changed["name"], changed["direction"], changed["max_value"]) == ("Right", "lower", 10)
    assert changed["description"] == "Is the answer right?"  # not given: kept
    got = (await gw.client.get(f"{DEFS}/correctness")).json()["metric"]
    assert got == changed
    r = await gw.client.post(
        DEFS, json={"key": "tone", "kind": "categorical", "categories": ["rude", "ok", "kind"]}
    )
    assert r.json()["metric"]["categories"] == ["rude", "ok", "kind"]
    r = await gw.client.delete(f"{DEFS}/tone")
    assert r.status_code == 200 and r.json() == {"ok": True, "deleted_scores": 0}
    assert (await gw.client.get(f"{DEFS}/tone")).status_code == 404


async def test_refusals_name_their_field(gw: Gateway) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"key": "x", "kind": "stars"}, "kind"),
        ({"key": "x", "direction": "up"}, "direction"),
        ({"key": "x y"}, "key"),
        ({"name": "no key"}, "key"),
        ({"key": "x", "min_value": 5, "max_value": 1}, "min_value"),
        ({"key": "x", "min_value": "0"}, "min_value"),
        ({"key": "x", "kind": "categorical"}, "categories"),
        ({"key": "x", "kind": "categorical", "categories": ["a", "a"]}, "categories"),
        ({"key": "x", "kind": "categorical", "categories": []}, "categories"),
        ({"key": "x", "kind": "boolean", "max_value": 1}, "max_value"),
        ({"key": "x", "categories": ["a"]}, "categories"),
        ({"key": "x", "unit": "ms"}, "unit"),
        ({"key": "x", "name": ""}, "name"),
    ]
    for body, param in cases:
        r = await gw.client.post(DEFS, json=body)
        assert r.status_code == 400, (body, r.text)
        assert error_of(r)["param"] == param, (body, r.json())
    assert (await gw.client.get(DEFS)).json()["data"] == []
    r = await gw.client.get(f"{DEFS}/nope")
    assert r.status_code == 404 and error_of(r)["param"] == "key"
    await gw.client.post(DEFS, json={"key": "m"})
    r = await gw.client.patch(f"{DEFS}/m", json={"key": "other"})
    assert r.status_code == 400 and error_of(r)["param"] == "key"
    r = await gw.client.patch(f"{DEFS}/m", json={"kind": "stars"})
    assert r.status_code == 400 and error_of(r)["param"] == "kind"
    assert (await gw.client.get(f"{DEFS}/m")).json()["metric"]["kind"] == "numeric"


async def test_a_metric_with_scores_needs_force_to_delete_or_reshape(
    gw: Gateway,
) -> None:
    done = await a_run(gw)
    url = f"/experiments/runs/{done['id']}/scores"
    for value in (1, 2):
        r = await gw.client.post(url, json={"metricKey": "quality", "value": value})
        assert r.status_code == 201
    project = "?project=proj-1"
    r = await gw.client.delete(f"{DEFS}/quality{project}")
    assert r.status_code == 409
    assert error_of(r)["code"] == "metric_has_scores" and error_of(r)["param"] == "force"
    assert len((await gw.client.get(url)).json()["data"]) == 2
    # A change of kind or range could orphan them: confirmation again.
    r = await gw.client.patch(f"{DEFS}/quality{project}", json={"kind": "boolean"})
    assert r.status_code == 409
    r = await gw.client.patch(f"{DEFS}/quality{project}", json={"max_value": 1})
    assert r.status_code == 409
    # A name or description is not a reshape.
    r = await gw.client.patch(f"{DEFS}/quality{project}", json={"description": "How good"})
    assert r.status_code == 200
    r = await gw.client.patch(f"{DEFS}/quality{project}&force=true", json={"max_value": 5})
    assert r.status_code == 200 and r.json()["metric"]["max_value"] == 5
    # A value past the new range is refused from now on.
    r = await gw.client.post(url, json={"metricKey": "quality", "value": 6})
    assert r.status_code == 400 and error_of(r)["code"] == "out_of_range"
    r = await gw.client.delete(f"{DEFS}/quality{project}&force=true")
    assert r.status_code == 200 and r.json()["deleted_scores"] == 2
    assert (await gw.client.get(url)).json()["data"] == []
