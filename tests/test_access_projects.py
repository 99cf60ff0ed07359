"""Project keys (`gateway.api.project_scope`): a key bound to a project reads and
changes only that project. The main test is generated from the route table: every
read and write route, called by project A's key with project B's ids (and, for the
writes, a body naming project B and B's objects), never answers B's data nor changes
it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.access.routes import ROUTE_SCOPES
from gateway.api.project_scope import fence_for
from tests.access_helpers import ADMIN_KEY, create_key
from tests.conftest import Gateway, GatewayFactory
from tests.projects_helpers import ADMIN, Seeded, marker, ok, seed_project, two_projects

# Streams that never end by themselves (tested apart below).
ENDLESS = {"GET /events"}
# A route a project key cannot reach at all (admin) or that holds no project's data.
NO_PROJECT_DATA = {"GET /evaluators/types", "GET /models"}


def fill(path: str, ids: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return ids.get(name, "x1")

    return re.sub(r"\{([^}]+)\}", one, path)


def hostile_body(b: Seeded) -> dict[str, Any]:
    """A body naming project B and B's objects in every field a route might read."""
    return {
        "project_id": b.project,
        "projectId": b.project,
        "name": "from A",
        "original_span_id": b.ids["span_id"],
        "span_ids": [b.ids["span_id"]],
        "dataset_id": b.ids["dataset_id"],
        "datasetId": b.ids["dataset_id"],
        "session_id": b.ids["session_id"],
        "sessionId": b.ids["session_id"],
        "key": "metric_from_a",
        "model": "gpt-4o-mini",
        "prompt": "hi",
        "experiments": [{"name": "imported", "project_id": b.project}],
    }


def leaks(text: str, b: Seeded) -> list[str]:
    """B's marker, or any of B's ids, in an answer."""
    found = [marker(b.project)] if marker(b.project) in text else []
    return found + [v for k, v in b.ids.items() if k != "key" and v in text]


async def b_state(gw: Gateway, b: Seeded) -> dict[str, Any]:
    """What project B holds, as B's own key reads it."""
    client, h, ids = gw.client, b.headers(), b.ids
    out: dict[str, Any] = {}
    for name, path in {
        "experiment": f"/experiments/{ids['experiment_id']}",
        "dataset": f"/datasets/{ids['dataset_id']}",
        "items": f"/datasets/{ids['dataset_id']}/items",
        "session": f"/playground/sessions/{ids['session_id']}",
        "span_scores": f"/spans/{ids['span_id']}/scores",
        "span_feedback": f"/spans/{ids['span_id']}/feedback",
        "metric": f"/metric-definitions/{ids['key']}",
        "experiments": "/experiments",
        "datasets": "/datasets",
        "variants": f"/experiments/{ids['experiment_id']}/variants",
        "evaluators": f"/experiments/{ids['experiment_id']}/evaluators",
    }.items():
        response = await client.get(path, headers=h)
        assert response.status_code == 200, (name, response.text)
        out[name] = response.json()
    return out


async def test_a_project_key_never_sees_nor_changes_another_projects_data(
    make_gateway: GatewayFactory,
) -> None:
    gw, a, b = await two_projects(make_gateway)
    before = await b_state(gw, b)
    tried = 0
    for route, need in sorted(ROUTE_SCOPES.items()):
        if need not in ("read", "write") or route in ENDLESS:
            continue
        method, path = route.split(" ", 1)
        url = fill(path, b.ids)
        body = hostile_body(b) if method in ("POST", "PUT", "PATCH") else None
        response = await gw.client.request(method, url, json=body, headers=a.headers())
        tried += 1
        found = leaks(response.text, b)
        if response.status_code < 400:
            assert not found, (route, response.status_code, found)
            # A write that succeeded touched none of B's objects (it names none).
            assert not any(f"{{{p}" in path for p in b.ids), (route, response.text)
        else:
            assert response.status_code in (403, 404, 409, 422, 400), (route, response.text)
            assert marker(b.project) not in response.text, route
        names_b_object = any(
            f"{{{p}}}" in path or f"{{{p}:" in path for p in b.ids if p not in ("key",)
        )
        if names_b_object:
            # Another project's object is a 404, as a missing one is.
            assert response.status_code == 404, (route, response.status_code, response.text)
    # Every read and write route of the table was tried (not a vacuous loop).
    assert tried == sum(
        1 for r, n in ROUTE_SCOPES.items() if n in ("read", "write") and r not in ENDLESS
    )
    assert tried > 80
    after = await b_state(gw, b)
    assert after == before


