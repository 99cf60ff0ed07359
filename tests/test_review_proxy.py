"""Review findings on the proxy path: each test pins a defect that was fixed."""

from __future__ import annotations

import httpx

from tests.conftest import GatewayFactory
from tests.fakes import FakeUpstream, chat_completion

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
