from __future__ import annotations

from tests.conftest import Gateway


async def test_chat_roundtrip(gateway: Gateway) -> None:
    r = await gateway.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": "Bearer sk-client-secret-123"},
    )
    assert r.status_code == 200, r.text
    span = await gateway.span(r.headers["x-spanlab-span-id"])
    print(span)
    assert span["output_text"] == "Hello there!"
