"""Traces for daily use, in a real browser: replays badged and hidden on demand, the
summary strip and its charts, the preview column's header, the drawer beside the
columns a user compares (resizable by mouse and keyboard), j/k through the calls, and
the drawer as a full-screen sheet on a phone."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import expect

from tests.browser.conftest import Server, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

KEY = "sk-test-not-a-secret"


def calls(server: Server, thread: str, *questions: str) -> list[str]:
    """One call per question in ``thread``; their span ids, once stored."""
    api = OpenAI(base_url=server.url + "/v1", api_key=KEY, default_headers={"x-thread-id": thread})
    ids = []
    for question in questions:
        raw = api.chat.completions.with_raw_response.create(
            model="fake-small", messages=[{"role": "user", "content": question}]
        )
        ids.append(server.wait_span(raw.headers["x-spanlab-span-id"]))
    return ids


def replay(server: Server, span_id: str) -> str:
    """An experiment on ``span_id``, run once; the replay's span id."""
    created = httpx.post(
        server.url + "/experiments", json={"original_span_id": span_id}, timeout=10
    )
    assert created.status_code == 201, created.text
    done = httpx.post(
        server.url + f"/experiments/{created.json()['id']}/run",
        headers={"authorization": f"Bearer {KEY}"},
        timeout=20,
    )
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    return server.wait_span(done.json()["result_span_id"])


def rows(page: Any) -> Any:
    return page.get_by_test_id("span-row")


def row_ids(page: Any) -> list[str]:
    return [r.get_attribute("data-span-id") for r in rows(page).all()]


def box(locator: Any) -> dict[str, float]:
    found: dict[str, float] | None = locator.bounding_box()
    assert found is not None, locator
    return found


def test_replays_are_badged_and_can_be_hidden(server: Server, page: Any) -> None:
    page.goto(server.url + "/ui/?thread=replay-thread")
    page.get_by_test_id("live-state").filter(has_text="Live").wait_for(timeout=10_000)
    (original,) = calls(server, "replay-thread", "What is a replay probe?")
    replayed = replay(server, original)
    # Both arrive live, the replay badged (its origin comes with the live event).
    page.locator(f"tr[data-span-id='{replayed}']").get_by_test_id("origin-badge").wait_for()
    assert set(row_ids(page)) == {original, replayed}
    replay_row = page.locator(f"tr[data-span-id='{replayed}']")
    badge = replay_row.get_by_test_id("origin-badge")
    assert badge.is_visible() and badge.inner_text() == "experiment"
    assert (
        page.locator(f"tr[data-span-id='{original}']").get_by_test_id("origin-badge").count() == 0
    )
    screenshot(page, "traces-replay-badge")

    page.get_by_test_id("replays-filter").select_option("hide")
    page.wait_for_url(re.compile(r"replays=hide"))
    replay_row.wait_for(state="detached")
    page.locator(f"tr[data-span-id='{original}']").wait_for()
    assert row_ids(page) == [original]
    page.reload()  # kept in the URL like the other filters
    rows(page).first.wait_for()
    assert row_ids(page) == [original]
    assert page.get_by_test_id("replays-filter").input_value() == "hide"
    strip = page.get_by_test_id("trace-summary")
    strip.locator(".summary-figure", has_text="Calls").locator("dd").filter(has_text="1").wait_for()

    page.get_by_test_id("replays-filter").select_option("only")
    page.wait_for_url(re.compile(r"replays=only"))
    page.locator(f"tr[data-span-id='{original}']").wait_for(state="detached")
    replay_row.wait_for()
    assert row_ids(page) == [replayed]

    # The thread's totals leave the replay out, and say it is there.
    thread = next(
        t for t in server.get("/threads").json()["data"] if t["thread_id"] == "replay-thread"
    )
    assert (thread["calls"], thread["replays"]) == (1, 1)


