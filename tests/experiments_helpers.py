"""Helpers shared by the in-process experiment tests."""

from __future__ import annotations

from typing import Any

import orjson

from tests.conftest import Gateway

CHAT = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "temperature": 0.7,
}


async def capture(
    gateway: Gateway, body: dict[str, Any] | None = None, **headers: str
) -> dict[str, Any]:
    """Make a call through the proxy; return its stored span."""
    r = await gateway.client.post("/v1/chat/completions", json=body or CHAT, headers=headers)
    assert r.status_code < 500, r.text
    return await gateway.span(r.headers["x-spanlab-span-id"])


async def create(gateway: Gateway, **body: Any) -> dict[str, Any]:
    r = await gateway.client.post("/experiments", json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def run(gateway: Gateway, experiment_id: str, **headers: str) -> dict[str, Any]:
    r = await gateway.client.post(f"/experiments/{experiment_id}/run", headers=headers)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"]
    return error


def sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        events.append((name or "message", orjson.loads("\n".join(data))))
    return events
