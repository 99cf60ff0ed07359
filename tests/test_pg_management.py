"""The management routes on PostgreSQL answer as on SQLite: one scenario (a replay
experiment created and run, a matrix experiment run to completion with its cells and
results, a dataset from spans, feedback and scores, a key created and used, the keys
and the audit log listed) run in process (`create_app` + httpx's ASGI transport, the
fake upstream) on a SQLite gateway and on a PostgreSQL one, every answer compared once
the values that differ by nature (ids, times, durations) are masked.

Also the stores' own behaviour where the dialects differ: the tag and text filters,
a cursor of the wrong type (a 400, where asyncpg would refuse the parameter), the
events store, and concurrent read-then-write edits serialized by row locks."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from gateway.errors import Conflict, InvalidRequest
from gateway.store.events import EventRecord
from gateway.store.experiments import ExperimentFilter, ExperimentRecord, now_iso
from gateway.store.stores import Stores
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT
from tests.fakes import FakeUpstream
from tests.test_matrix import answer

# Values that differ between two runs of the same scenario, whatever the database.
_ID = re.compile(r"\b(?:exp|exprun|var|inp|mrun|ds|dsi|slk|evt|mdef|score|fbk)_[0-9a-f]+\b")
_HEX = re.compile(r"\b[0-9a-f]{12,32}\b")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
_VOLATILE = {"id", "key", "prefix", "next_cursor", "cursor", "at", "address"}
_VOLATILE_ENDS = ("_at", "_ms", "_s", "_id", "_ids", "_us")


def masked(value: Any) -> Any:
    """``value`` with what differs by nature masked: an id's or a time's value becomes
    "<set>" (None stays None, so whether there is one is still compared)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _VOLATILE or k.endswith(_VOLATILE_ENDS) or k in ("duration", "latency"):
                out[k] = None if v is None else "<set>"
            else:
                out[k] = masked(v)
        return out
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return _TIME.sub("<time>", _HEX.sub("<hex>", _ID.sub("<id>", value)))
    return value


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def scenario(gw: Gateway) -> dict[str, Any]:
    """The answers of every step, as the client got them."""
    c = gw.client
    seen: dict[str, Any] = {}
    # A captured call, replayed as an experiment.
    r = await c.post("/v1/chat/completions", json=CHAT)
    span_id = r.headers["x-spanlab-span-id"]
    await gw.flush()
    replay = await ok(
        await c.post("/experiments", json={"name": "replay", "original_span_id": span_id}), 201
    )
    seen["replay.run"] = await ok(await c.post(f"/experiments/{replay['id']}/run"))
    seen["replay.get"] = await ok(await c.get(f"/experiments/{replay['id']}"))
    # A 2 x 2 matrix, run to its end.
    grid = await ok(await c.post("/experiments", json={"name": "grid"}), 201)
    for n, model in enumerate(("gpt-4o-mini", "gpt-4o"), start=1):
        body = {"name": f"v{n}", "systemPrompt": f"You are {n}.", "config": {"model": model}}
        await ok(await c.post(f"/experiments/{grid['id']}/variants", json=body), 201)
    inputs = [{"key": f"k{i}", "content": f"question {i}"} for i in (1, 2)]
    await ok(await c.post(f"/experiments/{grid['id']}/inputs", json={"inputs": inputs}), 201)
    seen["matrix.start"] = await ok(
        await c.post(f"/experiments/{grid['id']}/run", json={"concurrency": 2}), 202
    )
    await asyncio.wait_for(gw.state.experiments.matrix.wait(grid["id"]), 20)
    seen["matrix.progress"] = await ok(await c.get(f"/experiments/{grid['id']}/progress"))
    detail = await ok(await c.get(f"/experiments/{grid['id']}"))
    # The cells (newest first: the order depends on timing) in the grid's order.
    cells = sorted(
        (run for run in detail["runs"] if run["matrix_run_id"]),
        key=lambda c: (c["config"]["variant_name"], c["config"]["input_key"]),
    )
    seen["matrix.cells"] = [
        (cell["config"]["variant_name"], cell["config"]["input_key"], cell["status"])
        for cell in cells
    ]
    seen["matrix.detail"] = {k: v for k, v in detail.items() if k != "runs"}
    # Feedback and scores on a cell.
    cell = cells[0]
    run_url = f"/experiments/runs/{cell['id']}"
    seen["feedback"] = await ok(
        await c.post(f"{run_url}/feedback", json={"thumbsUp": True, "note": "good"})
    )
    seen["feedback.again"] = await ok(
        await c.post(f"{run_url}/feedback", json={"thumbsUp": False, "note": "changed"})
    )
    seen["score"] = await ok(
        await c.post(f"{run_url}/scores", json={"metricKey": "correctness", "value": 4}), 201
    )
    seen["scores"] = await ok(await c.get(f"{run_url}/scores"))
    seen["results"] = await ok(await c.get(f"/experiments/{grid['id']}/results"))
    seen["experiments"] = await ok(await c.get("/experiments", params={"limit": 10}))
    # A dataset from the captured call and the grid's spans.
    dataset = await ok(await c.post("/datasets", json={"name": "from traffic"}), 201)
    spans = [span_id, *(cell["result_span_id"] for cell in cells)]
    seen["dataset.from_spans"] = await ok(
        await c.post(f"/datasets/{dataset['id']}/items/from-spans", json={"spanIds": spans}), 201
    )
    seen["dataset.items"] = await ok(await c.get(f"/datasets/{dataset['id']}/items"))
    seen["dataset.versions"] = await ok(await c.get(f"/datasets/{dataset['id']}/versions"))
    # Keys: the first turns keys on; a proxy key used, and refused once revoked.
    admin = await ok(await c.post("/keys", json={"name": "ops", "scopes": ["admin"]}), 201)
    as_admin = {"x-spanlab-key": admin["key"]}
    bot = await ok(
        await c.post("/keys", json={"name": "bot", "scopes": ["proxy"]}, headers=as_admin), 201
    )
    r = await c.post("/v1/chat/completions", json=CHAT, headers={"x-spanlab-key": bot["key"]})
    seen["proxy.with_key"] = r.status_code
    seen["proxy.without_key"] = (await c.post("/v1/chat/completions", json=CHAT)).status_code
    await ok(await c.delete(f"/keys/{bot['id']}", headers=as_admin))
    r = await c.post("/v1/chat/completions", json=CHAT, headers={"x-spanlab-key": bot["key"]})
    seen["proxy.revoked"] = r.status_code
    # The key's tokens are charged once its span is stored: the same on both, only then.
    await gw.state.writer.flush(5.0)
    seen["keys"] = await ok(await c.get("/keys", headers=as_admin))
    seen["projects"] = await ok(await c.get("/projects", headers=as_admin))
    audit = await ok(await c.get("/audit", params={"limit": 200}, headers=as_admin))
    seen["audit"] = [
        (e["type"], e["payload"].get("actor"), e["payload"].get("detail")) for e in audit["data"]
    ]
    experiment_entries = await ok(
        await c.get("/audit", params={"type": "EXPERIMENT.", "limit": 200}, headers=as_admin)
    )
    seen["audit.experiments"] = len(experiment_entries["data"])
    return seen