async def test_the_list_routes_show_a_key_its_own_project(make_gateway: GatewayFactory) -> None:
    gw, a, b = await two_projects(make_gateway)
    for path in (
        "/spans",
        "/spans/facets",
        "/threads",
        "/experiments",
        "/experiments/export",
        "/datasets",
        "/playground/sessions",
        "/metric-definitions",
        "/stats?group_by=total",
        f"/experiments/by-span/{a.ids['span_id']}",
        f"/traces/{a.ids['trace_id']}",
    ):
        response = await gw.client.get(path, headers=a.headers())
        assert response.status_code == 200, (path, response.text)
        answer = response.text
        assert not leaks(answer, b), (path, leaks(answer, b))
        if path.startswith("/stats"):
            # A's call, its experiment's replay, its playground call
            assert response.json()["data"][0]["calls"] == 3
        else:
            assert marker(a.project) in answer or a.ids["span_id"] in answer, (path, answer)
    # A global key (no project) still sees both, as before.
    everything = (await gw.client.get("/spans", headers=ADMIN)).json()["data"]
    assert {s["project_id"] for s in everything} == {"proj-a", "proj-b"}
    projects = (await gw.client.get("/projects", headers=a.headers())).json()["data"]
    assert [p["id"] for p in projects] == ["proj-a"]


async def test_asking_for_another_project_is_403_and_new_things_go_to_the_keys_project(
    make_gateway: GatewayFactory,
) -> None:
    gw, a, b = await two_projects(make_gateway)
    client, h = gw.client, a.headers()
    for path in ("/spans?project=proj-b", "/experiments?project=proj-b", "/stats?project=proj-b"):
        refused = await client.get(path, headers=h)
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "project_forbidden"
    # Naming its own project is fine.
    assert (await client.get("/spans?project=proj-a", headers=h)).status_code == 200
    refused = await client.post("/datasets", json={"name": "x", "project_id": "proj-b"}, headers=h)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "project_forbidden"
    made = await ok(await client.post("/datasets", json={"name": "mine"}, headers=h), 201)
    assert made["project_id"] == "proj-a"
    experiment = await ok(
        await client.post(
            "/experiments", json={"original_span_id": a.ids["span_id"], "name": "n"}, headers=h
        ),
        201,
    )
    assert experiment["project_id"] == "proj-a"
    moved = await client.patch(
        f"/experiments/{experiment['id']}", json={"project_id": "proj-b"}, headers=h
    )
    assert moved.status_code == 403
    imported = await ok(
        await client.post(
            "/experiments/import?on_conflict=copy",
            json=(await client.get(f"/experiments/{experiment['id']}/export", headers=h)).json(),
            headers=h,
        ),
        201,
    )
    assert [e["project_id"] for e in imported["data"]] == ["proj-a"]
    metric = await ok(
        await client.post("/metric-definitions", json={"key": "mine"}, headers=h), 201
    )
    assert metric["metric"]["project_id"] == "proj-a"
    # B's key does not see what A made.
    b_list = (await client.get("/datasets", headers=b.headers())).json()["data"]
    assert "mine" not in [d["name"] for d in b_list]


async def test_another_projects_object_is_a_404_like_a_missing_one(
    make_gateway: GatewayFactory,
) -> None:
    gw, a, b = await two_projects(make_gateway)
    for template in (
        "/experiments/{experiment_id}",
        "/datasets/{dataset_id}",
        "/spans/{span_id}",
        "/playground/sessions/{session_id}",
        "/experiments/runs/{run_id}/scores",
        "/traces/{trace_id}",
    ):
        theirs = await gw.client.get(fill(template, b.ids), headers=a.headers())
        missing = await gw.client.get(
            fill(template, {k: v[:-4] + "0000" for k, v in b.ids.items()}), headers=a.headers()
        )
        assert theirs.status_code == missing.status_code == 404, template
        error, absent = theirs.json()["error"], missing.json()["error"]
        assert {k: v for k, v in error.items() if k != "message"} == {
            k: v for k, v in absent.items() if k != "message"
        }, template
        assert re.sub(r"'[^']*'", "'?'", error["message"]) == re.sub(
            r"'[^']*'", "'?'", absent["message"]
        ), template


