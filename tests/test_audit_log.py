"""The audit log: every audited action leaves exactly one entry saying who, when, from
where and what; ``GET /audit`` filters and pages them (admin only); no key, hash,
cookie or request body is ever in an entry (canary)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
import orjson

from gateway.access.guard import SESSION_COOKIE
from gateway.access.keys import hash_key
from tests.access_helpers import ADMIN_KEY, KeyedGateway, keyed_gateway
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT
from tests.sql_helpers import make_gateway_on_each_backend

_ = make_gateway_on_each_backend  # every test here runs on SQLite, then on PostgreSQL

ADMIN = {"x-spanlab-key": ADMIN_KEY}
ORIGIN = {"origin": "http://spanlab.test"}
BODY_CANARY = "body-canary-7f3a9c"
# Events other rooms write as a side effect of an action (not the action's entry).
SIDE_EFFECTS = {"experiment.run.completed", "playground.completion"}


async def all_events(gw: Gateway) -> list[dict[str, Any]]:
    await gw.app.state.access.flush()  # refusals are written in batches
    rows = await gw.state.stores.database.fetch("SELECT * FROM events ORDER BY at, id")  # type: ignore[attr-defined]
    return [dict(row) for row in rows]


@dataclass
class Step:
    type: str
    act: Callable[[KeyedGateway, dict[str, Any]], Awaitable[httpx.Response]]
    subject: Callable[[dict[str, Any], httpx.Response], str | None]
    actor: str = "admin"  # the key id of the actor ("admin": the admin key's)


def _id(_: dict[str, Any], r: httpx.Response) -> str | None:
    value: str = r.json()["id"]
    return value


async def _key_created(k: KeyedGateway, s: dict[str, Any]) -> httpx.Response:
    r = await k.gw.client.post("/keys", json={"name": "ci", "scopes": ["read"]}, headers=ADMIN)
    s["key"] = r.json()
    return r


async def proxy_call(gw: Gateway, **headers: str) -> str:
    """A call through the proxy; its span's id (the span is stored once flushed)."""
    r = await gw.client.post("/v1/chat/completions", json=CHAT, headers={**ADMIN, **headers})
    assert r.status_code == 200, r.text
    return r.headers["x-spanlab-span-id"]


async def _experiment_created(k: KeyedGateway, s: dict[str, Any]) -> httpx.Response:
    span_id = await proxy_call(k.gw)
    r = await k.gw.client.post("/experiments", json={"original_span_id": span_id}, headers=ADMIN)
    s["experiment"] = r.json()["id"]
    return r


async def _dataset_created(k: KeyedGateway, s: dict[str, Any]) -> httpx.Response:
    r = await k.gw.client.post("/datasets", json={"name": "qa"}, headers=ADMIN)
    s["dataset"] = r.json()["id"]
    return r


async def _sign_in(k: KeyedGateway, s: dict[str, Any]) -> httpx.Response:
    r = await k.gw.client.post("/session", json={"key": k.keys["write"]}, headers=ORIGIN)
    s["cookie"] = SimpleCookie(r.headers["set-cookie"])[SESSION_COOKIE].value
    return r


async def _run(k: KeyedGateway, s: dict[str, Any]) -> httpx.Response:
    r = await k.gw.client.post(f"/experiments/{s['experiment']}/run", headers=ADMIN)
    if r.status_code == 200:
        s["run"] = r.json()["id"]
    return r


async def _run_feedback(k: KeyedGateway, s: dict[str, Any]) -> httpx.Response:
    if "run" not in s:  # the experiment could not run (the canary test's needs a key)
        await _experiment_created(k, s)
        await _run(k, s)
    return await k.gw.client.post(
        f"/experiments/runs/{s['run']}/feedback", json={"thumbs_up": True}, headers=ADMIN
    )


async def _span_feedback(k: KeyedGateway, s: dict[str, Any]) -> httpx.Response:
    s["span"] = await proxy_call(k.gw)
    return await k.gw.client.post(
        f"/spans/{s['span']}/feedback", json={"note": "ok"}, headers=ADMIN
    )


