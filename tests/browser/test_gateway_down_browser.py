"""The gateway stops while the UI is open: the UI says so plainly (never the browser's
bare "Failed to fetch") and the live badge stops saying Live. This module has its own
gateway, since the test stops it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from tests.browser.conftest import Server, screenshot
from tests.browser.upstream import LoopbackUpstream

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def doomed(
    upstream: LoopbackUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = (
        "events_heartbeat_s = 1.0\n"
        "[providers.openai]\n"
        'kind = "openai"\n'
        f'base_url = "{upstream.base_url}"\n'
    )
    with Server(tmp_path_factory.mktemp("spanlab-doomed"), config) as server:
        yield server


def badge(page: Any) -> str:
    text: str = page.get_by_test_id("live-state").inner_text()
    return text.strip()


def test_a_stopped_gateway_is_shown_as_unreachable(doomed: Server, page: Any) -> None:
    OpenAI(base_url=doomed.url + "/v1", api_key="sk-test-not-a-secret").chat.completions.create(
        model="fake-small", messages=[{"role": "user", "content": "before the outage"}]
    )
    doomed.wait_spans(1)
    page.goto(doomed.url + "/ui/")
    page.get_by_test_id("span-row").first.wait_for(timeout=10_000)
    page.get_by_test_id("live-state").filter(has_text="Live").wait_for(timeout=10_000)

    doomed.stop()

    # /events drops: the badge no longer claims Live (it probes /healthz and finds nothing)
    page.get_by_test_id("live-state").filter(has_text="Offline").wait_for(timeout=15_000)

    # moving to another page fetches from the gateway: the page says it is unreachable
    page.locator("#main-nav").get_by_role("link", name="Threads").click()
    note = page.get_by_test_id("gateway-unreachable")
    note.wait_for(timeout=10_000)
    assert "The gateway is unreachable." in note.inner_text()
    assert "Failed to fetch" not in page.locator("main").inner_text()
    assert badge(page) != "Live"
    screenshot(page, "gateway-down-threads")

    # back on Traces the list says the same, with a Retry that tries again
    page.get_by_role("tab", name="Calls").click()
    note = page.get_by_test_id("gateway-unreachable")
    note.wait_for(timeout=10_000)
    assert "Failed to fetch" not in page.locator("main").inner_text()
    page.get_by_role("button", name="Retry").first.click()
    page.get_by_test_id("gateway-unreachable").wait_for(timeout=10_000)
    assert badge(page) == "Offline"
    screenshot(page, "gateway-down-traces")
