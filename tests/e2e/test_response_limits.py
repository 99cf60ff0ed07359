"""What an upstream's response may not do to the gateway or its client (issue 9):
trailer fields become no headers (item 6); a gzip bomb passes through in bounded
memory, its span keeping only the first bytes and saying so (item 7)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import mock_upstream as mock
from tests.e2e.conftest import CLIENT_KEY, GatewayProcess, StartGateway

pytestmark = pytest.mark.e2e

CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("stream", [False, True])
def test_trailer_fields_do_not_reach_the_client_as_headers(
    gateway: GatewayProcess, test_id: str, stream: bool
) -> None:
    r = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={**CHAT, "stream": stream},
        headers={
            "authorization": f"Bearer {CLIENT_KEY}",
            "x-mock-scenario": "trailers",
            "x-test-id": test_id,
        },
    )
    assert r.status_code == 200, r.text
    assert "set-cookie" not in r.headers
    expected = "text/event-stream" if stream else "application/json"
    assert r.headers.get_list("content-type") == [expected]
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert r.json()["choices"][0]["message"]["content"] == mock.CONTENT
    span = gateway.span(r.headers["x-spanlab-span-id"])
    assert span["status"] == "ok"
    assert span["output_text"] == mock.CONTENT
    assert "set-cookie" not in span["response_headers"]
    assert span["response_headers"]["content-type"] == expected


# --- a gzip bomb ---------------------------------------------------------------------------

BOMB_BYTES = 64 * 1024 * 1024  # decoded; ~65 KB on the wire
CAPTURE_BYTES = 1024 * 1024
# Growth of a process's peak resident memory allowed for one bomb. Holding the body
# whole takes more than BOMB_BYTES (in the gateway, and again in the writer process).
MAX_GROWTH = 32 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def bomb(gateway: GatewayProcess, test_id: str, stream: bool) -> tuple[str, int, bytes]:
    """(span id, bytes received, the first and last 64 of them) of a call to the bomb."""
    headers = {
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-mock-scenario": "gzip_bomb",
        "x-mock-size": str(BOMB_BYTES),
        "x-test-id": f"{test_id}-{stream}",
        "x-thread-id": test_id,
    }
    received = 0
    ends = b""
    last = b""
    with gateway.client.stream(
        "POST",
        f"{gateway.base_url}/v1/chat/completions",
        json={**CHAT, "stream": stream},
        headers=headers,
        timeout=180.0,  # what is measured is memory: a loaded machine may be slow
    ) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            if not received:
                ends = chunk[:64]
            received += len(chunk)
            last = (last + chunk)[-64:]
    return r.headers["x-spanlab-span-id"], received, ends + last


@pytest.mark.slow
def test_a_gzip_bomb_passes_through_in_bounded_memory_and_is_stored_truncated(
    start_gateway: StartGateway, test_id: str
) -> None:
    gateway = start_gateway(max_capture_bytes=CAPTURE_BYTES, request_timeout=180.0)
    assert gateway.proc is not None
    pid = gateway.proc.pid
    # One ordinary call first: the writer process starts with the first span.
    r = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-test-id": test_id},
    )
    gateway.span(r.headers["x-spanlab-span-id"])
    (writer_pid,) = children(pid)
    before = peak_rss(pid), peak_rss(writer_pid)

    # Not a stream: the client gets every byte, decoded.
    span_id, received, ends = bomb(gateway, test_id, stream=False)
    assert received == BOMB_BYTES
    assert ends.startswith(b'{"id":"bomb","pad":"000') and ends.endswith(b'000"}')
    span = gateway.span(span_id)
    assert span["status"] == "ok"
    assert span["attributes"]["truncated_capture"] == {
        "max_capture_bytes": CAPTURE_BYTES,
        "response_bytes": BOMB_BYTES,
    }
    # The first CAPTURE_BYTES, kept as text (cut, they are no JSON document).
    assert isinstance(span["response"], str) and len(span["response"]) == CAPTURE_BYTES
    assert span["response"].startswith('{"id":"bomb"')

    # A stream: every event reaches the client; the span keeps the first ones, and the
    # final ones that carry the finish reason and usage.
    span_id, received, ends = bomb(gateway, test_id, stream=True)
    assert received > BOMB_BYTES * 0.99
    assert ends.rstrip().endswith(b"data: [DONE]")
    span = gateway.span(span_id)
    assert span["status"] == "ok"
    mark = span["attributes"]["truncated_capture"]
    assert mark["max_capture_bytes"] == CAPTURE_BYTES
    # The whole stream as the upstream sent it (the client did not get the usage
    # chunk the gateway asked for).
    sent = len(gzip.decompress(mock._stream_bomb(CHAT["model"], BOMB_BYTES)))
    assert mark["response_bytes"] == sent
    assert 0 < len(span["output_text"]) < CAPTURE_BYTES
    assert set(span["output_text"]) == {"0"}
    assert span["finish_reason"] == "stop"
    assert span["usage"]["prompt_tokens"] == mock.PROMPT_TOKENS

    growth = peak_rss(pid) - before[0], peak_rss(writer_pid) - before[1]
    print(f"peak RSS growth for two {BOMB_BYTES >> 20} MB bombs: gateway, writer = {growth}")
    assert growth[0] < MAX_GROWTH, f"gateway peak RSS grew {growth[0] >> 20} MB"
    assert growth[1] < MAX_GROWTH, f"writer peak RSS grew {growth[1] >> 20} MB"


def test_a_relayed_body_past_max_response_bytes_is_cut_not_ended(
    start_gateway: StartGateway, test_id: str
) -> None:
    """Past max_capture_bytes a body is relayed as it comes; past max_response_bytes
    it stops there, and the client must see it cut (no end of the chunked body), not
    a shorter body that looks whole."""
    gateway = start_gateway(
        max_capture_bytes=256 * 1024, max_response_bytes=1024 * 1024, request_timeout=30.0
    )
    headers = {
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-mock-scenario": "gzip_bomb",
        "x-mock-size": str(8 * 1024 * 1024),
        "x-test-id": test_id,
    }
    received = 0
    with (
        pytest.raises(httpx.RemoteProtocolError),
        gateway.client.stream(
            "POST", f"{gateway.base_url}/v1/chat/completions", json=CHAT, headers=headers
        ) as r,
    ):
        assert r.status_code == 200
        span_id = r.headers["x-spanlab-span-id"]
        for chunk in r.iter_raw():
            received += len(chunk)
    assert received <= 1024 * 1024
    span = gateway.span(span_id)
    assert span["status"] == "error"
    assert span["error"]["code"] == "response_too_large"
    assert span["attributes"]["truncated_capture"]["max_capture_bytes"] == 256 * 1024
    assert "Traceback" not in gateway.log()