async def test_the_default_project_key_sees_what_names_no_project(
    make_gateway: GatewayFactory,
) -> None:
    gw, a, _b = await two_projects(make_gateway)
    default = await seed_project(gw, "default")
    spans = (await gw.client.get("/spans", headers=default.headers())).json()["data"]
    assert spans and {s["project_id"] for s in spans} == {None}
    threads = (await gw.client.get("/threads", headers=default.headers())).json()["data"]
    assert {t["thread_id"] for t in threads} == {
        f"thread-{marker('default')}",
        f"playground:{default.ids['session_id']}",
    }
    metrics = (await gw.client.get("/metric-definitions", headers=default.headers())).json()
    assert {m["key"] for m in metrics["data"]} == {"quality", "metric_default"}
    assert (
        await gw.client.get(f"/experiments/{a.ids['experiment_id']}", headers=default.headers())
    ).status_code == 404
    # And project A's key does not see the default project's.
    theirs = await gw.client.get(f"/spans/{default.ids['span_id']}", headers=a.headers())
    assert theirs.status_code == 404


async def test_the_live_stream_carries_only_the_keys_project(
    make_gateway: GatewayFactory,
) -> None:
    from starlette.requests import Request

    from gateway.access.guard import PRINCIPAL
    from gateway.api.events import named_event
    from gateway.api.system import events

    gw, a, _b = await two_projects(make_gateway)
    principal = gw.app.state.access.authenticate(a.keys["write"])
    assert principal is not None and principal.project_id == "proj-a"
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/events",
        "headers": [],
        "query_string": b"",
        "app": gw.app,
        PRINCIPAL: principal,
    }
    response = await events(Request(scope))
    stream = response.body_iterator  # type: ignore[attr-defined]
    await stream.__anext__()  # connected
    broadcaster = gw.state.events
    broadcaster.publish({"span_id": "b1", "project_id": "proj-b"})
    broadcaster.publish(named_event("x.y", {"project_id": "proj-b", "id": "b2"}))
    broadcaster.publish({"span_id": "a1", "project_id": "proj-a"})
    broadcaster.publish(named_event("x.y", {"project_id": "proj-a", "id": "a2"}))
    got = [await stream.__anext__(), await stream.__anext__()]
    await stream.aclose()
    text = b"".join(g if isinstance(g, bytes) else g.encode() for g in got)
    assert b'"a1"' in text and b'"a2"' in text
    assert b"proj-b" not in text


def test_the_fence_covers_every_read_and_write_route() -> None:
    """Every route a project key can reach is fenced (a new one is, by its path)."""
    unfenced = [
        route
        for route, need in ROUTE_SCOPES.items()
        if need in ("read", "write") and fence_for(*route.split(" ", 1)) is None
    ]
    assert unfenced == []


@pytest.mark.parametrize("scopes", [["admin"], ["read", "admin"]])
async def test_a_project_key_cannot_be_admin(
    make_gateway: GatewayFactory, scopes: list[str]
) -> None:
    gw = await make_gateway(admin_key=ADMIN_KEY)
    await ok(await gw.client.post("/projects", json={"id": "p1"}, headers=ADMIN), 201)
    refused = await gw.client.post(
        "/keys", json={"name": "k", "scopes": scopes, "project_id": "p1"}, headers=ADMIN
    )
    assert refused.status_code == 400
    made = await create_key(gw, "k", ["read", "write"], project_id="p1")
    assert made["scopes"] == ["read", "write"]


def test_the_store_and_access_agree_on_the_default_project() -> None:
    from gateway.access.keys import DEFAULT_PROJECT
    from gateway.store import sqlwhere

    assert sqlwhere.DEFAULT_PROJECT == DEFAULT_PROJECT


