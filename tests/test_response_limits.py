"""Response size limits in process (issue 9 item 7): past ``max_capture_bytes`` the
client still gets the whole response and the span keeps its first part, marked
``truncated_capture``; past ``max_response_bytes`` the call fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import GatewayFactory
from tests.fakes import FakeUpstream, chat_chunks, sse, stream_response

# Every test here runs with both upstream clients (tests/conftest.py).
pytestmark = pytest.mark.both_clients

CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
KB = 1024


def data_events(body: bytes) -> list[bytes]:
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]


def big_json(size: int, piece: int = 64 * KB) -> httpx.Response:
    """A JSON body of ``size`` bytes, sent in pieces."""
    body = b'{"pad":"' + b"0" * (size - 10) + b'"}'

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(body), piece):
            yield body[i : i + piece]

    return httpx.Response(200, headers={"content-type": "application/json"}, content=pieces())


async def test_a_body_past_max_capture_bytes_reaches_the_client_whole_and_is_stored_cut(
    make_gateway: GatewayFactory,
) -> None:
    size = 1024 * KB
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: big_json(size)), max_capture_bytes=256 * KB
    )
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert len(r.content) == size and r.json()["pad"] == "0" * (size - 10)
    assert "content-length" not in r.headers  # relayed as it came, not held whole
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["attributes"]["truncated_capture"] == {
        "max_capture_bytes": 256 * KB,
        "response_bytes": size,
    }
    assert span["response"] == r.text[: 256 * KB]  # the first bytes, as text


async def test_a_body_within_the_limits_is_sent_whole_with_its_length(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: big_json(200 * KB)), max_capture_bytes=256 * KB
    )
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.headers["content-length"] == str(200 * KB)
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["response"] == r.json()
    assert "truncated_capture" not in (span["attributes"] or {})


async def test_a_body_past_max_response_bytes_is_a_502_when_nothing_was_sent(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: big_json(1024 * KB)), max_response_bytes=300 * KB
    )
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "response_too_large"
    assert "max_response_bytes" in error["message"]
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error" and span["http_status"] == 502


def long_stream(pieces: int, piece: str = "0" * KB) -> list[bytes]:
    usage = {"prompt_tokens": 12, "completion_tokens": pieces, "total_tokens": 12 + pieces}
    return sse(chat_chunks([piece] * pieces, usage=usage))


async def test_a_stream_past_max_capture_bytes_is_relayed_whole_and_stored_cut(
    make_gateway: GatewayFactory,
) -> None:
    events = long_stream(300)
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: stream_response(events)), max_capture_bytes=64 * KB
    )
    r = await gw.client.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert r.content == b"".join(events)  # every event, [DONE] included
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["attributes"]["truncated_capture"] == {
        "max_capture_bytes": 64 * KB,
        "response_bytes": len(r.content),
    }
    # The first events' text, then the final events: finish reason and usage.
    assert 0 < len(span["output_text"]) < 64 * KB
    assert set(span["output_text"]) == {"0"}
    assert span["finish_reason"] == "stop"
    assert span["usage"]["completion_tokens"] == 300


async def test_a_responses_stream_past_the_limit_keeps_its_final_usage(
    make_gateway: GatewayFactory,
) -> None:
    text = "0" * KB
    final = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": text * 200}]}],
        "usage": {"input_tokens": 5, "output_tokens": 200, "total_tokens": 205},
    }
    delta = orjson.dumps({"type": "response.output_text.delta", "delta": text})
    events = [b"event: response.output_text.delta\ndata: " + delta + b"\n\n"] * 200
    events.append(
        b"event: response.completed\ndata: "
        + orjson.dumps({"type": "response.completed", "response": final})
        + b"\n\n"
    )
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: stream_response(events)), max_capture_bytes=64 * KB
    )
    r = await gw.client.post(
        "/v1/responses", json={"model": "gpt-4o", "input": "x", "stream": True}
    )
    assert r.content == b"".join(events)
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["attributes"]["truncated_capture"]["max_capture_bytes"] == 64 * KB
    # The final event (200 KB: it repeats the output) is kept without its output.
    assert span["usage"]["total_tokens"] == 205
    assert span["finish_reason"] == "completed"


async def test_a_stream_past_max_response_bytes_ends_with_an_error_event(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: stream_response(long_stream(300))),
        max_response_bytes=64 * KB,
    )
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    sent = data_events(r.content)
    assert b"[DONE]" not in sent
    assert orjson.loads(sent[-1])["error"]["code"] == "response_too_large"
    assert len(r.content) < 70 * KB
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "response_too_large"


async def test_a_stream_event_larger_than_the_limit_fails_the_stream(
    make_gateway: GatewayFactory,
) -> None:
    # One event that never ends, in pieces: it must not be buffered without end (it
    # may grow to 16 MiB, the least an event may be: a Responses stream's final event
    # repeats the whole output).
    huge = [b'data: {"choices": [{"delta": {"content": "', *[b"0" * 256 * KB] * 65]
    events = [*sse(chat_chunks(["ok"]), done=False)[:2], *huge]
    gw = await make_gateway(
        FakeUpstream(handler=lambda request: stream_response(events)), max_capture_bytes=64 * KB
    )
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    error = orjson.loads(data_events(r.content)[-1])["error"]
    assert error["code"] == "response_too_large"
    assert "16 MiB" in error["message"]
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["output_text"] == "ok"