async def test_the_management_routes_answer_on_postgresql_as_on_sqlite(
    make_gateway: GatewayFactory, pg_url: str
) -> None:
    answers = {}
    for backend, db in (("sqlite", None), ("postgresql", pg_url)):
        overrides = {"db": db} if db else {}
        gw: Gateway = await make_gateway(FakeUpstream(handler=answer), **overrides)
        assert gw.state.stores.database.dialect == backend
        answers[backend] = masked(await scenario(gw))
    lite, pg = answers["sqlite"], answers["postgresql"]
    # What the scenario must have done, on each (so equal answers are not both empty).
    for seen in (lite, pg):
        assert seen["replay.run"]["status"] == "completed"
        assert seen["matrix.progress"]["done"] == 4 and seen["matrix.progress"]["failed"] == 0
        assert [status for *_, status in seen["matrix.cells"]] == ["completed"] * 4
        assert seen["feedback.again"]["feedback"]["thumbs_up"] is False
        assert len(seen["dataset.items"]["data"]) == 5
        assert (seen["proxy.with_key"], seen["proxy.without_key"]) == (200, 401)
        assert seen["proxy.revoked"] == 401
        assert {"experiment.run", "dataset.changed", "key.created", "key.revoked"} <= {
            t for t, *_ in seen["audit"]
        }
        assert seen["audit.experiments"] >= 6  # the prefix filter is case-insensitive
    for step in lite:
        assert pg[step] == lite[step], step


