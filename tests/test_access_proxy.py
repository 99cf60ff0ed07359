"""Keys on the proxy path: where the key may be sent, that it never goes upstream nor
into a span, a project key's calls stay in its project, expiry, revocation (at once,
and mid-stream), refused authentications slowed and recorded, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import pytest

from gateway.access import policy as policy_module
from gateway.access.policy import DENIED_EVENT, FREE_FAILURES, AccessPolicy
from gateway.access.store import epoch_to_iso
from tests.access_helpers import ADMIN_KEY, create_key, keyed_gateway
from tests.conftest import GatewayFactory
from tests.fakes import FakeUpstream, chat_chunks, sse, stream_response

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def policy_of(gw: Any) -> AccessPolicy:
    policy: AccessPolicy = gw.app.state.access
    return policy


async def test_keys_off_the_proxy_is_open_as_before(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    assert policy_of(gw).enabled is False
    assert (await gw.client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert (await gw.client.get("/keys")).status_code == 200  # the local user bootstraps
    session = (await gw.client.get("/session")).json()
    assert session == {"auth": False, "insecure": False, "principal": None}


async def test_the_key_header_is_accepted_and_goes_no_further(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keyed = await keyed_gateway(make_gateway)
    gw, key = keyed.gw, keyed.keys["proxy"]
    refused = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "no_credential"
    assert len(gw.upstream.requests) == 0
    r = await gw.client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"x-spanlab-key": key, "authorization": "Bearer sk-client-provider-key"},
    )
    assert r.status_code == 200, r.text
    sent = gw.upstream.last
    assert "x-spanlab-key" not in sent.headers
    # The client's own provider key is not a gateway key: it is forwarded as before.
    assert sent.headers["authorization"] == "Bearer sk-client-provider-key"
    await gw.flush()
    span = (
        await gw.client.get(
            f"/spans/{r.headers['x-spanlab-span-id']}",
            headers={"x-spanlab-key": keyed.keys["read"]},
        )
    ).json()
    dumped = orjson.dumps(span).decode()
    assert "x-spanlab-key" not in span["request_headers"]
    for secret in keyed.keys.values():
        assert secret not in dumped
        assert secret not in caplog.text


async def test_a_gateway_key_as_the_bearer_when_the_provider_key_is_configured(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-configured-provider-key")
    providers = {
        "openai": {
            "kind": "openai",
            "base_url": "http://upstream.test/v1",
            "api_key_env": "TEST_PROVIDER_KEY",
        }
    }
    keyed = await keyed_gateway(make_gateway, providers=providers)
    gw = keyed.gw
    r = await gw.client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {keyed.keys['proxy']}"},  # an unmodified SDK
    )
    assert r.status_code == 200, r.text
    assert gw.upstream.last.headers.get_list("authorization") == [
        "Bearer sk-configured-provider-key"
    ]
    # A provider key as the bearer is not a gateway key: refused with keys on.
    other = await gw.client.post(
        "/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer sk-something"}
    )
    assert other.status_code == 401
    # The /models list of the UI passes the Authorization header on: not the gateway key.
    listed = await gw.client.get(
        "/models", headers={"authorization": f"Bearer {keyed.keys['read']}"}
    )
    assert listed.status_code == 200, listed.text
    assert keyed.keys["read"] not in gw.upstream.last.headers.get("authorization", "")


async def test_a_project_key_puts_its_calls_in_its_project(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    admin = {"x-spanlab-key": ADMIN_KEY}
    made = await gw.client.post("/projects", json={"id": "team-a"}, headers=admin)
    assert made.status_code == 201, made.text
    bound = (await create_key(gw, "team-a bot", ["proxy"], project_id="team-a"))["key"]
    default = (await create_key(gw, "default bot", ["proxy"], project_id="default"))["key"]
    ids = {}
    for name, key, claimed in (
        ("bound", bound, "team-b"),
        ("default", default, "team-b"),
        ("free", keyed.keys["proxy"], "team-b"),
    ):
        r = await gw.client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"x-spanlab-key": key, "x-project-id": claimed},
        )
        assert r.status_code == 200, r.text
        ids[name] = r.headers["x-spanlab-span-id"]
    await gw.flush()
    projects = {}
    for name, span_id in ids.items():
        span = (await gw.client.get(f"/spans/{span_id}", headers=admin)).json()
        projects[name] = span["project_id"]
    # The bound key cannot escape its project; the default project is NULL; an unbound
    # key's client still names its own.
    assert projects == {"bound": "team-a", "default": None, "free": "team-b"}


async def test_an_expired_key_is_refused(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    policy = policy_of(gw)
    assert policy.store is not None
    soon, key = await policy.store.create_key(
        "short", ["proxy"], expires_at=epoch_to_iso(time.time() + 0.5)
    )
    await policy.reload()
    headers = {"x-spanlab-key": key}
    assert (
        await gw.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    ).status_code == 200
    await asyncio.sleep(0.6)
    r = await gw.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_key"
    listed = (await gw.client.get("/keys", headers={"x-spanlab-key": ADMIN_KEY})).json()["data"]
    assert [k["active"] for k in listed if k["id"] == soon.id] == [False]


async def test_revocation_takes_effect_at_once_and_a_started_stream_finishes(
    make_gateway: GatewayFactory,
) -> None:
    events = sse(chat_chunks(["one ", "two ", "three ", "four"]))
    upstream = FakeUpstream(handler=lambda request: stream_response(events, delay=0.1))
    keyed = await keyed_gateway(make_gateway, upstream=upstream)
    gw = keyed.gw
    created = await create_key(gw, "doomed", ["proxy"])
    headers = {"x-spanlab-key": created["key"]}
    stream = asyncio.ensure_future(
        gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers)
    )
    for _ in range(500):  # until the call is under way upstream
        if upstream.requests:
            break
        await asyncio.sleep(0.01)
    revoked = await gw.client.delete(
        f"/keys/{created['prefix']}", headers={"x-spanlab-key": ADMIN_KEY}
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert not stream.done()
    # The very next request with the key is refused, while the stream still runs ...
    refused = await gw.client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert refused.status_code == 401
    assert not stream.done()
    # ... and the stream, checked when it started, runs to its end.
    response = await stream
    assert response.status_code == 200
    assert b"four" in response.content and response.content.endswith(b"data: [DONE]\n\n")


async def test_a_revocation_on_the_database_is_seen_within_the_refresh(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy_module, "ACCESS_REFRESH_S", 0.05)
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    policy = policy_of(gw)
    assert policy.store is not None
    headers = {"x-spanlab-key": keyed.keys["read"]}
    assert (await gw.client.get("/spans", headers=headers)).status_code == 200
    key_id = keyed.keys["read"].split("_")[1]
    await policy.store.revoke_key(key_id)  # as `spanlab keys revoke` does
    for _ in range(100):
        if (await gw.client.get("/spans", headers=headers)).status_code == 401:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the revoked key was still accepted after 2 s")
    # Its last use was written off the request path.
    listed = await policy.store.list_keys()
    assert [k.last_used_at is not None for k in listed if k.id == key_id] == [True]


async def test_failed_authentications_are_slowed_and_recorded(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policy_module, "FIRST_DELAY_S", 0.2)
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    wrong = keyed.keys["read"][:-4] + "AAAA"
    times = []
    for _ in range(FREE_FAILURES + 2):
        started = time.perf_counter()
        r = await gw.client.get("/spans", headers={"x-spanlab-key": wrong})
        times.append(time.perf_counter() - started)
        assert r.status_code == 401
    assert max(times[:FREE_FAILURES]) < 0.15
    assert times[FREE_FAILURES] >= 0.2 and times[FREE_FAILURES + 1] >= 0.4
    # A valid key from the same address is not slowed.
    started = time.perf_counter()
    ok = await gw.client.get("/spans", headers={"x-spanlab-key": keyed.keys["read"]})
    assert ok.status_code == 200 and time.perf_counter() - started < 0.15
    denied = await gw.client.post("/experiments", json={}, headers=keyed.headers("read"))
    assert denied.status_code == 403
    policy = policy_of(gw)
    await policy.flush()
    assert policy.store is not None
    rows = await policy.store.db.fetch(
        "SELECT subject_id, payload FROM events WHERE type = ?", (DENIED_EVENT,)
    )
    payloads = [orjson.loads(row["payload"]) for row in rows]
    reasons = sorted(p["reason"] for p in payloads)
    assert reasons == ["bad_key"] * (FREE_FAILURES + 2) + ["insufficient_scope"]
    assert all(p["address"] == "127.0.0.1" for p in payloads)
    stored = orjson.dumps([tuple(row) for row in rows]).decode()
    for secret in (*keyed.keys.values(), wrong, wrong[-20:]):
        assert secret not in stored


async def test_healthz_says_nothing_private_without_read(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    bare = await gw.client.get("/healthz")
    assert bare.status_code == 200 and bare.json() == {"status": "ok"}
    proxy_only = await gw.client.get("/healthz", headers=keyed.headers("proxy"))
    assert proxy_only.json() == {"status": "ok"}
    full = await gw.client.get("/healthz", headers=keyed.headers("read"))
    assert "version" in full.json() and "span_queue_depth" in full.json()


async def test_metrics_take_a_read_key_or_their_own_token(make_gateway: GatewayFactory) -> None:
    token = "scrape-token-5f4e3d2c1b0a"
    keyed = await keyed_gateway(make_gateway, metrics_token=token)
    gw = keyed.gw
    scraper = {"authorization": f"Bearer {token}"}
    assert (await gw.client.get("/metrics")).status_code == 401
    assert (await gw.client.get("/metrics", headers=scraper)).status_code == 200
    assert (await gw.client.get("/metrics", headers=keyed.headers("read"))).status_code == 200
    assert (await gw.client.get("/metrics", headers=keyed.headers("proxy"))).status_code == 403
    assert (await gw.client.get("/spans", headers=scraper)).status_code == 401  # only /metrics


async def test_keys_created_on_an_open_gateway_turn_keys_on(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    r = await gw.client.post("/keys", json={"name": "first", "scopes": ["admin"]})
    assert r.status_code == 201
    assert (await gw.client.get("/spans")).status_code == 401
    ok = await gw.client.get("/spans", headers={"x-spanlab-key": r.json()["key"]})
    assert ok.status_code == 200
