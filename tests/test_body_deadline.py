"""A request body that does not arrive within client_body_timeout: 408 in the error
shape and ``connection: close``, on the proxy (recorded as a span, nothing sent
upstream) and on the management API (nothing written)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import capture, create, error_of

# Every test here runs with both upstream clients (tests/conftest.py).
pytestmark = pytest.mark.both_clients

DEADLINE_S = 0.3
JSON = {"content-type": "application/json"}


async def trickle(first: bytes, rest: bytes) -> AsyncIterator[bytes]:
    """A body whose first part comes at once and the rest far too late."""
    yield first
    await asyncio.sleep(30)
    yield rest


async def test_a_slow_body_to_the_proxy_gets_408_and_is_recorded(
    make_gateway: GatewayFactory,
) -> None:
    gw: Gateway = await make_gateway(client_body_timeout=DEADLINE_S)
    start = time.monotonic()
    r = await gw.client.post(
        "/v1/chat/completions",
        content=trickle(b'{"model": "gpt-4o-mini", ', b'"messages": []}'),
        headers={**JSON, "x-thread-id": "slow-body"},
    )
    assert time.monotonic() - start < DEADLINE_S + 1.5
    assert r.status_code == 408
    error = error_of(r)
    assert error["code"] == "request_timeout" and "client_body_timeout" in error["message"]
    assert r.headers["connection"] == "close"  # the rest of the body may still come
    assert gw.upstream.requests == []
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error" and span["http_status"] == 408
    assert span["thread_id"] == "slow-body"


async def test_a_body_in_pieces_within_the_deadline_passes(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(client_body_timeout=DEADLINE_S)

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (
            b'{"model": "gpt-4o-mini", ',
            b'"messages": [{"role": "user", ',
            b'"content": "hi"}]}',
        ):
            yield piece
            await asyncio.sleep(DEADLINE_S / 10)

    r = await gw.client.post("/v1/chat/completions", content=pieces(), headers=JSON)
    assert r.status_code == 200, r.text
    assert len(gw.upstream.requests) == 1


async def test_a_slow_body_to_the_management_api_gets_408(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(client_body_timeout=DEADLINE_S)
    span = await capture(gw)
    exp = await create(gw, original_span_id=span["span_id"])
    for method, url in [
        ("PUT", f"/experiments/{exp['id']}"),
        ("POST", "/experiments"),
        ("POST", f"/experiments/{exp['id']}/duplicate"),
    ]:
        start = time.monotonic()
        r = await gw.client.request(
            method, url, content=trickle(b'{"name": ', b'"renamed"}'), headers=JSON
        )
        assert time.monotonic() - start < DEADLINE_S + 1.5
        assert r.status_code == 408, (method, url, r.text)
        assert error_of(r)["code"] == "request_timeout"
        assert r.headers["connection"] == "close"
    assert (await gw.client.get("/experiments")).json()["data"] == [exp]
