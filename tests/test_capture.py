"""Stream assembly, usage, pricing and redaction: the pure parts of capture."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, unquote_plus

import orjson
import pytest

from gateway.capture.pricing import PriceTable
from gateway.capture.redaction import (
    MAX_STORED_DEPTH,
    REDACTED,
    NestingTooDeep,
    body_secret_values,
    credential_values,
    has_secret_fields,
    nesting_depth,
    redact_body,
    redact_headers,
    redact_query,
    scrub_values,
)
from gateway.capture.span import (
    CAPTURE_DROPPED,
    PRICED_MODEL,
    Span,
    SpanContext,
    assemble_stream,
    finalize,
    new_span_id,
    new_trace_id,
    normalize_usage,
    output_text,
    to_record,
)
from gateway.config import Price
from gateway.http.sse import SSESplitter, parse_event
from gateway.proxy.providers.base import url_secret_values
from gateway.store.database import SQLiteDatabase
from gateway.store.spans import SpanFilter
from gateway.store.sqlite import SQLiteSpanStore


def test_sse_splitter_handles_any_chunking() -> None:
    stream = b'data: {"a": 1}\n\n: comment\n\ndata: x\r\n\r\nevent: e\ndata: 1\ndata: 2\n\n'
    for size in (1, 2, 3, 7, len(stream)):
        splitter = SSESplitter()
        events: list[bytes] = []
        for i in range(0, len(stream), size):
            events += splitter.feed(stream[i : i + size])
        assert b"".join(events) == stream
        assert [parse_event(e).data for e in events] == ['{"a": 1}', "", "x", "1\n2"]
        assert parse_event(events[3]).event == "e"
        assert splitter.tail == b""


def test_anthropic_stream_is_assembled() -> None:
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-3-5-haiku",
                "content": [],
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "there"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"x"}'},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 15},
        },
        {"type": "message_stop"},
    ]
    message, error = assemble_stream("anthropic", events)
    assert error is None
    assert message["content"] == [
        {"type": "text", "text": "Hi there"},
        {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "x"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 10, "output_tokens": 15}
    assert output_text(message) == "Hi there"


def test_chat_stream_error_chunk_is_reported() -> None:
    _, error = assemble_stream("chat", [{"error": {"message": "overloaded"}}])
    assert error == {"message": "overloaded"}


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "total_tokens": 15,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
            (10, 5, 15, 4),
        ),
        (
            {
                "input_tokens": 7,
                "output_tokens": 3,
                "total_tokens": 10,
                "input_tokens_details": {"cached_tokens": 2},
            },
            (7, 3, 10, 2),
        ),
        (
            {
                "input_tokens": 7,
                "output_tokens": 3,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
            },
            (127, 3, 130, 100),
        ),
        ({"prompt_tokens": 3}, (3, None, 3, None)),
        ({}, (None, None, None, None)),
    ],
)
def test_usage_normalization(usage: dict[str, object], expected: tuple[object, ...]) -> None:
    assert normalize_usage(usage) == expected


def test_pricing_known_snapshot_unknown_and_override() -> None:
    prices = PriceTable({"my-model": Price(input=1.0, output=2.0)})
    assert prices.cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)
    # Dated snapshots and -latest aliases take their family's price.
    assert prices.cost("gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.5)
    assert prices.cost("claude-3-5-sonnet-20241022", 0, 1_000_000) == pytest.approx(15.0)
    assert prices.cost("openai/gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    # Cached prompt tokens are billed at the cached rate.
    assert prices.cost("gpt-4o", 1_000_000, 0, 1_000_000) == pytest.approx(1.25)
    assert prices.cost("my-model", 1_000_000, 1_000_000) == pytest.approx(3.0)
    # Unknown models have no cost rather than a wrong one.
    assert prices.cost("gpt-4o-audio-preview", 100, 100) is None
    assert prices.cost("llama3", 100, 100) is None
    assert prices.cost("gpt-4o", None, None) is None


def priced_span(response_model: str, sent_model: str, client_model: str) -> Span:
    span = Span(
        context=SpanContext(trace_id="t" * 32, span_id="s" * 16),
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=0,
        request_model=client_model,
        request={"model": sent_model, "messages": []},
    )
    usage = b'"usage": {"prompt_tokens": 1000000, "completion_tokens": 1000000}'
    span.response_body = b'{"model": "' + response_model.encode() + b'", ' + usage + b"}"
    return span


@pytest.mark.parametrize(
    ("response_model", "sent_model", "client_model", "priced"),
    [
        # The upstream's own name first, its dated alias priced as its family.
        ("gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-2024-08-06"),
        # A name the table does not know: the model sent upstream...
        ("gpt-4o-mini-mock-2024", "gpt-4o-mini", "fast", "gpt-4o-mini"),
        # ...or the client's, provider prefix and all.
        ("my-deployment-7", "my-deployment", "openai/gpt-4o", "openai/gpt-4o"),
    ],
)
def test_cost_falls_back_to_the_requested_model_and_says_which(
    response_model: str, sent_model: str, client_model: str, priced: str
) -> None:
    """Issue 9 #15: the cost was looked up by the returned model name only, so a name
    the table does not know gave no cost although the requested model has a price."""
    prices = PriceTable()
    span = priced_span(response_model, sent_model, client_model)
    finalize(span, prices)
    assert span.response_model == response_model
    assert span.cost_usd == prices.cost(priced, 1_000_000, 1_000_000)
    assert span.cost_usd is not None and span.cost_usd > 0
    # Named when it is not the model the upstream named.
    assert span.context.attributes.get(PRICED_MODEL) == (
        None if priced == response_model else priced
    )


def test_no_price_no_cost_and_no_priced_model() -> None:
    span = priced_span("llama3-local", "llama3", "local/llama3")
    finalize(span, PriceTable())
    assert span.cost_usd is None
    assert PRICED_MODEL not in span.context.attributes


def test_redaction_of_headers_query_and_body() -> None:
    headers = redact_headers(
        [
            ("Authorization", "Bearer sk-1"),
            ("X-Api-Key", "k"),
            ("Cookie", "c"),
            ("x-amz-security-token", "t"),
            ("api-key", "azure"),
            ("x-goog-api-key", "g"),
            ("content-type", "application/json"),
            ("x-thread-id", "t1"),
        ]
    )
    assert headers == {
        "authorization": REDACTED,
        "x-api-key": REDACTED,
        "cookie": REDACTED,
        "x-amz-security-token": REDACTED,
        "api-key": REDACTED,
        "x-goog-api-key": REDACTED,
        "content-type": "application/json",
        "x-thread-id": "t1",
    }
    assert redact_query("api_key=abc&key=def&model=x") == (
        "api_key=%5BREDACTED%5D&key=%5BREDACTED%5D&model=x"
    )
    body = {
        "model": "m",
        "max_tokens": 10,
        "api_key": "sk-body",
        "nested": {"client_secret": "s", "apiKey": "k2", "prompt_cache_key": "user-1"},
        "tools": [{"parameters": {"properties": {"api_key": {"type": "string"}}}}],
    }
    assert redact_body(body) == {
        "model": "m",
        "max_tokens": 10,
        "api_key": REDACTED,
        "nested": {"client_secret": REDACTED, "apiKey": REDACTED, "prompt_cache_key": "user-1"},
        # A tool's schema that merely names a key field survives, for replays.
        "tools": [{"parameters": {"properties": {"api_key": {"type": "string"}}}}],
    }


def test_secret_values_are_scrubbed_wherever_they_appear() -> None:
    values = credential_values([("authorization", "Bearer sk-live-abcdef123456")])
    assert "sk-live-abcdef123456" in values
    text = '{"error": "Incorrect API key provided: sk-live-abcdef123456"}'
    assert scrub_values(text, values) == '{"error": "Incorrect API key provided: [REDACTED]"}'
    assert scrub_values("short", ["abc"]) == "short"  # too short to be a key: left alone


def test_known_secret_values_are_scrubbed_from_the_stored_query() -> None:
    """Issue 9 #2: a client's bearer token repeated in ``?foo=`` was stored as is (only
    secret-named parameters were redacted)."""
    token = "sk-canary-Ab+c/d=="
    query = "foo=" + quote(token, safe="") + "&raw=" + token + "&" + quote(token) + "=1&n=2"
    stored = redact_query(query, [token])
    assert token not in unquote_plus(stored) and quote(token, safe="") not in stored
    assert "foo=%5BREDACTED%5D" in stored and stored.endswith("n=2")
    assert redact_query("foo=short&key=abc", ["short"]) == "foo=short&key=%5BREDACTED%5D"


def test_base_url_userinfo_gives_every_form_of_its_credential() -> None:
    """Issue 9 #2: the Basic header built from https://user:pass@host was not a known
    secret, so an upstream echoing its Authorization header put it into the span."""
    values = url_secret_values("https://spanlab:p%40ss-word-1234@host.test/v1")
    token = base64.b64encode(b"spanlab:p@ss-word-1234").decode()
    assert values[:2] == ("Basic " + token, token)
    assert {"p@ss-word-1234", "p%40ss-word-1234", "spanlab:p@ss-word-1234"} <= set(values)
    assert url_secret_values("https://host.test/v1") == ()
    assert (
        url_secret_values("https://only-a-token-1234@host.test/v1")[1]
        == base64.b64encode(b"only-a-token-1234:").decode()
    )


def test_grouping_headers() -> None:
    ctx = SpanContext.from_headers({"x-tags": "a=1&b=two%20words&=skip", "x-run-id": " r1 "})
    assert ctx.tags == {"a": "1", "b": "two words"}
    assert ctx.run_id == "r1"
    assert ctx.traceparent() == f"00-{ctx.trace_id}-{ctx.span_id}-01"


def test_utf8_grouping_headers_are_read_as_text() -> None:
    # What an ASGI server hands over for "x-label: café" (bytes decoded as latin-1).
    raw = "café".encode().decode("latin-1")
    ctx = SpanContext.from_headers(
        {"x-label": raw, "x-thread-id": "plain", "x-tags": "lieu=" + raw}
    )
    assert ctx.label == "café"
    assert ctx.tags == {"lieu": "café"}
    assert SpanContext.from_headers({"x-label": "\xff\xfe"}).label == "\xff\xfe"


def test_ids_are_valid_unique_and_sort_by_time() -> None:
    spans = [new_span_id() for _ in range(20_000)]
    traces = [new_trace_id() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) and s != "0" * 16 for s in spans)
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) and t != "0" * 32 for t in traces)
    assert len(set(spans)) == len(spans) and len(set(traces)) == len(traces)
    # Made later (past the ~1 ms the time part counts), an id sorts after: new rows go
    # to the end of the indexes. (The time part wraps every ~51 days; this would fail
    # only if the 3 ms below straddled that instant.)
    time.sleep(0.003)
    assert new_span_id()[:8] > spans[0][:8]
    assert new_trace_id()[:8] > traces[0][:8]


def nested(levels: int, leaf: object) -> object:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def test_redaction_stops_at_the_storable_depth_instead_of_recursing_past_it() -> None:
    """Issue 9 #8: JSON nested up to 1,024 levels (what orjson reads) made redaction
    recurse into a RecursionError."""
    storable = nested(MAX_STORED_DEPTH, {"api_key": "sk-at-the-bottom"})
    assert nesting_depth(storable) == MAX_STORED_DEPTH + 1
    assert nesting_depth(nested(MAX_STORED_DEPTH - 1, 1)) == MAX_STORED_DEPTH - 1
    too_deep = orjson.loads('{"a":' * 1023 + '{"api_key": "sk-at-the-bottom"}' + "}" * 1023)
    assert nesting_depth(too_deep, 10) == 11  # counted only as far as asked
    for walk in (redact_body, has_secret_fields):
        with pytest.raises(NestingTooDeep):
            walk(too_deep)
    # The secret values are still found (to be scrubbed from whatever is stored).
    assert body_secret_values(too_deep) == ["sk-at-the-bottom"]
    assert redact_body(nested(MAX_STORED_DEPTH - 1, 1)) == nested(MAX_STORED_DEPTH - 1, 1)


def test_a_record_leaves_out_only_what_nests_too_deeply_and_says_so() -> None:
    """Issue 9 #8: such a span kept only its outline, status ok, nothing saying why."""
    span = priced_span("gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini")
    secret = "sk-canary-in-a-deep-request"
    span.request = {"model": "gpt-4o-mini", "deep": nested(300, {"api_key": secret})}
    span.response_body = span.response_body.replace(
        b'"model"', b'"echo": "' + secret.encode() + b'", "model"'
    )  # type: ignore[union-attr]
    finalize(span, PriceTable())
    record = to_record(span)
    assert record["request"] is None
    assert record["status"] == "ok"
    error = json.loads(record["error"])
    assert error["code"] == "too_deeply_nested"
    assert error["message"].startswith("request too deeply nested to store")
    assert json.loads(record["attributes"])[CAPTURE_DROPPED] == ["request"]
    # The rest of the call is kept: the response (its echo of the secret scrubbed),
    # usage and cost.
    assert json.loads(record["response"])["echo"] == REDACTED
    assert record["prompt_tokens"] == 1_000_000 and record["cost_usd"] is not None
    # An upstream error too deep to store gives way to the note; the response too.
    span.response = nested(400, 1)
    span.error = {"message": nested(400, 1)}
    record = to_record(span)
    assert json.loads(record["attributes"])[CAPTURE_DROPPED] == ["request", "response", "error"]
    assert json.loads(record["error"])["code"] == "too_deeply_nested"