async def test_a_body_cannot_point_a_project_keys_objects_at_another_projects(
    make_gateway: GatewayFactory,
) -> None:
    """On A's own objects, a body naming B's span, dataset or session is a 404."""
    gw, a, b = await two_projects(make_gateway)
    client, h, theirs = gw.client, a.headers(), b.ids
    ours = f"/experiments/{a.ids['experiment_id']}"
    source = {"variables": {"q": "x"}, "source_span_id": theirs["span_id"]}
    for method, path, body in (
        ("POST", f"{ours}/inputs", {"inputs": [source]}),
        ("POST", f"{ours}/inputs", {"datasetId": theirs["dataset_id"]}),
        ("POST", f"/datasets/{a.ids['dataset_id']}/items", [source]),
        ("POST", f"/datasets/{a.ids['dataset_id']}/items", {"items": [source]}),
        ("PATCH", f"/datasets/{a.ids['dataset_id']}/items/{a.ids['item_id']}", source),
        ("POST", "/datasets", {"name": "n", "items": [source]}),
        (
            "POST",
            f"/datasets/{a.ids['dataset_id']}/items/from-spans",
            {"span_ids": [theirs["span_id"]]},
        ),
        ("POST", "/experiments", {"original_span_id": theirs["span_id"]}),
        (
            "POST",
            "/playground/complete",
            {"model": "gpt-4o-mini", "prompt": "x", "session_id": theirs["session_id"]},
        ),
    ):
        response = await client.request(method, path, json=body, headers=h)
        assert response.status_code == 404, (method, path, response.text)
        assert marker(b.project) not in response.text
    # The same bodies with A's own ids work (the check is not refusing everything).
    mine = {"variables": {"q": "x"}, "source_span_id": a.ids["span_id"]}
    ok_items = await client.post(f"/datasets/{a.ids['dataset_id']}/items", json=[mine], headers=h)
    assert ok_items.status_code == 201, ok_items.text
    from_spans = await client.post(
        f"/datasets/{a.ids['dataset_id']}/items/from-spans",
        json={"span_ids": [a.ids["span_id"]]},
        headers=h,
    )
    assert from_spans.status_code == 201, from_spans.text


async def test_a_project_key_imports_a_csv_file_into_its_dataset(
    make_gateway: GatewayFactory,
) -> None:
    """A raw import takes its options from the query string: the fence adds nothing."""
    gw, a, _b = await two_projects(make_gateway)
    response = await gw.client.post(
        f"/datasets/{a.ids['dataset_id']}/import?expected_column=answer",
        content=b"question,answer\nwho,me\n",
        headers={**a.headers(), "content-type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    refused = await gw.client.post(
        f"/datasets/{a.ids['dataset_id']}/import?project=proj-b",
        content=b"question,answer\nwho,me\n",
        headers={**a.headers(), "content-type": "text/csv"},
    )
    assert refused.status_code == 403


async def test_on_its_own_objects_a_project_key_is_answered_as_a_global_key_is(
    make_gateway: GatewayFactory,
) -> None:
    """The fence takes nothing from a key's own project: every read route, on A's ids,
    answers A's key with the status it answers the admin key asking for project A (a
    fence that broke a route, e.g. by a query parameter it refuses, would differ)."""
    gw, a, _b = await two_projects(make_gateway)
    tried = 0
    for route, need in sorted(ROUTE_SCOPES.items()):
        method, path = route.split(" ", 1)
        if method != "GET" or need != "read" or path.endswith("/events"):
            continue
        url = fill(path, a.ids)
        mine = await gw.client.get(url, headers=a.headers())
        # The admin key names the project, as the fence does for A's key.
        admins = await gw.client.get(url, params={"project": a.project}, headers=ADMIN)
        assert mine.status_code == admins.status_code, (route, mine.text, admins.text)
        tried += 1
    assert tried > 30


async def test_restoring_a_version_from_another_project_is_refused(
    make_gateway: GatewayFactory,
) -> None:
    """An admin moved B's experiment into A: A's key may not restore the version that
    was B's (it would move the experiment back into B)."""
    gw, a, b = await two_projects(make_gateway)
    eid = b.ids["experiment_id"]
    moved = await gw.client.patch(
        f"/experiments/{eid}", json={"project_id": a.project}, headers=ADMIN
    )
    assert moved.status_code == 200, moved.text
    history = (await gw.client.get(f"/experiments/{eid}/history", headers=a.headers())).json()
    versions = {h["version"]: h["snapshot"].get("project_id") for h in history["data"]}
    old = next(v for v, p in versions.items() if p == b.project)
    new = next(v for v, p in versions.items() if p == a.project)
    refused = await gw.client.post(f"/experiments/{eid}/history/{old}/restore", headers=a.headers())
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "project_forbidden"
    still = await ok(await gw.client.get(f"/experiments/{eid}", headers=a.headers()))
    assert still["project_id"] == a.project
    restored = await gw.client.post(
        f"/experiments/{eid}/history/{new}/restore", headers=a.headers()
    )
    assert restored.status_code == 200, restored.text
