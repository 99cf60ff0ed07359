"""The Settings page in a real browser, against a `spanlab serve` with keys on: an admin
reaches it by keyboard and reads the settings in effect with every secret masked (one
audit entry per visit); a key without admin sees no Settings link and no settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.test_access_browser import sign_in
from tests.browser.upstream import LoopbackUpstream

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ADMIN_KEY = "browser-settings-admin-3c2b1a0f9e8d7c6b5a4f"
PROVIDER_KEY = "sk-browser-provider-canary-0a1b2c3d"
ADMIN = {"x-spanlab-key": ADMIN_KEY}


@pytest.fixture(scope="module")
def settings_server(
    upstream: LoopbackUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = (
        f'[providers.openai]\nkind = "openai"\nbase_url = "{upstream.base_url}"\n'
        'api_key_env = "SPANLAB_BROWSER_CANARY_KEY"\n'
    )
    env = {"SPANLAB_ADMIN_KEY": ADMIN_KEY, "SPANLAB_BROWSER_CANARY_KEY": PROVIDER_KEY}
    with Server(tmp_path_factory.mktemp("spanlab-settings"), config, env=env) as server:
        yield server


def shown_count(server: Server) -> int:
    entries = httpx.get(
        server.url + "/audit?type=settings.shown", headers=ADMIN, timeout=10
    ).json()["data"]
    return len(entries)


def test_an_admin_reads_the_settings_by_keyboard_secrets_masked(
    settings_server: Server, page: Any
) -> None:
    server = settings_server
    page.goto(server.url + "/ui/")
    sign_in(page, ADMIN_KEY)
    link = page.get_by_role("link", name="Settings")
    link.focus()
    page.keyboard.press("Enter")
    table = page.get_by_test_id("settings-table")
    expect(table).to_be_visible()
    row = table.get_by_role("row").filter(has=page.get_by_text("admin_key", exact=True))
    expect(row).to_contain_text("(set)")
    providers = page.get_by_test_id("settings-providers")
    expect(providers).to_contain_text("SPANLAB_BROWSER_CANARY_KEY (set)")
    html = page.content()
    assert ADMIN_KEY not in html and PROVIDER_KEY not in html
    # The filter and the scrolling table are reached with Tab, with a visible focus.
    page.get_by_test_id("settings-filter").focus()
    page.keyboard.type("metrics_token")
    expect(table.get_by_role("row")).to_have_count(2)  # the head and the one row
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Gateway settings"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    # Asked once for the visit (each answer is an audit entry), again on Reload.
    expect(page.get_by_test_id("settings-reload")).to_be_visible()
    assert shown_count(server) == 1
    page.get_by_test_id("settings-reload").click()
    for _ in range(50):
        if shown_count(server) == 2:
            break
        page.wait_for_timeout(100)
    assert shown_count(server) == 2


def test_a_key_without_admin_sees_no_settings(settings_server: Server, page: Any) -> None:
    server = settings_server
    before = shown_count(server)
    page.goto(server.url + "/ui/")
    sign_in(page, make_key_for(server))
    expect(page.get_by_role("link", name="Traces")).to_be_visible()
    expect(page.get_by_role("link", name="Settings")).to_have_count(0)
    assert shown_count(server) == before


def make_key_for(server: Server) -> str:
    response = httpx.post(
        server.url + "/keys",
        json={"name": "writer", "scopes": ["read", "write"]},
        headers=ADMIN,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key