T0 = 1_700_000_000_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteSpanStore]:
    s = SQLiteSpanStore(SQLiteDatabase(str(tmp_path / "review.db")))
    await s.db.open()
    yield s
    await s.db.close()


def chat_span(response: dict[str, object], request: dict[str, object] | None = None) -> Span:
    span = Span(
        context=SpanContext(trace_id=new_trace_id(), span_id=new_span_id()),
        operation="chat",
        method="POST",
        path="/v1/chat/completions",
        start_us=T0,
        request_model="gpt-4o-mini",
        request=request or {"model": "gpt-4o-mini", "messages": []},
        response_body=orjson.dumps(response),
        http_status=200,
    )
    span.end_us = T0 + 1000
    return span


async def test_usage_counts_out_of_range_do_not_fail_the_write(store: SQLiteSpanStore) -> None:
    """An upstream's usage of 1e300 became a 1000-digit int that SQLite cannot bind: the
    insert failed, and the writer retried that batch forever (no span stored after it,
    then every call blocked on the full queue, and shutdown never finished)."""
    span = chat_span({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1e300}})
    finalize(span, PriceTable())
    await store.insert_spans([to_record(span)])
    stored = await store.get_span(span.context.span_id)
    assert stored is not None
    assert stored["usage"]["prompt_tokens"] is None


