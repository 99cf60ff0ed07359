"""A client that goes away: the gateway must cancel the upstream call promptly and
record the span as ``client_aborted`` with whatever output had arrived."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess, sdk
from tests.e2e.mock_upstream import SLOW_STREAM_CHUNKS, MockUpstream

pytestmark = pytest.mark.e2e

MESSAGES: list[Any] = [{"role": "user", "content": "Count slowly."}]
# The upstream would keep streaming for ~10 s; the gateway must hang up long before.
HANG_UP_DEADLINE_S = 2.0


def test_client_abort_mid_stream(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-test-id": test_id, "x-mock-scenario": "slow_stream"},
    )
    span_id = raw.headers["x-spanlab-span-id"]
    stream = raw.parse()
    received = ""
    for i, chunk in enumerate(stream):
        received += chunk.choices[0].delta.content or ""
        if i == 3:
            break
    stream.close()
    closed_at = time.monotonic()

    upstream = mock_upstream.find(test_id)
    assert upstream.wait_peer_closed(HANG_UP_DEADLINE_S) - closed_at < HANG_UP_DEADLINE_S
    assert upstream.chunks_sent < SLOW_STREAM_CHUNKS

    span = gateway.span(span_id)
    assert span["status"] == "client_aborted"
    assert span["error"]["type"] == "client_aborted"
    assert span["http_status"] == 200
    assert span["stream"] is True
    assert span["ttft_ms"] is not None
    assert span["end_us"] is not None
    # The partial output: at least what the client saw, no more than the upstream sent.
    assert received == "tick " * 3
    assert span["output_text"].startswith(received)
    assert span["output_text"] == "tick " * (len(span["output_text"]) // 5)
    assert len(span["output_text"]) // 5 <= upstream.chunks_sent
    assert span["finish_reason"] is None
    gateway.wait_idle()


def test_client_abort_before_the_first_token(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    # The upstream sends its headers at once but its first chunk only after 1 s.
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={
            "x-test-id": test_id,
            "x-mock-scenario": "slow_first_token",
            "x-mock-delay": "1.0",
        },
    )
    span_id = raw.headers["x-spanlab-span-id"]
    raw.parse().close()
    closed_at = time.monotonic()

    upstream = mock_upstream.find(test_id)
    assert upstream.wait_peer_closed(HANG_UP_DEADLINE_S) - closed_at < HANG_UP_DEADLINE_S
    assert upstream.chunks_sent == 0

    span = gateway.span(span_id)
    assert span["status"] == "client_aborted"
    assert span["output_text"] is None
    assert span["ttft_ms"] is None
    assert span["usage"]["total_tokens"] is None
    gateway.wait_idle()


def test_client_abort_before_the_response_starts(
    gateway: GatewayProcess, mock_upstream: MockUpstream, test_id: str
) -> None:
    # The upstream answers after 1.2 s (inside the gateway's read timeout); the client
    # gives up after 0.3 s, before any byte of the response.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.base_url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers={
                "x-test-id": test_id,
                "x-thread-id": test_id,
                "x-mock-scenario": "slow",
                "x-mock-delay": "1.2",
            },
            timeout=httpx.Timeout(5.0, read=0.3),
        )
    closed_at = time.monotonic()
    upstream = mock_upstream.find(test_id)
    assert upstream.wait_peer_closed(HANG_UP_DEADLINE_S) - closed_at < HANG_UP_DEADLINE_S

    (listed,) = gateway.wait_spans(1, thread=test_id)
    span = gateway.span(listed["span_id"])
    assert span["status"] == "client_aborted"
    assert span["provider"] == "mock"
    assert span["request_model"] == "gpt-4o-mini"
    assert span["output_text"] is None
    assert span["response"] is None
    gateway.wait_idle()
