"""The span detail in a real browser, for every kind of call: embeddings summarised
(inputs, vectors, dimensions; never the vectors), a model list, Responses API items,
ids shown exactly as recorded (a lower-case tool-call id used to be upper-cased by the
role label's CSS), and a record with fields of unexpected types written straight into
the database: the page renders what it can and names the bad fields, never blank."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openai import OpenAI

from tests.browser.conftest import Server, screenshot
from tests.browser.upstream import LoopbackUpstream
from tests.upstream.server import Reply

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

DIMENSIONS = 24
VECTOR_MARK = 0.7654321  # a value in every vector: it must never appear on the page
TOOL_CALL_ID = "call_lower_abc123xyz"


class DetailUpstream(LoopbackUpstream):
    """The browser upstream, also answering embeddings and the Responses API."""

    def answer(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        path = urlsplit(target).path
        if method == "POST" and path.endswith("/embeddings"):
            body = json.loads(raw)
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [VECTOR_MARK] * DIMENSIONS}
                for i in range(len(inputs))
            ]
            payload = {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
            return Reply(200, "application/json", [json.dumps(payload).encode()])
        if method == "POST" and path.endswith("/responses"):
            body = json.loads(raw)
            payload = {
                "id": "resp_1",
                "object": "response",
                "model": body["model"],
                "status": "completed",
                "output": [
                    {
                        "type": "reasoning",
                        "id": "rs_1",
                        "summary": [{"type": "summary_text", "text": "Weighing the weather tool"}],
                    },
                    {
                        "type": "function_call",
                        "id": "fc_1",
                        "call_id": "call_resp_lower",
                        "name": "get_weather",
                        "arguments": '{"city": "Oslo"}',
                    },
                    {
                        "type": "message",
                        "id": "msg_1",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "Checking Oslo."}],
                    },
                ],
                "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
            }
            return Reply(200, "application/json", [json.dumps(payload).encode()])
        return super().answer(method, target, headers, raw)


@pytest.fixture(scope="module")
def upstream() -> Iterator[LoopbackUpstream]:
    with DetailUpstream() as up:
        yield up


def api(server: Server) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="sk-test-not-a-secret", max_retries=0)


def open_span(page: Any, server: Server, span_id: str) -> Any:
    page.goto(f"{server.url}/ui/spans/{span_id}")
    detail = page.get_by_test_id("span-detail")
    detail.wait_for(timeout=10_000)
    return detail


def test_tool_call_ids_are_shown_exactly_as_recorded(server: Server, page: Any) -> None:
    raw = api(server).chat.completions.with_raw_response.create(
        model="fake-small",
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": TOOL_CALL_ID,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": TOOL_CALL_ID, "content": "sunny"},
        ],
    )
    span_id = server.wait_span(raw.headers["x-spanlab-span-id"])
    detail = open_span(page, server, span_id)
    detail.locator(".msg[data-role='tool']").wait_for()
    # innerText applies CSS text-transform: the id must read as recorded, in both
    # places (the assistant's call and the tool message that answers it)
    assert detail.inner_text().count(TOOL_CALL_ID) == 2, detail.inner_text()
    transforms = detail.evaluate(
        """(root, id) => [...root.querySelectorAll('*')]
            .filter(e => [...e.childNodes]
                .some(n => n.nodeType === 3 && n.textContent.includes(id)))
            .map(e => getComputedStyle(e).textTransform)""",
        TOOL_CALL_ID,
    )
    assert len(transforms) >= 2 and set(transforms) == {"none"}, transforms
    assert not page.errors, page.errors


def test_embeddings_show_counts_and_dimensions_never_vectors(server: Server, page: Any) -> None:
    raw = api(server).embeddings.with_raw_response.create(
        model="fake-embed", input=["first text", "second text", "third text"]
    )
    span_id = server.wait_span(raw.headers["x-spanlab-span-id"])
    detail = open_span(page, server, span_id)
    summary = page.get_by_test_id("embeddings-summary")
    summary.wait_for()
    rows = dict(line.split("\n", 1) for line in summary.locator(".kv-row").all_inner_texts())
    assert rows["inputs"].strip() == "3"
    assert rows["vectors returned"].strip() == "3"
    assert rows["dimensions"].strip() == str(DIMENSIONS)
    screenshot(page, "detail-embeddings")
    for details in detail.locator("details").all():
        details.locator("summary").click()  # open the raw request and response too
    assert "second text" in detail.inner_text()
    assert str(VECTOR_MARK) not in page.content()
    assert f"[{DIMENSIONS} values, not shown]" in detail.inner_text()
    assert not page.errors, page.errors


def test_model_list_and_responses_items(server: Server, page: Any) -> None:
    models = httpx.get(
        server.url + "/v1/models", headers={"authorization": "Bearer sk-test-not-a-secret"}
    )
    assert models.status_code == 200
    span_id = server.wait_span(models.headers["x-spanlab-span-id"])
    open_span(page, server, span_id)
    ids = page.get_by_test_id("model-ids").locator("li").all_inner_texts()
    assert ids == ["fake-small", "fake-large"]

    raw = api(server).responses.with_raw_response.create(
        model="fake-small",
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"type": "function_call_output", "call_id": "call_prev_lower", "output": "rainy"},
        ],
    )
    span_id = server.wait_span(raw.headers["x-spanlab-span-id"])
    detail = open_span(page, server, span_id)
    output = page.get_by_test_id("span-output")
    output.wait_for()
    text = output.inner_text()
    for expected in (
        "Weighing the weather tool",
        "get_weather",
        "call_resp_lower",
        "Checking Oslo.",
    ):
        assert expected in text, text
    assert "call_prev_lower" in detail.inner_text()
    assert page.get_by_role("heading", name="Input items").is_visible()
    assert page.get_by_role("heading", name="Output items").is_visible()
    assert not page.errors, page.errors


def test_long_output_is_collapsed_and_opens_by_keyboard(server: Server, page: Any) -> None:
    long = " ".join(f"w{i}" for i in range(2000))
    raw = api(server).chat.completions.with_raw_response.create(
        model="fake-small", messages=[{"role": "user", "content": long}]
    )
    span_id = server.wait_span(raw.headers["x-spanlab-span-id"])
    open_span(page, server, span_id)
    output = page.get_by_test_id("span-output")
    output.wait_for()
    assert "w1999" not in output.inner_text()
    button = output.get_by_role("button", name="Show all")
    button.focus()
    page.keyboard.press("Enter")
    assert "w1999" in output.inner_text()
    assert output.get_by_role("button", name="Show less").get_attribute("aria-expanded") == "true"


def insert_malformed(server: Server, **fields: Any) -> str:
    """A span row written straight into the database, as another tool or an old
    version might have left it."""
    span_id = "bad" + uuid.uuid4().hex[:13]
    row: dict[str, Any] = {
        "span_id": span_id,
        "trace_id": uuid.uuid4().hex,
        "operation": "chat",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": "ok",
        "start_us": int(time.time() * 1_000_000),
        **fields,
    }
    with sqlite3.connect(server.db, timeout=10) as db:
        db.execute(
            f"INSERT INTO spans ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    return span_id


MALFORMED = {
    "request": json.dumps("a string, not an object"),
    "response": json.dumps({"choices": 5, "usage": []}),
    "tags": json.dumps(["a", "list"]),
    "status": "sideways",
    "duration_ms": "slow",
    "prompt_tokens": "many",
    "error": json.dumps([1, 2]),
    "attributes": json.dumps("odd"),
    "request_headers": json.dumps([["x", "y"]]),
}


@pytest.mark.parametrize(
    "fields",
    [MALFORMED, {"request": json.dumps({"model": "m", "messages": 42, "tools": "x"})}],
    ids=["fields-of-every-wrong-type", "messages-a-number"],
)
def test_a_malformed_record_renders_what_it_can(
    server: Server, page: Any, fields: dict[str, Any]
) -> None:
    span_id = insert_malformed(server, **fields)
    assert server.get(f"/spans/{span_id}").status_code == 200
    for url in (f"/ui/spans/{span_id}", f"/ui/?span={span_id}"):
        page.goto(server.url + url)
        detail = page.get_by_test_id("span-detail")
        detail.wait_for(timeout=10_000)
        problems = page.get_by_test_id("record-problems")
        problems.wait_for()
        assert span_id in page.get_by_test_id("detail-span-id").inner_text()
        assert page.get_by_role("navigation", name="Main").is_visible()  # never a blank app
        named = problems.inner_text()
        expected = (
            ["request", "status", "duration_ms", "usage.prompt_tokens", "tags"]
            if fields is MALFORMED
            else ["request.messages", "request.tools"]
        )
        for field in expected:
            assert field in named, named
        # what the record does hold is still shown
        assert page.get_by_role("heading", name="Identifiers").is_visible()
        assert page.get_by_test_id("error-card").count() == 0
    screenshot(page, "detail-malformed")
    assert not page.errors, page.errors
