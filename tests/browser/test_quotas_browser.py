"""The keys page shows each key's limits and its usage in the current windows (read
only), against a real `spanlab serve` with keys on; reached by keyboard alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.test_access_browser import ADMIN, ADMIN_KEY, sign_in
from tests.browser.upstream import LoopbackUpstream

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def quota_server(
    upstream: LoopbackUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = f'[providers.openai]\nkind = "openai"\nbase_url = "{upstream.base_url}"\n'
    env = {"SPANLAB_ADMIN_KEY": ADMIN_KEY}
    with Server(tmp_path_factory.mktemp("spanlab-quotas"), config, env=env) as server:
        yield server


def test_the_keys_page_shows_limits_and_usage(quota_server: Server, page: Any) -> None:
    server = quota_server
    made = httpx.post(
        server.url + "/keys",
        json={"name": "ci-bot", "scopes": ["proxy"], "rpm": 60, "usd_per_day": 2.5},
        headers=ADMIN,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        r = httpx.post(
            server.url + "/v1/chat/completions",
            json=chat,
            headers={"x-spanlab-key": key},
            timeout=10,
        )
        assert r.status_code == 200, r.text

    page.goto(server.url + "/ui/")
    sign_in(page, ADMIN_KEY)
    # By keyboard: focus the Keys link and follow it.
    link = page.get_by_role("link", name="Keys")
    link.focus()
    page.keyboard.press("Enter")
    row = page.get_by_test_id("key-row").filter(has_text="ci-bot")
    usage = row.get_by_role("list", name="Usage and limits of ci-bot")
    expect(usage).to_contain_text("3 / 60requests this minute")
    expect(usage).to_contain_text("/ $2.50cost today")
    expect(usage).to_contain_text("tokens today(no limit)")
    expect(usage.get_by_role("meter")).to_have_count(2)
