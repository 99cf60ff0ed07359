"""The traces pages in a real browser: live arrival, filters in the URL, span detail,
and proof that nothing from a trace can run in the page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.browser.conftest import Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def client(server: Server, thread: str | None = None) -> OpenAI:
    headers = {"x-thread-id": thread} if thread else {}
    return OpenAI(
        base_url=server.url + "/v1", api_key="sk-test-not-a-secret", default_headers=headers
    )


def wait_live(page: Any) -> None:
    page.get_by_test_id("live-state").filter(has_text="Live").wait_for(timeout=10_000)


def test_ui_is_served_with_csp_and_spa_fallback(server: Server) -> None:
    root = httpx.get(server.url + "/", follow_redirects=False, timeout=10)
    assert root.status_code in (302, 307)
    assert root.headers["location"] == "/ui/"
    index = server.get("/ui/")
    assert index.status_code == 200
    assert "text/html" in index.headers["content-type"]
    csp = index.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    deep = server.get("/ui/experiments")
    assert deep.status_code == 200 and deep.text == index.text
    asset = re.search(r'src="(/ui/assets/[^"]+\.js)"', index.text)
    assert asset, index.text
    js = server.get(asset.group(1))
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert "immutable" in js.headers["cache-control"]
    assert server.get("/ui/assets/missing.js").status_code == 404
    assert server.get("/ui/../pyproject.toml").status_code in (200, 404)
    assert "[project]" not in server.get("/ui/%2e%2e/%2e%2e/pyproject.toml").text


def test_calls_arrive_live_and_open_in_detail(server: Server, page: Any) -> None:
    page.goto(server.url + "/")
    assert page.url.endswith("/ui/")
    wait_live(page)
    marker = "Where do penguins live?"
    client(server, thread="thread-live").chat.completions.create(
        model="fake-small",
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": marker},
        ],
        temperature=0.2,
    )
    row = page.get_by_test_id("span-row").filter(has_text=marker)
    row.wait_for(timeout=10_000)  # arrived over /events, no reload
    assert "fake-small" in row.inner_text()
    screenshot(page, "01-traces")

    row.click()
    detail = page.get_by_test_id("span-detail")
    detail.wait_for()
    assert "span=" in page.url
    detail.locator(".msg[data-role='system']").filter(has_text="You answer briefly.").wait_for()
    detail.locator(".msg[data-role='user']").filter(has_text=marker).wait_for()
    output = page.get_by_test_id("span-output")
    assert f"Reply at temperature 0.2 to: {marker}" in output.inner_text()
    assert page.get_by_test_id("experiment-button").is_visible()
    screenshot(page, "02-span-detail")

    # filters live in the URL and survive a reload
    page.goto(server.url + "/ui/?status=error")
    page.get_by_text("No calls match these filters.").wait_for()
    page.goto(server.url + "/ui/?thread=thread-live")
    page.get_by_test_id("span-row").filter(has_text=marker).wait_for()
    assert page.get_by_label("Thread").input_value() == "thread-live"

    page.goto(server.url + "/ui/threads")
    page.get_by_text("thread-live").first.wait_for()
    screenshot(page, "03-threads")

    # the theme follows the system setting
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.emulate_media(color_scheme="dark")
    page.goto(server.url + "/ui/?thread=thread-live")
    page.get_by_test_id("span-row").first.click()
    page.get_by_test_id("span-detail").wait_for()
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light != dark
    screenshot(page, "08-traces-dark")
    assert not page.errors, page.errors


def test_scrolling_loads_each_page_once(server: Server, page: Any) -> None:
    api = client(server, thread="thread-scroll")
    for i in range(60):
        api.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": f"scroll call {i}"}]
        )
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/spans?" in r.url else None)
    page.goto(server.url + "/ui/?thread=thread-scroll")
    rows = page.get_by_test_id("span-row")
    rows.first.wait_for()
    assert rows.count() == 50
    page.get_by_test_id("list-foot").scroll_into_view_if_needed()
    page.get_by_text("60 calls").wait_for(timeout=10_000)
    assert rows.count() == 60
    for _ in range(3):
        page.mouse.wheel(0, 5000)
        page.wait_for_timeout(150)
    first_pages = [u for u in requests if "cursor=" not in u]
    cursor_pages = [u for u in requests if "cursor=" in u]
    assert len(first_pages) == 1, requests
    assert len(cursor_pages) == 1, requests
    ids = page.eval_on_selector_all(
        "[data-testid=span-row]", "rows => rows.map(r => r.dataset.spanId)"
    )
    assert len(ids) == len(set(ids)) == 60


def test_hostile_output_is_inert(server: Server, page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    completion = client(server).chat.completions.create(
        model="fake-small",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "XSS-PROBE <b onmouseover=alert(1)>bold</b>"},
                    {"type": "image_url", "image_url": {"url": "javascript:alert('img-url')"}},
                    {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
                ],
            }
        ],
    )
    content = completion.choices[0].message.content or ""
    assert "<script>" in content  # the upstream really sent markup
    page.goto(server.url + "/ui/")
    row = page.get_by_test_id("span-row").filter(has_text="XSS-PROBE")
    row.wait_for(timeout=10_000)
    row.click()
    output = page.get_by_test_id("span-output")
    output.wait_for()
    text = output.inner_text()
    assert "<script>window.__pwned = 'script'</script>" in text  # shown as text
    assert "onerror=" in text and "javascript:window.__pwned='md-link'" in text
    detail = page.get_by_test_id("span-detail")
    assert detail.locator("script, iframe, img, object, embed").count() == 0
    hrefs = detail.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs and not [h for h in hrefs if h and not h.startswith(("/", "http"))], hrefs
    # the http image is a link, never loaded; the javascript: one is plain text
    detail.locator("a[href='https://example.invalid/cat.png']").wait_for()
    assert detail.locator(".part-image").get_by_text("javascript:alert('img-url')").count() == 1
    # try to trigger every handler there could be
    detail.get_by_text("evil link").first.click()
    detail.get_by_text("bold").first.hover()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    screenshot(page, "04-hostile-span")
    assert not page.errors, page.errors
