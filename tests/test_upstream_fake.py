"""The suite's fake upstream itself: one script, the same answer on loopback and in
process; and the proxy suite's two upstream clients are the ones they claim to be."""

from __future__ import annotations

import httpx
import pytest

from gateway.http.client import ConnectionPool
from gateway.http.upstream import HttpxUpstream
from tests.conftest import Gateway
from tests.upstream.anthropic import MockAnthropic
from tests.upstream.server import MockUpstream
from tests.upstream.transport import script_transport

pytestmark = pytest.mark.both_clients

MESSAGE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 50,
    "stream": True,
    "messages": [{"role": "user", "content": "hello there"}],
}
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


async def test_a_script_answers_the_same_on_loopback_and_in_process() -> None:
    mock = MockAnthropic(stream_delay=0.0)
    async with httpx.AsyncClient(transport=script_transport(mock.handle)) as client:
        in_process = await client.post(
            "http://fake.test/v1/messages", json=MESSAGE, headers=HEADERS
        )
    with MockUpstream(script=mock.handle) as server:
        async with httpx.AsyncClient() as client:
            wire = await client.post(f"{server.base_url}/messages", json=MESSAGE, headers=HEADERS)
    assert in_process.status_code == wire.status_code == 200
    assert in_process.headers["content-type"] == wire.headers["content-type"]
    assert in_process.headers["request-id"] == wire.headers["request-id"] == "req_mock"
    assert wire.headers["transfer-encoding"] == "chunked"  # streamed over the wire
    # Message ids count requests: the second answer is the first, but for its id.
    assert b"event: message_stop" in wire.content
    assert b"msg_mock_1" in in_process.content
    assert in_process.content.replace(b"msg_mock_1", b"msg_mock_2") == wire.content
    assert len(mock.requests) == 2


async def test_the_proxy_suite_runs_on_the_client_it_names(
    gateway: Gateway, upstream_client: str
) -> None:
    expected = {"httpx": HttpxUpstream, "builtin": ConnectionPool}[upstream_client]
    assert type(gateway.state.upstream) is expected
    r = await gateway.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert gateway.upstream.last.url.host == "upstream.test"  # the fake saw its own URL