SCORE = {"metric_key": "quality", "value": 1}
STEPS: list[tuple[str, Step]] = [
    ("key created", Step("key.created", _key_created, _id)),
    (
        "key revoked",
        Step(
            "key.revoked",
            lambda k, s: k.gw.client.delete(f"/keys/{s['key']['id']}", headers=ADMIN),
            _id,
        ),
    ),
    (
        "project created",
        Step(
            "project.created",
            lambda k, s: k.gw.client.post(
                "/projects", json={"id": "team-a", "name": "Team A"}, headers=ADMIN
            ),
            lambda s, r: "team-a",
        ),
    ),
    (
        "project renamed",
        Step(
            "project.renamed",
            lambda k, s: k.gw.client.patch(
                "/projects/team-a", json={"name": "Team B"}, headers=ADMIN
            ),
            lambda s, r: "team-a",
        ),
    ),
    ("experiment created", Step("experiment.created", _experiment_created, _id)),
    (
        "experiment updated",
        Step(
            "experiment.updated",
            lambda k, s: k.gw.client.patch(
                f"/experiments/{s['experiment']}", json={"name": "renamed"}, headers=ADMIN
            ),
            lambda s, r: s["experiment"],
        ),
    ),
    (
        "experiment run",
        Step(
            "experiment.run",
            _run,
            lambda s, r: s["experiment"],
        ),
    ),
    (
        "run feedback",
        Step("experiment.feedback.updated", _run_feedback, lambda s, r: s["experiment"]),
    ),
    (
        "run score",
        Step(
            "experiment.score.created",
            lambda k, s: k.gw.client.post(
                f"/experiments/runs/{s['run']}/scores", json=SCORE, headers=ADMIN
            ),
            lambda s, r: s["experiment"],
        ),
    ),
    ("span feedback", Step("experiment.feedback.updated", _span_feedback, lambda s, r: s["span"])),
    (
        "span score",
        Step(
            "experiment.score.created",
            lambda k, s: k.gw.client.post(f"/spans/{s['span']}/scores", json=SCORE, headers=ADMIN),
            lambda s, r: s["span"],
        ),
    ),
    (
        "experiment deleted",
        Step(
            "experiment.deleted",
            lambda k, s: k.gw.client.delete(f"/experiments/{s['experiment']}", headers=ADMIN),
            lambda s, r: s["experiment"],
        ),
    ),
    ("dataset created", Step("dataset.created", _dataset_created, _id)),
    (
        "dataset renamed",
        Step(
            "dataset.changed",
            lambda k, s: k.gw.client.patch(
                f"/datasets/{s['dataset']}", json={"name": "qa2"}, headers=ADMIN
            ),
            lambda s, r: s["dataset"],
        ),
    ),
    (
        "dataset items added",
        Step(
            "dataset.changed",
            lambda k, s: k.gw.client.post(
                f"/datasets/{s['dataset']}/items",
                json=[{"key": "a", "variables": {"question": BODY_CANARY}}],
                headers=ADMIN,
            ),
            lambda s, r: s["dataset"],
        ),
    ),
    (
        "dataset deleted",
        Step(
            "dataset.deleted",
            lambda k, s: k.gw.client.delete(f"/datasets/{s['dataset']}", headers=ADMIN),
            lambda s, r: s["dataset"],
        ),
    ),
    (
        "settings shown",
        Step(
            "settings.shown",
            lambda k, s: k.gw.client.get("/settings", headers=ADMIN),
            lambda s, r: None,
        ),
    ),
    (
        "sign-in failed",
        Step(
            "access.denied",
            lambda k, s: k.gw.client.post(
                "/session", json={"key": k.keys["write"] + "x"}, headers=ORIGIN
            ),
            lambda s, r: None,
            actor="",
        ),
    ),
    ("signed in", Step("session.signed_in", _sign_in, lambda s, r: s["write_id"], "write")),
    (
        "signed out",
        Step(
            "session.signed_out",
            lambda k, s: k.gw.client.delete("/session", headers=ORIGIN),
            lambda s, r: s["write_id"],
            "write",
        ),
    ),
]


async def test_every_audited_action_leaves_exactly_one_entry(
    make_gateway: GatewayFactory,
) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    keys = (await gw.client.get("/keys", headers=ADMIN)).json()["data"]
    ids = {k["name"]: k["id"] for k in keys}
    ids["admin"] = "admin"
    state: dict[str, Any] = {"write_id": ids["write"]}
    seen = {e["id"] for e in await all_events(gw)}
    for label, step in STEPS:
        response = await step.act(keyed, state)
        assert response.status_code < 400 or step.type == "access.denied", (label, response.text)
        events = await all_events(gw)
        new = [e for e in events if e["id"] not in seen and e["type"] not in SIDE_EFFECTS]
        seen |= {e["id"] for e in events}
        assert [e["type"] for e in new] == [step.type], (label, new)
        entry = new[0]
        payload = orjson.loads(entry["payload"])
        assert entry["subject_id"] == step.subject(state, response), (label, entry)
        if step.type == "access.denied":
            assert payload["reason"] == "bad_sign_in" and payload["address"], label
            continue
        assert payload["actor"] == ids[step.actor], (label, payload)
        assert payload["address"] == "127.0.0.1", (label, payload)  # httpx's ASGI client
        assert payload["method"] == response.request.method and entry["at"], label
    # Named fields of the answer are kept, the rest are not.
    created = (
        await gw.client.get("/audit?type=key.created&subject=" + state["key"]["id"], headers=ADMIN)
    ).json()["data"]
    assert created[0]["payload"]["name"] == "ci" and created[0]["payload"]["scopes"] == ["read"]
    assert "key" not in created[0]["payload"] and "prefix" not in created[0]["payload"]