def test_a_message_content_that_is_not_text_or_parts_does_not_break_finalize() -> None:
    """`input_preview` iterated any non-string content: a request with "content": 5
    raised in `finalize` (the writer logged a failed write, and the span was stored on
    the retry without its cost)."""
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 5}]}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    span = chat_span({"model": "gpt-4o-mini", "usage": usage}, request)
    finalize(span, PriceTable())
    assert span.input_preview is None
    assert span.cost_usd == pytest.approx((10 * 0.15 + 5 * 0.6) / 1e6)


async def test_percentiles_ignore_spans_without_a_duration(store: SQLiteSpanStore) -> None:
    """ROW_NUMBER() ordered by duration_ms put NULLs first, so they took the low ranks
    while `n` counted only durations: p50 and p95 came out as the smallest value."""
    records = []
    for i in range(20):
        span = chat_span({"model": "gpt-4o-mini"})
        span.start_us = T0 + i
        span.end_us = span.start_us + (i + 1) * 1000 if i < 10 else None  # 1..10 ms
        finalize(span, PriceTable())
        records.append(to_record(span))
    await store.insert_spans(records)
    [row] = await store.stats("model", SpanFilter())
    assert row["calls"] == 20
    assert row["latency_p50_ms"] == 5.0  # nearest rank: ceil(0.5 * 10) = 5th
    assert row["latency_p95_ms"] == 10.0