def test_the_preview_column_says_it_shows_the_last_user_message(server: Server, page: Any) -> None:
    api = OpenAI(
        base_url=server.url + "/v1", api_key=KEY, default_headers={"x-thread-id": "preview"}
    )
    raw = api.chat.completions.with_raw_response.create(
        model="fake-small",
        messages=[
            {"role": "user", "content": "Opening question about otters"},
            {"role": "assistant", "content": "Otters are mustelids."},
            {"role": "user", "content": "Follow-up about their diet"},
        ],
    )
    server.wait_span(raw.headers["x-spanlab-span-id"])
    page.goto(server.url + "/ui/?thread=preview")
    row = rows(page).first
    row.wait_for()
    headers = page.get_by_test_id("spans-table").locator("thead th").all_inner_texts()
    assert headers[-1] == "Last user message"
    preview = row.locator("td").last.inner_text()
    assert preview == "Follow-up about their diet"


def test_the_summary_strip_totals_the_filter_and_charts_it(server: Server, page: Any) -> None:
    calls(server, "strip-thread", "Strip probe one", "Strip probe two", "Strip probe three")
    total = server.get("/stats", params={"group_by": "total", "thread": "strip-thread"}).json()[
        "data"
    ][0]
    page.goto(server.url + "/ui/?thread=strip-thread&range=1h")
    strip = page.get_by_test_id("trace-summary")
    strip.locator(".summary-figure", has_text="Calls").locator("dd").filter(has_text="3").wait_for()
    tokens = strip.locator(".summary-figure", has_text="Tokens").locator("dd").inner_text()
    assert tokens == f"{total['total_tokens']:,}"
    latency = strip.locator(".summary-figure", has_text="Latency").locator("dd").inner_text()
    assert re.fullmatch(r"[\d.]+ m?s / [\d.]+ m?s", latency), latency
    chart = page.get_by_test_id("chart-calls").get_by_role("img")
    chart.wait_for()
    label = chart.get_attribute("aria-label")
    # The last hour in minutes, with the figures in words for screen readers.
    assert re.search(r"Calls and errors, 6\d minutes from", label), label
    assert "calls 3 in all, peak" in label and "errors 0 in all" in label
    assert page.get_by_test_id("chart-latency").get_by_role("img").get_attribute("aria-label")
    cost = page.get_by_test_id("chart-cost").get_by_role("img").get_attribute("aria-label")
    assert cost.startswith("Cost, ")
    screenshot(page, "traces-summary")
    # A call arriving live is counted in (after a short pause: at most one refresh
    # every few seconds).
    calls(server, "strip-thread", "Strip probe four")
    strip.locator(".summary-figure", has_text="Calls").locator("dd").filter(has_text="4").wait_for(
        timeout=10_000
    )
    expect(chart).to_have_attribute("aria-label", re.compile("calls 4 in all"))


def test_the_drawer_leaves_the_compared_columns_and_resizes(server: Server, page: Any) -> None:
    calls(server, "drawer-thread", "Drawer probe about a long-ish question here")
    page.goto(server.url + "/ui/?thread=drawer-thread")
    rows(page).first.click()
    drawer = page.locator("aside.drawer")
    page.get_by_test_id("span-detail").wait_for()
    left = box(drawer)["x"]
    for name in ("Latency", "Tokens", "Cost"):
        header = page.get_by_test_id("spans-table").locator("th", has_text=name)
        assert header.is_visible(), name
        edge = box(header)
        assert edge["x"] + edge["width"] <= left, (name, edge, left)
    cost_cell = rows(page).first.locator("td.num").last
    assert box(cost_cell)["x"] + box(cost_cell)["width"] <= left
    screenshot(page, "traces-drawer-split")

    handle = page.get_by_test_id("drawer-resize")
    width = box(drawer)["width"]
    handle.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert box(drawer)["width"] == pytest.approx(width + 64, abs=1)
    assert handle.get_attribute("aria-valuenow") == str(round(width + 64))
    page.keyboard.press("ArrowRight")
    assert box(drawer)["width"] == pytest.approx(width + 32, abs=1)
    # A drag: the drawer's edge follows the pointer.
    grip = box(handle)
    page.mouse.move(grip["x"] + 2, grip["y"] + 200)
    page.mouse.down()
    page.mouse.move(grip["x"] + 120, grip["y"] + 200, steps=4)
    page.mouse.up()
    assert box(drawer)["width"] == pytest.approx(width + 32 - 118, abs=3)
    # The width is kept for the next visit.
    page.reload()
    page.get_by_test_id("span-detail").wait_for()
    assert box(page.locator("aside.drawer"))["width"] == pytest.approx(width + 32 - 118, abs=3)


