"""Issue 11, the experiment page, in a real browser: a run replays with the original's
stream setting (a visible toggle), the comparison shows what changed in the request
above what changed in the output, any two runs compare, each run shows its parameters,
the editor offers each dialect its own parameters, an unset slider looks unset and can
be cleared, "+ system" goes on top, a missing key is reported at the key field and a
refused first run leaves nothing behind, and the Experiments list tells experiments
apart, links their original and shows the latest run's deltas."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import expect

from tests.browser.conftest import Server, screenshot
from tests.browser.upstream import LoopbackUpstream

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

KEY = "sk-test-expage-key-5678"


def call(server: Server, text: str, **params: Any) -> dict[str, Any]:
    """A call through the gateway with the openai SDK; its stored span."""
    api = OpenAI(base_url=server.url + "/v1", api_key=KEY)
    if params.get("stream"):
        with api.chat.completions.with_streaming_response.create(
            model="fake-small", messages=[{"role": "user", "content": text}], **params
        ) as raw:
            span_id = raw.headers["x-spanlab-span-id"]
            for _ in raw.iter_lines():
                pass
    else:
        response = api.chat.completions.with_raw_response.create(
            model="fake-small", messages=[{"role": "user", "content": text}], **params
        )
        span_id = response.headers["x-spanlab-span-id"]
    return server.span(span_id)


def run_from_page(page: Any, *, key: str | None = KEY) -> str:
    """Fill the key, press Run, wait for the run to be listed; the experiment id."""
    if key is not None:
        page.get_by_label("API key for runs").fill(key)
    count = page.get_by_test_id("run-history").locator("li").count()
    page.get_by_test_id("run-button").click()
    page.wait_for_url("**/ui/experiment?id=*")
    expect(page.get_by_test_id("run-history").locator("li")).to_have_count(
        count + 1, timeout=20_000
    )
    expect(page.get_by_test_id("run-button")).to_be_enabled(timeout=20_000)
    return str(page.url.split("id=")[1])


def latest_run(server: Server, experiment_id: str) -> dict[str, Any]:
    runs = server.get(f"/experiments/{experiment_id}/runs").json()["data"]
    run: dict[str, Any] = runs[0]
    assert run["status"] == "completed", run
    return run


def test_a_run_keeps_the_original_stream_setting_unless_toggled(
    server: Server, upstream: LoopbackUpstream, page: Any
) -> None:
    for streamed in (False, True):
        original = call(server, f"Stream probe {streamed}", stream=streamed)
        assert original["stream"] is streamed
        page.goto(f"{server.url}/ui/experiment?span_id={original['span_id']}")
        toggle = page.get_by_test_id("stream-toggle")
        expect(toggle).to_be_visible()
        (expect(toggle).to_be_checked if streamed else expect(toggle).not_to_be_checked)()
        expect(page.get_by_test_id("original-stream")).to_have_text(
            "(original: streamed)" if streamed else "(original: not streamed)"
        )
        calls = len(upstream.seen)
        experiment_id = run_from_page(page)
        run = latest_run(server, experiment_id)
        result = server.span(run["result_span_id"])
        assert result["stream"] is streamed is run["stream"]
        assert bool(upstream.seen[calls]["body"].get("stream")) is streamed

        # the toggle changes it, and the comparison says so in the request changes
        toggle.click()
        (expect(toggle).not_to_be_checked if streamed else expect(toggle).to_be_checked)()
        run_from_page(page, key=None)
        run = latest_run(server, experiment_id)
        assert server.span(run["result_span_id"])["stream"] is (not streamed)
        stream_change = (
            page.get_by_test_id("request-changes-parameters")
            .get_by_test_id("request-change")
            .filter(has=page.locator("code", has_text=re.compile(r"^stream$")))
        )
        expect(stream_change).to_contain_text(
            f"{str(streamed).lower()} \u2192 {str(not streamed).lower()}"
        )
    screenshot(page, "expage-stream-toggle")
    assert not page.errors, page.errors


def test_request_changes_run_parameters_and_any_two_runs(server: Server, page: Any) -> None:
    api = OpenAI(base_url=server.url + "/v1", api_key=KEY)
    raw = api.chat.completions.with_raw_response.create(
        model="fake-small",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Compare probe question"},
        ],
        temperature=0.2,
    )
    span_id = server.wait_span(raw.headers["x-spanlab-span-id"])
    page.goto(f"{server.url}/ui/experiment?span_id={span_id}")
    page.get_by_label("temperature", exact=True).fill("1.3")
    experiment_id = run_from_page(page)

    changes = page.get_by_test_id("request-changes")
    expect(changes.get_by_test_id("request-changes-parameters")).to_contain_text(
        "temperature0.2 \u2192 1.3"
    )
    expect(changes.get_by_test_id("request-changes-system")).to_have_count(0)
    # what changed in the request comes before what changed in the output
    order = page.evaluate(
        """() => {
            const req = document.querySelector('[data-testid=request-changes]');
            const out = document.querySelector('[data-testid=compare-original]');
            return Boolean(req.compareDocumentPosition(out) & Node.DOCUMENT_POSITION_FOLLOWING);
        }"""
    )
    assert order
    history = page.get_by_test_id("run-history").locator("li")
    expect(history.first.get_by_test_id("run-params")).to_have_text("temperature 1.3")

    # a second run with another system prompt
    page.get_by_label("Message 1 content").fill("You are verbose.")
    run_from_page(page, key=None)
    expect(history.first.get_by_test_id("run-params")).to_contain_text("system prompt changed")
    expect(history.nth(1).get_by_test_id("run-params")).to_have_text("temperature 1.3")

    # run #1 against run #2: only the system prompt changed between them
    runs = server.get(f"/experiments/{experiment_id}/runs").json()["data"]
    page.get_by_label("Compare A").select_option(runs[1]["id"])
    expect(page.get_by_test_id("compare-original")).to_contain_text("Run #1")
    expect(page.get_by_test_id("compare-result")).to_contain_text("Run #2")
    expect(changes.get_by_test_id("request-changes-system")).to_contain_text("terse")
    expect(changes.get_by_test_id("request-changes-system").locator("ins")).to_have_text("verbose")
    expect(changes.get_by_test_id("request-changes-parameters")).to_have_count(0)
    first = server.span(runs[1]["result_span_id"])
    expect(page.get_by_test_id("output-original")).to_have_text(first["output_text"])
    # and any run can be B: run #1 against itself changes nothing
    page.get_by_label("Compare B").select_option(runs[1]["id"])
    expect(changes).to_contain_text("Nothing: the same request was sent.")
    screenshot(page, "expage-two-runs")
    assert not page.errors, page.errors


def test_editor_params_per_dialect_unset_sliders_and_system_on_top(
    server: Server, page: Any
) -> None:
    original = call(server, "Editor probe without temperature")
    page.goto(f"{server.url}/ui/experiment?span_id={original['span_id']}")
    params = page.locator("[data-param]")
    params.first.wait_for()
    expect(page.locator("[data-param='top_k']")).to_have_count(0)  # not on an OpenAI chat
    expect(page.locator("[data-param='max_completion_tokens']")).to_have_count(1)

    temperature = page.locator("[data-param='temperature']")
    slider = temperature.get_by_label("temperature slider")
    expect(slider).to_have_attribute("data-unset", "true")
    expect(slider).to_have_attribute("aria-valuetext", "unset")
    expect(temperature).to_contain_text("unset")
    expect(temperature.get_by_label("temperature", exact=True)).to_have_value("")
    slider.focus()
    page.keyboard.press("ArrowRight")  # moving it sets a value
    expect(slider).not_to_have_attribute("data-unset", "true")
    value = temperature.get_by_label("temperature", exact=True).input_value()
    assert value and 0 < float(value) <= 2
    temperature.get_by_role("button", name="Clear temperature").click()
    expect(slider).to_have_attribute("data-unset", "true")
    expect(temperature.get_by_label("temperature", exact=True)).to_have_value("")
    page.get_by_role("tab", name="JSON").click()
    assert '"temperature"' not in page.get_by_test_id("json-editor").inner_text()
    page.get_by_role("tab", name="Visual").click()

    page.get_by_role("button", name="+ system").click()
    expect(page.get_by_label("Message 1 role")).to_have_value("system")
    expect(page.get_by_label("Message 2 content")).to_have_value("Editor probe without temperature")
    # the stream toggle edits the request itself: JSON mode shows it at once
    page.get_by_role("tab", name="JSON").click()
    page.get_by_test_id("stream-toggle").check()
    expect(page.get_by_test_id("json-editor")).to_contain_text('"stream": true')
    page.get_by_test_id("stream-toggle").uncheck()
    expect(page.get_by_test_id("json-editor")).not_to_contain_text('"stream"')
    page.get_by_role("tab", name="Visual").click()

    # an Anthropic messages experiment and a Responses one get their own parameters
    for operation, request, present, absent in (
        (
            "messages",
            {"model": "claude-x", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]},
            ["top_k", "stop_sequences", "max_tokens"],
            ["seed", "frequency_penalty", "max_output_tokens"],
        ),
        (
            "responses",
            {"model": "gpt-x", "input": "x"},
            ["max_output_tokens", "reasoning"],
            ["max_tokens", "top_k", "seed"],
        ),
    ):
        created = httpx.post(
            server.url + "/experiments",
            json={
                "original_span_id": f"elsewhere-{operation}",
                "original_trace_id": "t",
                "operation": operation,
                "original_request": request,
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        page.goto(f"{server.url}/ui/experiment?id={created.json()['id']}")
        page.locator("[data-param]").first.wait_for()
        for name in present:
            expect(page.locator(f"[data-param='{name}']")).to_have_count(1)
        for name in absent:
            expect(page.locator(f"[data-param='{name}']")).to_have_count(0)
    assert not page.errors, page.errors


def test_a_missing_key_is_shown_at_the_key_field_and_saves_nothing(
    server: Server, upstream: LoopbackUpstream, page: Any
) -> None:
    original = call(server, "Missing key probe")
    page.goto(f"{server.url}/ui/experiment?span_id={original['span_id']}")
    page.get_by_label("Message 1 content").fill("Missing key probe, edited")
    calls = len(upstream.seen)
    page.get_by_test_id("run-button").click()
    key_error = page.get_by_test_id("key-error")
    expect(key_error).to_be_visible()
    expect(key_error).to_contain_text("authorization")
    expect(page.get_by_label("API key for runs")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("API key for runs")).to_be_focused()
    # the key error sits with the key field
    assert page.locator(".api-key + [data-testid=key-error]").count() == 1
    expect(page.get_by_test_id("run-button")).to_be_enabled()
    assert "span_id=" in page.url  # still the unsaved draft, edits kept
    expect(page.get_by_label("Message 1 content")).to_have_value("Missing key probe, edited")
    assert len(upstream.seen) == calls
    listed = server.get("/experiments", params={"span": original["span_id"]}).json()["data"]
    assert listed == []  # no half-made experiment, no run
    screenshot(page, "expage-missing-key")

    experiment_id = run_from_page(page)
    expect(page.get_by_test_id("key-error")).to_have_count(0)
    listed = server.get("/experiments", params={"span": original["span_id"]}).json()["data"]
    assert [e["id"] for e in listed] == [experiment_id]
    assert latest_run(server, experiment_id)["request"]["messages"][0]["content"] == (
        "Missing key probe, edited"
    )
    assert not page.errors, page.errors


def test_experiments_list_names_links_and_latest_run(server: Server, page: Any) -> None:
    first = call(server, "Describe the tallest mountain in Europe briefly please")
    second = call(server, "Summarise yesterday's meeting notes")
    page.goto(f"{server.url}/ui/experiment?span_id={first['span_id']}")
    run_id = run_from_page(page)
    unnamed = httpx.post(
        server.url + "/experiments", json={"original_span_id": second["span_id"]}, timeout=10
    )
    assert unnamed.status_code == 201
    never_run = unnamed.json()

    page.goto(server.url + "/ui/experiments")
    ran = page.locator(f"[data-experiment-id='{run_id}']")
    idle = page.locator(f"[data-experiment-id='{never_run['id']}']")
    stamp = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
    expect(ran.locator(".exp-name")).to_have_text(
        re.compile(
            r"^Describe the tallest mountain in Europe\u2026 \u00b7 fake-small \u00b7 " + stamp
        )
    )
    expect(idle.locator(".exp-name")).to_have_text(
        re.compile(r"^Summarise yesterday's meeting notes \u00b7 fake-small \u00b7 " + stamp)
    )
    cell = ran.get_by_test_id("latest-run")
    expect(cell).to_contain_text("completed")
    summary = server.get("/experiments", params={"include": "latest_run"}).json()["data"]
    mine = next(e for e in summary if e["id"] == run_id)["latest_run"]
    tokens = mine["total_tokens"]
    assert tokens["original"] is not None and tokens["result"] is not None
    sign = "+" if tokens["delta"] > 0 else "\u2212" if tokens["delta"] < 0 else "\u00b1"
    expect(cell).to_contain_text(f"tokens {sign}{abs(tokens['delta'])} (")
    expect(cell).to_contain_text(re.compile(r"latency [+\u2212\u00b1]"))
    expect(idle).to_contain_text("not run")

    ran.get_by_test_id("original-link").click()
    page.wait_for_url(f"**/ui/spans/{first['span_id']}")
    screenshot(page, "expage-original-from-list")
    assert not page.errors, page.errors


def test_a_model_the_gateway_refuses_is_shown_at_the_model_field(
    server: Server, upstream: LoopbackUpstream, page: Any
) -> None:
    """A messages experiment whose model routes to an OpenAI provider is refused before
    anything is sent: the reason is shown at the model field and no run is kept."""
    created = httpx.post(
        server.url + "/experiments",
        json={
            "original_span_id": "elsewhere-model-probe",
            "original_trace_id": "t",
            "operation": "messages",
            "original_request": {
                "model": "claude-x",
                "max_tokens": 9,
                "messages": [{"role": "user", "content": "x"}],
            },
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    experiment_id = created.json()["id"]
    page.goto(f"{server.url}/ui/experiment?id={experiment_id}")
    calls = len(upstream.seen)
    page.get_by_test_id("run-button").click()
    model_error = page.get_by_test_id("model-error")
    expect(model_error).to_contain_text("Messages API")
    expect(page.get_by_label("Model", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("key-error")).to_have_count(0)
    assert len(upstream.seen) == calls
    assert server.get(f"/experiments/{experiment_id}/runs").json()["data"] == []
    # editing the model clears the note
    page.get_by_label("Model", exact=True).fill("claude-y")
    expect(model_error).to_have_count(0)
    assert not page.errors, page.errors
