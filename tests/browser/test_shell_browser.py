"""The app shell in a real browser, on a phone (390x844) and a desktop (1440x900):
no page is wider than the screen, the navigation collapses to a menu that opens,
closes with Escape and navigates by keyboard, model names stay on one line, costs
are money, and ids are shown as stored (never uppercased by a label's style)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.browser.conftest import Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1440, "height": 900}
MODEL = "gpt-4o-mini-2024-07-18"
THREAD = "thread-shell-Layout"
TOOL_CALL_ID = "call_AbC123xYz"
QUESTION = "What is the weather in Lisbon today, and should I take an umbrella?"


@pytest.fixture(scope="module")
def seeded(server: Server) -> dict[str, str]:
    """Two real calls through the gateway: a plain one and one carrying a tool call."""
    api = OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-test-not-a-secret",
        default_headers={"x-thread-id": THREAD},
    )
    api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    api.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Weather in Lisbon?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": TOOL_CALL_ID,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": "light rain, 14 C"},
        ],
    )
    spans = server.wait_spans(2, thread=THREAD)
    by_kind = {
        ("tool" if "Weather in Lisbon?" in (s.get("input_preview") or "") else "plain"): s
        for s in spans
    }
    ids = {kind: span["span_id"] for kind, span in by_kind.items()}
    assert set(ids) == {"plain", "tool"}, spans
    if server.has_experiments_api():
        created = httpx.post(
            server.url + "/experiments",
            json={
                "name": "Lisbon weather with a much longer experiment name than fits a phone",
                "description": "Does the umbrella advice change with the temperature?",
                "original_span_id": ids["plain"],
                "tags": ["layout", "phone"],
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        ids["experiment"] = created.json()["id"]
    return ids


def new_page(browser: Any, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    return page


def overflow(page: Any) -> tuple[int, int]:
    """(document width, viewport width): the page overflows when the first is larger."""
    result: list[int] = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return result[0], result[1]


LINE_COUNT = """el => {
    const text = [...el.childNodes]
      .find(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const r = document.createRange(); r.selectNodeContents(text || el);
    return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"""


def one_line(page: Any, selector: str) -> bool:
    """Whether the element's text lays out on a single line."""
    lines: int = page.eval_on_selector(selector, LINE_COUNT)
    return lines == 1


def pages_to_visit(server: Server, seeded: dict[str, str]) -> list[tuple[str, str, str]]:
    """(name, url, a selector that shows the page has its content)."""
    pages = [
        ("traces", "/ui/", "[data-testid=span-row]"),
        ("span", f"/ui/spans/{seeded['plain']}", "[data-testid=span-detail]"),
        ("threads", "/ui/threads", f"code:text('{THREAD}')"),
    ]
    if "experiment" in seeded:
        pages += [
            ("experiments", "/ui/experiments", "[data-testid=experiment-row]"),
            (
                "experiment",
                f"/ui/experiment?id={seeded['experiment']}",
                "[data-testid=experiment-page]",
            ),
        ]
    else:
        pages.append(("experiments", "/ui/experiments", "[data-testid=experiments-table]"))
    return pages


@pytest.mark.parametrize("viewport", [PHONE, TABLET, DESKTOP], ids=["phone", "tablet", "desktop"])
def test_no_page_overflows(
    server: Server, browser: Any, seeded: dict[str, str], viewport: dict[str, int]
) -> None:
    page = new_page(browser, viewport)
    try:
        visited = []
        for name, url, ready in pages_to_visit(server, seeded):
            page.goto(server.url + url)
            page.locator(ready).first.wait_for(timeout=10_000)
            page.wait_for_timeout(200)  # late content (live badge, lazy chunks) settles
            width, screen = overflow(page)
            screenshot(page, f"shell-{viewport['width']}-{name}")
            assert width <= screen, f"{name} is {width}px wide on a {screen}px screen"
            visited.append(name)
            if name == "span":
                # the model in the title breaks at most at a hyphen, never letter by letter
                lines = page.eval_on_selector(".detail-title", LINE_COUNT)
                assert lines <= 2, f"the model name takes {lines} lines"
        assert visited[:4] == ["traces", "span", "threads", "experiments"]

        # the table scrolls inside its own box, never the page
        page.goto(server.url + "/ui/")
        row = page.get_by_test_id("span-row").first
        row.wait_for()
        box = page.eval_on_selector(
            ".table-wrap", "el => [el.scrollWidth, el.clientWidth, getComputedStyle(el).overflowX]"
        )
        assert box[2] in ("auto", "scroll")
        if viewport is PHONE:
            assert box[0] > box[1], "the phone's table should scroll inside its box"
        # a model name is one word on one line, and a cost is money
        assert one_line(page, f"[data-span-id='{seeded['plain']}'] .model-cell")
        cost = row.locator("td").nth(8).inner_text()  # after the selection checkbox
        assert re.fullmatch(r"\u2013|\u2212?\$\d[\d,]*(\.\d+)?", cost), cost
        assert not page.errors, page.errors
    finally:
        page.context.close()


def test_phone_menu_opens_closes_and_navigates(server: Server, browser: Any) -> None:
    page = new_page(browser, PHONE)
    try:
        page.goto(server.url + "/ui/")
        button = page.get_by_test_id("menu-button")
        threads_link = page.locator("#main-nav").get_by_role("link", name="Threads")
        # The shell appears once the session is known (GET /session, keys or not).
        button.wait_for(state="visible", timeout=10_000)
        assert button.get_attribute("aria-expanded") == "false"
        assert not threads_link.is_visible()
        # the nav does not eat the phone's width: the page starts near the left edge
        left = page.eval_on_selector(".content", "el => el.getBoundingClientRect().left")
        assert left < 20, left

        button.click()
        assert button.get_attribute("aria-expanded") == "true"
        threads_link.wait_for(state="visible")
        screenshot(page, "shell-390-menu-open")
        page.keyboard.press("Escape")
        threads_link.wait_for(state="hidden")
        assert button.get_attribute("aria-expanded") == "false"
        assert page.evaluate("document.activeElement.dataset.testid") == "menu-button"

        # by keyboard: Enter opens it with focus on the first link, Tab moves, Enter follows
        page.keyboard.press("Enter")
        threads_link.wait_for(state="visible")
        assert page.evaluate("document.activeElement.textContent").endswith("Traces")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent").endswith("Threads")
        page.keyboard.press("Enter")
        page.wait_for_url("**/ui/threads")
        page.get_by_role("heading", name="Threads").wait_for()
        threads_link.wait_for(state="hidden")
        assert button.get_attribute("aria-expanded") == "false"

        # tabbing past the last link closes the menu
        button.click()
        threads_link.wait_for(state="visible")
        for _ in range(page.locator("#main-nav a").count()):  # focus starts on the first
            page.keyboard.press("Tab")
        threads_link.wait_for(state="hidden")
        assert button.get_attribute("aria-expanded") == "false"

        # by pointer, to the experiments page
        button.click()
        page.locator("#main-nav").get_by_role("link", name="Experiments").click()
        page.wait_for_url("**/ui/experiments")
        page.get_by_role("heading", name="Experiments").wait_for()
        assert not page.errors, page.errors
    finally:
        page.context.close()


def test_desktop_keeps_the_sidebar(server: Server, browser: Any) -> None:
    page = new_page(browser, DESKTOP)
    try:
        page.goto(server.url + "/ui/")
        assert not page.get_by_test_id("menu-button").is_visible()
        link = page.locator("#main-nav").get_by_role("link", name="Threads")
        assert link.is_visible()
        link.click()
        page.wait_for_url("**/ui/threads")
    finally:
        page.context.close()


def test_ids_are_never_uppercased(server: Server, browser: Any, seeded: dict[str, str]) -> None:
    page = new_page(browser, DESKTOP)
    try:
        page.goto(server.url + f"/ui/spans/{seeded['tool']}")
        detail = page.get_by_test_id("span-detail")
        detail.wait_for(timeout=10_000)
        tool_message = detail.locator(".msg[data-role='tool']")
        tool_message.wait_for()
        # innerText is the text as rendered, after any text-transform
        assert TOOL_CALL_ID in tool_message.inner_text(), tool_message.inner_text()
        assert TOOL_CALL_ID in detail.locator(".tool-call").first.inner_text()
        assert TOOL_CALL_ID.upper() not in detail.inner_text()
        # the label around it is still a label: its own style is unchanged
        role = tool_message.locator(".msg-role")
        assert role.evaluate("el => getComputedStyle(el).textTransform") == "uppercase"
        transforms = page.eval_on_selector_all(
            "code, pre, .mono",
            "els => [...new Set(els.map(e => getComputedStyle(e).textTransform))]",
        )
        assert transforms == ["none"], transforms
    finally:
        page.context.close()


def test_an_experiment_run_and_its_comparison_fit_a_phone(
    server: Server, browser: Any, seeded: dict[str, str]
) -> None:
    if "experiment" not in seeded:
        pytest.skip("the experiments API is not on this branch")
    page = new_page(browser, PHONE)
    try:
        page.goto(server.url + f"/ui/experiment?id={seeded['experiment']}")
        page.get_by_test_id("experiment-page").wait_for(timeout=10_000)
        page.get_by_label("API key for runs").fill("sk-test-not-a-secret")
        page.get_by_test_id("run-button").click()
        page.get_by_test_id("compare-result").get_by_text("Reply at temperature").wait_for(
            timeout=20_000
        )
        page.get_by_test_id("metrics").wait_for()
        page.get_by_test_id("run-history").locator("li").first.wait_for()
        page.wait_for_timeout(300)
        width, screen = overflow(page)
        page.get_by_test_id("compare-result").scroll_into_view_if_needed()
        # the comparison fits its panel: a wide table scrolls by itself, not the panel
        panel = page.eval_on_selector(".results-panel", "el => [el.scrollWidth, el.clientWidth]")
        assert panel[0] <= panel[1] + 1, f"the results panel scrolls sideways: {panel}"
        screenshot(page, "shell-390-experiment-run")
        assert width <= screen, f"the experiment page is {width}px wide on a {screen}px screen"
        assert not page.errors, page.errors
    finally:
        page.context.close()