# --- the stores themselves, on each backend (the ``stores`` fixture) ---------------------


def experiment(n: int, **values: Any) -> dict[str, Any]:
    stamp = now_iso()
    return ExperimentRecord(
        id=f"exp_{n:04d}",
        name=f"Experiment {n}",
        original_span_id="s",
        original_trace_id="t",
        original_request={"model": "m"},
        modified_request={"model": "m"},
        created_at=stamp,
        updated_at=stamp,
        **values,
    ).as_dict()


async def test_filters_and_cursors_behave_alike(stores: Stores) -> None:
    store = stores.experiments
    await store.insert_experiment(experiment(1, tags=["Alpha", "beta"], description="Mixed CASE"))
    await store.insert_experiment(experiment(2, tags=["alphabet"], favorite=True))
    await store.insert_experiment(experiment(3, tags=[], description="100% sure_thing"))

    async def ids(**filters: Any) -> list[str]:
        page = await store.list_experiments(ExperimentFilter(**filters), limit=10)
        return sorted(e["id"] for e in page.items)

    assert await ids(tag="Alpha") == ["exp_0001"]  # a whole tag, its case kept
    assert await ids(tag="alpha") == []
    assert await ids(text="mixed case") == ["exp_0001"]  # text: any case (ASCII)
    assert await ids(text="100%") == ["exp_0003"]  # LIKE's wildcards taken literally
    assert await ids(text="s_re") == []  # not "sure": "_" is no wildcard
    assert await ids(text="sure_thing") == ["exp_0003"]
    assert await ids(favorite=True) == ["exp_0002"]
    first = await store.list_experiments(ExperimentFilter(), limit=2)
    assert first.next_cursor is not None
    rest = await store.list_experiments(ExperimentFilter(), limit=2, cursor=first.next_cursor)
    assert len(first.items) + len(rest.items) == 3 and rest.next_cursor is None
    # A cursor of numbers where the keys are text: refused, not a database error.
    from gateway.store.pagination import encode_cursor

    with pytest.raises(InvalidRequest, match="cursor"):
        await store.list_experiments(ExperimentFilter(), limit=2, cursor=encode_cursor([1, 2]))


async def test_the_events_store_appends_and_lists_newest_first(stores: Stores) -> None:
    for n in range(3):
        await stores.events.append(
            EventRecord(
                type="experiment.run.completed" if n else "access.denied",
                at=f"2026-01-01T00:00:0{n}.000000Z",
                subject_id=f"s{n}",
                related_ids=[f"r{n}"],
                payload={"n": n, "nested": {"ok": True}},
            )
        )
    listed = await stores.events.list_events(limit=10)
    assert [e.subject_id for e in listed] == ["s2", "s1", "s0"]
    assert listed[0].payload == {"n": 2, "nested": {"ok": True}} and listed[0].related_ids == ["r2"]
    only = await stores.events.list_events(type="access.denied")
    assert [e.subject_id for e in only] == ["s0"]


async def test_concurrent_edits_of_one_experiment_are_serialized(stores: Stores) -> None:
    """Read, check the version, write: two edits at once (two pooled connections on
    PostgreSQL) cannot both pass the check; runs started at once, only one."""
    store = stores.experiments
    await store.insert_experiment(experiment(1))
    results = await asyncio.gather(
        *(
            store.update_experiment(
                "exp_0001", {"name": f"n{i}"}, expected_version=1, changes={"name": i}
            )
            for i in range(6)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert sum(isinstance(r, Conflict) for r in results) == 5, results
    history = await store.experiment_history("exp_0001")
    assert [h["version"] for h in history] == [2, 1]

    def run(n: int) -> dict[str, Any]:
        return {
            "id": f"exprun_{n}",
            "experiment_id": "exp_0001",
            "status": "running",
            "request": {"model": "m"},
            "started_at": now_iso(),
        }

    started = await asyncio.gather(
        *(store.start_experiment_run(run(n), stale_before="2000") for n in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, dict) for r in started) == 1, started
    assert all(isinstance(r, Conflict) for r in started if not isinstance(r, dict))
    assert [r["status"] for r in await store.list_experiment_runs("exp_0001")] == ["running"]
