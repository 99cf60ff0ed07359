"""Stream relay: what the client receives does not depend on how bytes were chunked."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import GatewayFactory
from tests.fakes import FakeUpstream, chat_chunks, sse, stream_response

# Every test here runs with both upstream clients (tests/conftest.py).
pytestmark = pytest.mark.both_clients

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def data_events(body: bytes) -> list[bytes]:
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]


async def test_good_events_read_with_a_malformed_one_are_still_forwarded(
    make_gateway: GatewayFactory,
) -> None:
    good = sse(chat_chunks(["one ", "two"]), done=False)
    # One network read holding the good events and then a broken one.
    wire = b"".join(good) + b"data: {not json\n\n" + b"".join(sse([], done=True))
    upstream = FakeUpstream(handler=lambda request: stream_response([wire]))
    gw = await make_gateway(upstream)
    r = await gw.client.post("/v1/chat/completions", json=CHAT)
    sent = data_events(r.content)
    assert sent[:-1] == [event[6:-2] for event in good]
    assert orjson.loads(sent[-1])["error"]["code"] == "upstream_stream_malformed"
    span = await gw.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "error"
    assert span["output_text"] == "one two"