def test_j_k_and_arrows_move_through_the_calls_and_escape_closes(server: Server, page: Any) -> None:
    ids = calls(server, "nav-thread", "Nav probe one", "Nav probe two", "Nav probe three")
    newest_first = ids[::-1]
    page.goto(server.url + "/ui/?thread=nav-thread")
    rows(page).nth(2).wait_for()
    assert row_ids(page) == newest_first

    def selected() -> str | None:
        match = re.search(r"[?&]span=([^&]+)", page.url)
        return match.group(1) if match else None

    rows(page).first.click()
    page.get_by_test_id("span-detail").wait_for()
    assert selected() == newest_first[0]
    page.keyboard.press("j")
    page.wait_for_url(re.compile(f"span={newest_first[1]}"))
    page.keyboard.press("ArrowDown")
    page.wait_for_url(re.compile(f"span={newest_first[2]}"))
    page.keyboard.press("j")  # the last call: stays
    assert selected() == newest_first[2]
    page.keyboard.press("k")
    page.wait_for_url(re.compile(f"span={newest_first[1]}"))
    page.keyboard.press("ArrowUp")
    page.wait_for_url(re.compile(f"span={newest_first[0]}"))
    assert page.locator(f"tr.selected[data-span-id='{newest_first[0]}']").is_visible()

    # Typing in a field is typing, not a move.
    search = page.get_by_role("searchbox", name="Search")
    search.click()
    search.press("j")
    search.press("ArrowDown")
    assert selected() == newest_first[0]
    assert search.input_value() == "j"
    search.fill("")

    page.locator("h1").click()
    page.keyboard.press("Escape")
    page.locator("aside.drawer").wait_for(state="detached")
    assert selected() is None


def test_on_a_phone_the_drawer_is_a_full_screen_sheet(server: Server, browser: Any) -> None:
    (span_id,) = calls(server, "phone-thread", "Phone probe")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(server.url + f"/ui/?thread=phone-thread&span={span_id}")
        page.get_by_test_id("span-detail").wait_for()
        sheet = box(page.locator("aside.drawer"))
        assert (sheet["x"], sheet["y"]) == (0, 0)
        assert sheet["width"] == pytest.approx(390, abs=1)
        assert sheet["height"] == pytest.approx(844, abs=1)
        assert not page.get_by_test_id("drawer-resize").is_visible()
        for control in (
            page.get_by_test_id("experiment-button"),
            page.get_by_role("button", name="Close detail"),
        ):
            assert control.is_visible()
            edge = box(control)
            assert edge["x"] >= 0 and edge["x"] + edge["width"] <= 390, edge
            assert edge["y"] >= 0 and edge["y"] + edge["height"] <= 844, edge
        # Still there after scrolling the sheet's content.
        page.locator("aside.drawer").locator(".drawer-body").evaluate(
            "el => el.scrollTo(0, el.scrollHeight)"
        )
        close = page.get_by_role("button", name="Close detail")
        assert 0 <= box(close)["y"] < 844
        screenshot(page, "traces-phone-sheet")
        close.click()
        page.locator("aside.drawer").wait_for(state="detached")
    finally:
        context.close()
