"""The web UI's session: sign in with a key -> an HttpOnly, SameSite=Strict cookie
holding a random session id (never the key); state-changing requests by cookie need
the same-origin Origin; sign out and key revocation end the session."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie

import pytest

from gateway.access.guard import SESSION_COOKIE
from tests.access_helpers import ADMIN_KEY, keyed_gateway
from tests.conftest import GatewayFactory

ORIGIN = {"origin": "http://spanlab.test"}


async def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    key = keyed.keys["write"]
    before = (await gw.client.get("/session")).json()
    assert before == {"auth": True, "insecure": False, "principal": None}
    bad = await gw.client.post("/session", json={"key": key + "x"}, headers=ORIGIN)
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    r = await gw.client.post("/session", json={"key": key}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    assert r.json()["principal"]["scopes"] == ["write"]
    raw = r.headers["set-cookie"]
    cookie = SimpleCookie(raw)[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"].lower() == "strict" and cookie["path"] == "/"
    sid = cookie.value
    assert key not in raw and key.split("_")[-1] not in raw and len(sid) >= 40
    # The cookie signs the client in.
    assert (await gw.client.get("/spans")).status_code == 200
    assert (await gw.client.get("/session")).json()["principal"]["name"] == "write"
    # A state-changing request by cookie: with the UI's Origin, yes; without, no (CSRF);
    # from another site, the Host/Origin guard refuses it.
    made = await gw.client.post("/datasets", json={"name": "by-cookie"}, headers=ORIGIN)
    assert made.status_code == 201, made.text
    bare = await gw.client.post("/datasets", json={"name": "no-origin"})
    assert bare.status_code == 403 and bare.json()["error"]["code"] == "csrf_origin_missing"
    evil = await gw.client.post(
        "/datasets", json={"name": "evil"}, headers={"origin": "http://evil.example"}
    )
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "origin_not_allowed"
    # Within its scopes only.
    assert (await gw.client.get("/keys")).status_code == 403
    # Sign out: the cookie is cleared and the session is over on the server too.
    out = await gw.client.delete("/session", headers=ORIGIN)
    assert out.status_code == 200 and out.json()["principal"] is None
    assert (
        'spanlab_session=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    gw.client.cookies.set(SESSION_COOKIE, sid, domain="spanlab.test")
    gone = await gw.client.get("/spans")
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "bad_session"
    for secret in (key, sid):
        assert secret not in caplog.text


async def test_revoking_the_key_ends_its_sessions(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    key = keyed.keys["read"]
    assert (await gw.client.post("/session", json={"key": key}, headers=ORIGIN)).status_code == 200
    assert (await gw.client.get("/spans")).status_code == 200
    prefix = "slk_" + key.split("_")[1]
    admin = {"x-spanlab-key": ADMIN_KEY}
    assert (await gw.client.delete(f"/keys/{prefix}", headers=admin)).status_code == 200
    assert (await gw.client.get("/spans")).status_code == 401


async def test_the_session_cookie_does_not_reach_upstream(make_gateway: GatewayFactory) -> None:
    keyed = await keyed_gateway(make_gateway)
    gw = keyed.gw
    r = await gw.client.post("/session", json={"key": keyed.keys["proxy"]}, headers=ORIGIN)
    assert r.status_code == 200
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    call = await gw.client.post("/v1/chat/completions", json=chat, headers=ORIGIN)
    assert call.status_code == 200, call.text
    assert "cookie" not in gw.upstream.last.headers
