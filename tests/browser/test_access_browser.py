"""Access in a real browser, against a `spanlab serve` with keys on: sign in by pasting
a key (an HttpOnly, SameSite=Strict session cookie, never the key), a read-only key
cannot edit (the gateway refuses, the page says why), sign out; an admin makes a key
on the keys page and sees it once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.upstream import LoopbackUpstream

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ADMIN_KEY = "browser-admin-key-7a6b5c4d3e2f1a0b9c8d7e6f"
ADMIN = {"x-spanlab-key": ADMIN_KEY}


@pytest.fixture(scope="module")
def keyed_server(
    upstream: LoopbackUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = f'[providers.openai]\nkind = "openai"\nbase_url = "{upstream.base_url}"\n'
    env = {"SPANLAB_ADMIN_KEY": ADMIN_KEY}
    with Server(tmp_path_factory.mktemp("spanlab-keys"), config, env=env) as server:
        yield server


def make_key(server: Server, name: str, scopes: list[str]) -> str:
    response = httpx.post(
        server.url + "/keys", json={"name": name, "scopes": scopes}, headers=ADMIN, timeout=10
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def sign_in(page: Any, key: str) -> None:
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    page.get_by_test_id("sign-in-key").fill(key)
    page.get_by_test_id("sign-in-submit").click()


def test_sign_in_a_read_only_key_cannot_edit_sign_out(keyed_server: Server, page: Any) -> None:
    server = keyed_server
    key = make_key(server, "reader", ["read"])
    page.goto(server.url + "/ui/")
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    expect(page.get_by_role("link", name="Traces")).to_have_count(0)  # no app before it
    page.get_by_test_id("sign-in-key").fill(key + "x")
    page.get_by_test_id("sign-in-submit").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown, revoked or expired")

    sign_in(page, key)
    expect(page.get_by_test_id("session-badge")).to_contain_text("reader")
    expect(page.get_by_role("link", name="Traces")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("link", name="Keys")).to_have_count(0)  # not an admin
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["spanlab_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert key not in session["value"] and key.split("_")[-1] not in session["value"]
    # The page cannot read the cookie, and keeps no key of its own.
    assert "spanlab_session" not in page.evaluate("document.cookie")
    assert key not in page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")

    # A read-only key cannot edit: the gateway refuses, the page says which scope.
    page.get_by_role("link", name="Datasets").click()
    page.get_by_test_id("ds-new-name").fill("not-allowed")
    page.get_by_test_id("ds-create").click()
    expect(page.get_by_test_id("error-note")).to_contain_text("lacks the 'write' scope")
    listed = httpx.get(server.url + "/datasets", headers=ADMIN, timeout=10).json()
    assert [d["name"] for d in listed["data"]] == []

    # Sign out: back to the sign-in page, and the old cookie no longer works.
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    old = httpx.get(
        server.url + "/spans", cookies={"spanlab_session": session["value"]}, timeout=10
    )
    assert old.status_code == 401
    page.reload()
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    assert page.errors == []


def test_an_admin_makes_a_key_and_sees_it_once(keyed_server: Server, page: Any) -> None:
    server = keyed_server
    page.goto(server.url + "/ui/keys")
    sign_in(page, ADMIN_KEY)
    expect(page.get_by_test_id("access-page")).to_be_visible()
    expect(page.get_by_role("link", name="Keys")).to_have_attribute("aria-current", "page")
    page.get_by_test_id("key-name").fill("ci-bot")
    page.get_by_test_id("key-scope-read").uncheck()
    page.get_by_test_id("key-scope-proxy").check()
    page.get_by_test_id("key-create").click()
    value = page.get_by_test_id("new-key-value")
    expect(page.get_by_test_id("new-key")).to_be_visible()
    key = value.input_value()
    assert key.startswith("slk_")
    row = page.get_by_test_id("key-row").filter(has_text="ci-bot")
    expect(row).to_contain_text("proxy")
    expect(row).not_to_contain_text(key)
    # The new key works on the proxy path.
    call = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "fake-small", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-spanlab-key": key},
        timeout=10,
    )
    assert call.status_code == 200, call.text
    # Revoked from the page: refused at once.
    row.get_by_test_id("key-revoke").click()
    row.get_by_test_id("key-revoke-confirm").click()
    expect(row).to_contain_text("revoked")
    again = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "fake-small", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-spanlab-key": key},
        timeout=10,
    )
    assert again.status_code == 401
    assert page.errors == []
