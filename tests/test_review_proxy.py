"""Review findings on the proxy path: each test pins a defect that was fixed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson

from gateway.proxy.pipeline import ProxyRequest
from tests.conftest import Gateway, GatewayFactory
from tests.fakes import FakeUpstream, chat_chunks, chat_completion, sse

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def test_non_ascii_header_bytes_are_forwarded_as_received(
    make_gateway: GatewayFactory,
) -> None:
    """HTTP header values may carry any octets (RFC 9110 obs-text); the proxy used to
    decode them as latin-1 and let httpx re-encode them as ASCII (request: 500) or
    re-encode httpx's UTF-8 decoding as latin-1 (response: 500, or altered bytes)."""
    sent = "café ✓".encode()
    returned = "naïve €".encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=chat_completion(), headers=[(b"x-note", returned)])

    gw = await make_gateway(FakeUpstream(handler=handler))
    r = await gw.client.post("/v1/chat/completions", json=CHAT, headers=[(b"x-note", sent)])
    assert r.status_code == 200, r.text
    assert gw.upstream.last.headers.raw.count((b"x-note", sent)) == 1
    assert (b"x-note", returned) in r.headers.raw


def _corrupt_gzip(request: httpx.Request) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"this is not gzip"

    streamed = orjson.loads(request.content).get("stream")
    return httpx.Response(
        200,
        content=body(),
        headers={
            "content-encoding": "gzip",
            "content-type": "text/event-stream" if streamed else "application/json",
        },
    )


async def test_undecodable_upstream_body_is_a_502_not_an_internal_error(
    make_gateway: GatewayFactory,
) -> None:
    """httpx.DecodingError is no TransportError: a body that does not match its
    Content-Encoding used to end as a 500 "internal error" (and a stream without an
    error event)."""
    gw = await make_gateway(FakeUpstream(handler=_corrupt_gzip))
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_protocol_error"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "upstream_protocol_error"

    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    last = [line for line in r.content.split(b"\n") if line.startswith(b"data: ")][-1]
    assert orjson.loads(last[6:])["error"]["code"] == "upstream_protocol_error"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["error"]["code"] == "upstream_protocol_error"


async def test_ttft_is_not_taken_from_a_keep_alive_comment(make_gateway: GatewayFactory) -> None:
    """Providers (OpenRouter, proxies) send SSE comments while the model has not started;
    the time to first token used to be the time of that comment."""
    wait_s = 0.3

    async def body() -> AsyncIterator[bytes]:
        yield b": PROCESSING\n\n"
        await asyncio.sleep(wait_s)
        for event in sse(chat_chunks(["Hi"])):
            yield event

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    gw = await make_gateway(FakeUpstream(handler=handler))
    r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.content.startswith(b": PROCESSING\n\n")  # still forwarded
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["output_text"] == "Hi"
    assert span["ttft_ms"] >= wait_s * 1000


async def test_an_upstream_error_that_is_not_json_still_gives_the_span_an_error(
    make_gateway: GatewayFactory,
) -> None:
    """A load balancer's HTML 502 page, or an empty 503: the span said status error with
    error null, so nothing told why the call failed."""
    answers = iter(
        [
            httpx.Response(
                502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"}
            ),
            httpx.Response(503),
        ]
    )
    gw = await make_gateway(FakeUpstream(handler=lambda request: next(answers)))
    first = await gw.client.post("/v1/chat/completions", json=CHAT)
    second = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert first.text == "<html>Bad Gateway</html>"  # passed through as is
    span = await gw.span(first.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert "502" in span["error"]["message"]
    assert "Bad Gateway" in span["error"]["message"]
    span = await gw.span(second.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert "503" in span["error"]["message"]


async def test_no_free_upstream_connection_is_not_blamed_on_the_provider(
    make_gateway: GatewayFactory,
) -> None:
    """httpx.PoolTimeout (every one of max_connections busy) was reported as 504
    "Provider 'openai' timed out", sending the operator after a healthy provider."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.PoolTimeout("no connection available")

    gw = await make_gateway(FakeUpstream(handler=handler), max_connections=7)
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert "max_connections" in error["message"] and "7" in error["message"]
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["http_status"] == 503


class _CollectingSink:
    def __init__(self) -> None:
        self.started = False
        self.client_gone = False
        self.status = 0
        self.body = b""

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        self.status = status

    async def send(self, data: bytes) -> None:
        self.body += data

    async def end(self) -> None:
        pass


async def test_an_in_process_payload_is_not_changed_by_the_call(gateway: Gateway) -> None:
    """An in-process caller's payload (experiments, the playground) was edited in place:
    its "local/" prefix removed and stream_options added. Sent again (a repeat, the next
    input), "llama3" then went to the default provider."""
    payload = {"model": "local/llama3", "messages": [{"role": "user", "content": "hi"}]}
    payload["stream"] = True
    original = orjson.loads(orjson.dumps(payload))
    for _ in range(2):
        sink = _CollectingSink()
        request = ProxyRequest(
            operation="chat",
            method="POST",
            path="/v1/chat/completions",
            headers=[],
            payload=payload,
        )
        span = await gateway.state.pipeline.handle(request, sink)
        assert sink.status == 200
        assert span.provider == "local"
        assert str(gateway.upstream.last.url) == "http://local.test/v1/chat/completions"
        assert payload == original


async def test_a_key_in_a_provider_header_is_scrubbed_when_echoed_back(
    make_gateway: GatewayFactory,
) -> None:
    """A key configured as a provider header (Azure's api-key) was not among the values
    scrubbed from the span, so an upstream error repeating it was stored as is."""
    secret = "azure-key-0123456789abcdef"

    def echo(request: httpx.Request) -> httpx.Response:
        message = f"Incorrect API key provided: {request.headers['api-key']}"
        return httpx.Response(401, json={"error": {"message": message}})

    gw = await make_gateway(
        FakeUpstream(handler=echo),
        providers={
            "azure": {
                "kind": "openai",
                "base_url": "http://azure.test/v1",
                "headers": {"api-key": secret},
            }
        },
        default_provider="azure",
    )
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 401
    assert gw.upstream.last.headers["api-key"] == secret  # it did go upstream
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["error"]["message"].startswith("Incorrect API key provided")
    assert secret not in orjson.dumps(span).decode()
