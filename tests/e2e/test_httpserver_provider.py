"""A second provider served by pytest-httpserver (werkzeug): an upstream nobody here
wrote, so the proxy is not only tested against our own idea of HTTP."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.e2e.conftest import CLIENT_KEY, GatewayProcess, sdk

pytestmark = pytest.mark.e2e

MESSAGES: list[Any] = [{"role": "user", "content": "Which server are you?"}]
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-werk",
        "object": "chat.completion",
        "created": 1_700_000_001,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "length",
            }
        ],
        "usage": USAGE,
    }


def test_non_streaming_through_httpserver(
    gateway: GatewayProcess, httpserver: HTTPServer, test_id: str
) -> None:
    httpserver.expect_oneshot_request(
        "/v1/chat/completions",
        method="POST",
        json={"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 4},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ).respond_with_json(completion("I am werkzeug"), headers={"x-werk": "yes"})

    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="werk/gpt-4o", messages=MESSAGES, max_tokens=4, extra_headers={"x-thread-id": test_id}
    )
    assert raw.parse().choices[0].message.content == "I am werkzeug"
    assert raw.headers["x-werk"] == "yes"
    httpserver.check_assertions()  # the request matched: prefix stripped, client key forwarded

    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert span["provider"] == "werk"
    assert span["status"] == "ok"
    assert span["http_status"] == 200
    assert span["thread_id"] == test_id
    assert span["request_model"] == "werk/gpt-4o"
    assert span["response_model"] == "gpt-4o-2024-08-06"
    assert span["output_text"] == "I am werkzeug"
    assert span["finish_reason"] == "length"
    assert span["usage"]["total_tokens"] == 13
    # gpt-4o: 2.5 in / 10.0 out, USD per million tokens (a dated snapshot is priced too).
    assert span["cost_usd"] == pytest.approx((9 * 2.5 + 4 * 10.0) / 1_000_000)


def test_streaming_through_httpserver(
    gateway: GatewayProcess, httpserver: HTTPServer, test_id: str
) -> None:
    pieces = ["werk", "zeug ", "streams"]
    received: list[dict[str, Any]] = []

    def handler(request: Any) -> Response:
        body = orjson.loads(request.get_data())
        received.append(body)
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}

        def events() -> Iterator[bytes]:
            for piece in pieces:
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield b"data: " + orjson.dumps(last) + b"\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield b"data: " + orjson.dumps({**base, "choices": [], "usage": USAGE}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return Response(events(), content_type="text/event-stream")

    httpserver.expect_oneshot_request("/v1/chat/completions", method="POST").respond_with_handler(
        handler
    )
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="werk/gpt-4o", messages=MESSAGES, stream=True, extra_headers={"x-thread-id": test_id}
    )
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(pieces)
    assert all(c.choices for c in chunks)  # usage chunk withheld: the client did not ask
    httpserver.check_assertions()
    assert received[0]["stream_options"] == {"include_usage": True}
    assert received[0]["model"] == "gpt-4o"

    span = gateway.span(raw.headers["x-spanlab-span-id"])
    assert span["provider"] == "werk"
    assert span["status"] == "ok"
    assert span["stream"] is True
    assert span["output_text"] == "werkzeug streams"
    assert span["finish_reason"] == "stop"
    assert span["usage"]["total_tokens"] == 13
    assert span["ttft_ms"] is not None
    assert span["cost_usd"] == pytest.approx((9 * 2.5 + 4 * 10.0) / 1_000_000)


def test_compressed_upstream_response_reaches_the_client_decoded(
    gateway: GatewayProcess, httpserver: HTTPServer, test_id: str
) -> None:
    body = gzip.compress(orjson.dumps(completion("squeezed")))
    httpserver.expect_oneshot_request("/v1/chat/completions", method="POST").respond_with_data(
        body, content_type="application/json", headers={"content-encoding": "gzip"}
    )
    response = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "werk/gpt-4o", "messages": MESSAGES},
        headers={"x-thread-id": test_id, "accept-encoding": "identity"},
    )
    httpserver.check_assertions()
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.json()["choices"][0]["message"]["content"] == "squeezed"
    span = gateway.span(response.headers["x-spanlab-span-id"])
    assert span["output_text"] == "squeezed"
    assert span["usage"]["total_tokens"] == 13
