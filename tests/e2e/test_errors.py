"""Failures through a real gateway: upstream errors, timeouts, broken streams, bad
requests. Each must reach the client in the OpenAI error shape (or as an error event
in a stream) and still be recorded as a span with status ``error``."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import MAX_BODY_BYTES, GatewayProcess, sdk
from tests.e2e.mock_upstream import MockUpstream

pytestmark = pytest.mark.e2e

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]


def assert_error_shape(body: dict[str, Any], code: str, kind: str | None = None) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if kind is not None:
        assert body["error"]["type"] == kind


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_passes_through_with_retry_after(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str, stream: bool
) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=stream,
            extra_headers={"x-test-id": test_id, "x-mock-scenario": "rate_limit"},
        )
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "7"
    assert error.code == "rate_limit_exceeded"
    assert error.message.startswith("Error code: 429")
    assert mock_upstream.count(test_id) == 1  # max_retries=0: one call, one span

    span = gateway.span(error.response.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 429
    assert span["provider"] == "mock"
    assert span["request_model"] == "gpt-4o-mini"
    assert span["stream"] is stream
    assert span["error"]["code"] == "rate_limit_exceeded"
    assert span["error"]["type"] == "requests"
    assert span["error"]["message"] == "Rate limit reached for requests"
    assert span["response_headers"]["retry-after"] == "7"
    assert span["output_text"] is None
    assert span["cost_usd"] is None


def test_upstream_500_passes_through(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers={"x-test-id": test_id, "x-mock-scenario": "server_error"},
        )
    assert caught.value.status_code == 500
    assert caught.value.type == "server_error"
    span = gateway.span(caught.value.response.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 500
    assert span["error"]["type"] == "server_error"
    assert "server had an error" in span["error"]["message"]


def test_upstream_timeout_is_504(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_headers={"x-test-id": test_id, "x-mock-scenario": "slow", "x-mock-delay": "5"},
        )
    assert caught.value.status_code == 504
    assert_error_shape(caught.value.response.json(), "upstream_timeout", "upstream_error")
    span = gateway.span(caught.value.response.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 504
    assert span["error"]["code"] == "upstream_timeout"
    assert span["error"]["type"] == "upstream_error"
    assert span["provider"] == "mock"
    # The gateway gave up on the upstream (its connection closed), it did not wait it out.
    mock_upstream.find(test_id).wait_peer_closed()


def test_unreachable_upstream_is_502(gateway: GatewayProcess, test_id: str) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway).chat.completions.create(
            model="dead/gpt-4o-mini",
            messages=MESSAGES,
            extra_headers={"x-thread-id": test_id},
        )
    assert caught.value.status_code == 502
    assert_error_shape(caught.value.response.json(), "upstream_unreachable", "upstream_error")
    span = gateway.span(caught.value.response.headers["x-spanlab-span-id"])
    assert span["thread_id"] == test_id
    assert span["status"] == "error"
    assert span["http_status"] == 502
    assert span["provider"] == "dead"
    assert span["request_model"] == "dead/gpt-4o-mini"
    assert span["error"]["code"] == "upstream_unreachable"


def read_sse(response: httpx.Response) -> list[str]:
    """The data of each event of a streamed response."""
    events: list[str] = []
    for block in response.read().decode().split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            events.append("\n".join(data))
    return events


@pytest.mark.parametrize(
    ("scenario", "code", "chunks_before"),
    [
        # Headers, then silence longer than read_timeout.
        ("slow_first_token", "upstream_timeout", 0),
        ("reset", "upstream_stream_truncated", 4),
        ("truncated", "upstream_stream_truncated", len(mock.PIECES) + 2),
        ("malformed", "upstream_stream_malformed", 3),
    ],
)
def test_broken_stream_ends_with_an_error_event_never_done(
    gateway: GatewayProcess,
    mock_upstream: MockUpstream,
    test_id: str,
    scenario: str,
    code: str,
    chunks_before: int,
) -> None:
    # The SDK turns the error event into an exception.
    with pytest.raises(openai.APIError) as caught:
        for _ in sdk(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers={
                "x-test-id": test_id + "-sdk",
                "x-mock-scenario": scenario,
                "x-mock-delay": "3",
            },
        ):
            pass
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == code

    # On the wire: what the upstream sent (good chunks), then one error event, no [DONE].
    with gateway.client.stream(
        "POST",
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={
            "x-test-id": test_id,
            "x-mock-scenario": scenario,
            "x-mock-delay": "3",
            "x-thread-id": test_id,
        },
    ) as response:
        assert response.status_code == 200
        span_id = response.headers["x-spanlab-span-id"]
        events = read_sse(response)
    assert "[DONE]" not in events
    *good, last = events
    assert len(good) == chunks_before
    assert all("choices" in event for event in good)
    assert_error_shape(orjson.loads(last), code, "upstream_error")

    span = gateway.span(span_id)
    assert span["status"] == "error"
    assert span["http_status"] == 200  # what the client received: the stream had begun
    assert span["error"]["code"] == code
    assert span["stream"] is True
    # What arrived before the break is kept.
    received = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in map(orjson.loads, good)
    )
    assert span["output_text"] == (received or None)
    if scenario == "slow_first_token":
        assert "went silent mid-stream" in span["error"]["message"]
        mock_upstream.find(test_id).wait_peer_closed()  # the gateway gave up on it
    if scenario == "reset":  # a transport failure, not a clean end
        assert "broke off the stream" in span["error"]["message"]
    if scenario == "truncated":
        assert "ended the stream before it was complete" in span["error"]["message"]
        assert span["output_text"] == mock.CONTENT
        assert span["finish_reason"] == "stop"


def test_invalid_json_is_400_and_recorded(gateway: GatewayProcess, test_id: str) -> None:
    response = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [',
        headers={"content-type": "application/json", "x-thread-id": test_id},
    )
    assert response.status_code == 400
    assert_error_shape(response.json(), "invalid_json", "invalid_request_error")
    span = gateway.span(response.headers["x-spanlab-span-id"])
    assert span["thread_id"] == test_id
    assert span["status"] == "error"
    assert span["http_status"] == 400
    assert span["error"]["code"] == "invalid_json"
    assert span["provider"] is None


def test_missing_model_is_400_and_recorded(gateway: GatewayProcess, test_id: str) -> None:
    response = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"messages": MESSAGES},
        headers={"x-thread-id": test_id, "x-label": "no-model"},
    )
    assert response.status_code == 400
    body = response.json()
    assert_error_shape(body, "missing_model", "invalid_request_error")
    assert body["error"]["param"] == "model"
    span = gateway.span(response.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 400
    assert span["label"] == "no-model"
    assert span["error"]["code"] == "missing_model"
    assert span["request"] == {"messages": MESSAGES}


def test_body_too_large_is_413_and_recorded(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    big = "x" * (MAX_BODY_BYTES + 1)
    response = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]},
        headers={"x-thread-id": test_id, "x-test-id": test_id},
    )
    assert response.status_code == 413
    assert_error_shape(response.json(), "request_too_large", "invalid_request_error")
    span = gateway.span(response.headers["x-spanlab-span-id"])
    assert span["thread_id"] == test_id
    assert span["status"] == "error"
    assert span["http_status"] == 413
    assert span["error"]["code"] == "request_too_large"
    assert mock_upstream.count(test_id) == 0  # refused before any upstream call


def test_chunked_body_too_large_is_413_and_recorded(gateway: GatewayProcess, test_id: str) -> None:
    # No Content-Length: the limit must hold while the body is read.
    def body() -> Any:
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"y" * 1024
        yield b'"}]}'

    response = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        content=body(),
        headers={"content-type": "application/json", "x-thread-id": test_id},
    )
    assert response.status_code == 413
    assert_error_shape(response.json(), "request_too_large")
    span = gateway.span(response.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 413


def test_request_timeout_mid_stream_ends_with_an_error_event(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    # The upstream never goes silent (a chunk every 0.1 s) but would take ~10 s in all:
    # the overall request_timeout cuts it, and the client must be told so.
    with gateway.client.stream(
        "POST",
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={"x-test-id": test_id, "x-mock-scenario": "slow_stream"},
    ) as response:
        assert response.status_code == 200
        span_id = response.headers["x-spanlab-span-id"]
        events = read_sse(response)
    assert "[DONE]" not in events
    *good, last = events
    assert len(good) >= 2
    assert_error_shape(orjson.loads(last), "upstream_timeout", "upstream_error")
    mock_upstream.find(test_id).wait_peer_closed()

    span = gateway.span(span_id)
    assert span["status"] == "error"
    assert span["http_status"] == 200
    assert span["error"]["code"] == "upstream_timeout"
    assert "request_timeout" in span["error"]["message"]
    assert span["output_text"].startswith("tick tick ")