async def test_with_keys_off_the_actor_is_the_user_header_or_local(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    await gw.client.post("/datasets", json={"name": "a"}, headers={"x-spanlab-user": "ana"})
    await gw.client.post("/datasets", json={"name": "b"})
    entries = (await gw.client.get("/audit?type=dataset.created")).json()["data"]
    assert [(e["payload"]["actor"], e["payload"]["name"]) for e in entries] == [
        ("local", "b"),
        ("ana", "a"),
    ]


async def test_a_failed_action_leaves_no_entry(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    assert (await gw.client.delete("/datasets/nope")).status_code == 404
    assert (await gw.client.post("/keys", json={"name": 1})).status_code in (400, 503)
    assert (await gw.client.get("/audit")).json()["data"] == []


async def test_audit_filters_pages_and_needs_admin(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)  # four key.created entries
    gw = keyed.gw
    for name in ("d1", "d2", "d3"):
        r = await gw.client.post("/datasets", json={"name": name}, headers=keyed.headers("write"))
        assert r.status_code == 201
    write_id = next(
        k["id"]
        for k in (await gw.client.get("/keys", headers=ADMIN)).json()["data"]
        if k["name"] == "write"
    )

    async def audit(**params: Any) -> dict[str, Any]:
        r = await gw.client.get("/audit", params=params, headers=ADMIN)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    every = (await audit())["data"]
    assert [e["type"] for e in every] == ["dataset.created"] * 3 + ["key.created"] * 4
    assert [e["at"] for e in every] == sorted((e["at"] for e in every), reverse=True)
    assert len((await audit(type="key.created"))["data"]) == 4
    assert len((await audit(type="dataset."))["data"]) == 3
    assert len((await audit(type="dataset*"))["data"]) == 3
    assert (await audit(type="dataset"))["data"] == []  # exact, not a prefix
    assert (await audit(type="%"))["data"] == []  # LIKE's wildcard is literal
    assert [e["payload"]["name"] for e in (await audit(actor=write_id))["data"]] == [
        "d3",
        "d2",
        "d1",
    ]
    assert [e["payload"]["name"] for e in (await audit(actor="admin"))["data"]] == [
        "admin",
        "write",
        "read",
        "proxy",
    ]
    d2 = every[1]
    assert [e["id"] for e in (await audit(subject=d2["subject_id"]))["data"]] == [d2["id"]]
    assert [e["id"] for e in (await audit(since=d2["at"], until=every[0]["at"]))["data"]] == [
        d2["id"]
    ]
    assert (await audit(since="2999-01-01T00:00:00Z"))["data"] == []
    assert len((await audit(until="1971-01-01T00:00:00Z", since="-99999999999"))["data"]) == 0
    # Pages of 2 add up to the whole, in order, no entry twice.
    paged: list[str] = []
    cursor = None
    while True:
        page = await audit(limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= 2
        paged += [e["id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [e["id"] for e in every]
    # Bad input: a clear 400.
    for params in ({"cursor": "nope"}, {"since": "yesterday"}, {"limit": "0"}):
        r = await gw.client.get("/audit", params=params, headers=ADMIN)
        assert r.status_code == 400, (params, r.text)
    # Admin only.
    for who, status in (("read", 403), ("write", 403), ("proxy", 403), (None, 401)):
        r = await gw.client.get("/audit", headers=keyed.headers(who))
        assert r.status_code == status, (who, r.text)
    assert (await gw.client.get("/audit", headers=keyed.headers("admin"))).status_code == 200


async def test_no_key_hash_cookie_or_body_in_any_entry(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    state: dict[str, Any] = {}
    provider_key = "sk-provider-canary-91b2c3"
    for _, step in STEPS:
        if step.type == "experiment.created":
            span_id = await proxy_call(gw, authorization=f"Bearer {provider_key}")
            r = await gw.client.post(
                "/experiments",
                json={"original_span_id": span_id},
                headers={**ADMIN, "authorization": f"Bearer {provider_key}"},
            )
            state["experiment"] = r.json()["id"]
            continue
        await step.act(keyed, state)
    await gw.client.get("/spans", headers=keyed.headers("read"))  # refused below: 403s
    await gw.client.get("/keys", headers=keyed.headers("read"))
    await gw.client.get("/spans", headers={"x-spanlab-key": "slk_bogus_" + "z" * 40})
    dumped = orjson.dumps(await all_events(gw)).decode()
    assert "key.created" in dumped and "session.signed_in" in dumped  # entries are there
    secrets = [ADMIN_KEY, state["key"]["key"], state["cookie"], provider_key, BODY_CANARY]
    secrets += list(keyed.keys.values())
    # The random part whole (it may hold "_" itself: "slk_<id>_<random>")
    secrets += [key.split("_", 2)[2] for key in [*keyed.keys.values(), state["key"]["key"]]]
    secrets += [hash_key(s) for s in (ADMIN_KEY, state["key"]["key"], *keyed.keys.values())]
    secrets += ["z" * 40]
    for secret in secrets:
        assert secret not in dumped, secret
