"""Slow clients against a real `spanlab serve`: a request head or body that trickles in
is cut after its deadline (408), and more slow (slowloris) connections than the
connection limit, and than the process's open files, leave normal calls served."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest

from tests.e2e.conftest import GatewayProcess, StartGateway

pytestmark = pytest.mark.e2e

LIMIT = 40  # max_client_connections
OPEN_FILES = 192  # the gateway's ulimit -n: the limit, and what its calls need, fit
SLOW = 250  # slow connections: more than the limit, and than the open files
TIMEOUT_S = 1.0  # client_header_timeout and client_body_timeout
SLOW_LINE_EVERY_S = 0.3  # a slow client sends a header line this often
PROBE_EVERY_S = 0.1
PROBE_FOR_S = 4.0
PROBE_TIMEOUT_S = 3.0
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture(scope="module")
def guarded(start_gateway: StartGateway) -> Iterator[GatewayProcess]:
    gateway = start_gateway(
        max_open_files=OPEN_FILES,
        max_client_connections=LIMIT,
        client_header_timeout=TIMEOUT_S,
        client_body_timeout=TIMEOUT_S,
    )
    yield gateway
    gateway.stop()


def connect(gateway: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5.0)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (seconds)."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


def assert_408(data: bytes) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), data
    assert b"connection: close" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["code"] == "request_timeout" and error["type"] == "invalid_request_error"


def test_a_partial_head_gets_408_and_is_closed(guarded: GatewayProcess) -> None:
    with connect(guarded) as sock:
        sock.sendall(HEAD + b"Content-Type: application/json\r\n")
        data, after = read_until_closed(sock, timeout=TIMEOUT_S + 4)
    assert_408(data)
    assert TIMEOUT_S * 0.9 <= after <= TIMEOUT_S + 1.5, after


def test_a_head_trickling_in_is_cut_at_the_deadline(guarded: GatewayProcess) -> None:
    """A byte now and then does not move the deadline (uvicorn's keep-alive timer,
    disarmed by every byte, is no deadline at all)."""
    with connect(guarded) as sock:
        start = time.monotonic()
        sock.sendall(HEAD)
        sock.settimeout(0.2)
        data = b""
        while time.monotonic() - start < TIMEOUT_S + 3:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        after = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert after <= TIMEOUT_S + 1.5, after


def test_a_silent_connection_is_closed(guarded: GatewayProcess) -> None:
    with connect(guarded) as sock:
        data, after = read_until_closed(sock, timeout=TIMEOUT_S + 4)
    assert data == b""  # nothing was asked: nothing is answered
    assert TIMEOUT_S * 0.9 <= after <= TIMEOUT_S + 1.5, after


def test_the_next_head_on_a_kept_alive_connection_has_a_deadline(guarded: GatewayProcess) -> None:
    with connect(guarded) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + HEAD + b"X-Slow: 1\r\n"
        sock.sendall(request)
        data, after = read_until_closed(sock, timeout=TIMEOUT_S + 4)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), data
    assert b"HTTP/1.1 408 " in rest
    assert after <= TIMEOUT_S + 1.5, after


def test_a_body_trickling_in_gets_408_in_the_error_shape(guarded: GatewayProcess) -> None:
    with connect(guarded) as sock:
        sock.sendall(
            HEAD
            + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(CHAT)
            + CHAT[:10]
        )
        data, after = read_until_closed(sock, timeout=TIMEOUT_S + 4)
    assert_408(data)
    assert b"x-spanlab-span-id" in data  # the proxy's reader answered, and recorded it
    assert TIMEOUT_S * 0.9 <= after <= TIMEOUT_S + 1.5, after


@dataclass
class Attack:
    connects: int = 0
    refused: int = 0
    answers: dict[bytes, int] = field(default_factory=dict)


async def slowloris(port: int, stop: asyncio.Event, attack: Attack) -> None:
    """One slow client: a request head a line at a time, and again when it is cut."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2.0)
        except (OSError, TimeoutError):
            attack.refused += 1
            await asyncio.sleep(0.1)
            continue
        attack.connects += 1
        try:
            writer.write(HEAD)
            while not stop.is_set():
                try:
                    answer = await asyncio.wait_for(reader.read(65536), SLOW_LINE_EVERY_S)
                except TimeoutError:
                    writer.write(b"X-Slow: 1\r\n")
                    continue
                status = answer[9:12] if answer else b"EOF"
                attack.answers[status] = attack.answers.get(status, 0) + 1
                break
        except OSError:
            attack.answers[b"RST"] = attack.answers.get(b"RST", 0) + 1
        finally:
            writer.close()
        # Back at the next tick, as slowloris.py reopens the sockets it lost once per
        # round (a client reconnecting in a tight loop is a connection flood instead).
        await asyncio.sleep(SLOW_LINE_EVERY_S)


async def probe(port: int, results: list[float | None], errors: list[str]) -> None:
    """One normal call, on a new connection: its duration, or None if it failed.

    Raw asyncio streams: a client object per probe (httpx builds an SSL context for
    each) would make the test process, not the gateway, the bottleneck."""
    start = time.monotonic()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % len(CHAT)
    ) + CHAT
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                response = await reader.read()  # Connection: close: read to the end
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        errors.append(type(exc).__name__)
        results.append(None)
        return
    ok = response.startswith(b"HTTP/1.1 200 ") and b'"chat.completion"' in response
    if not ok:
        errors.append(response[:12].decode("latin-1") or "EOF")
    results.append(time.monotonic() - start if ok else None)


async def run_attack(
    gateway: GatewayProcess,
) -> tuple[list[float | None], list[str], Attack, int]:
    stop = asyncio.Event()
    attack = Attack()
    attackers = [asyncio.create_task(slowloris(gateway.port, stop, attack)) for _ in range(SLOW)]
    await asyncio.sleep(1.5)  # every slow client has connected at least once
    results: list[float | None] = []
    errors: list[str] = []
    probes = []
    most_files = 0
    deadline = time.monotonic() + PROBE_FOR_S
    while time.monotonic() < deadline:
        probes.append(asyncio.create_task(probe(gateway.port, results, errors)))
        most_files = max(most_files, gateway.open_files())
        await asyncio.sleep(PROBE_EVERY_S)
    await asyncio.gather(*probes)
    stop.set()
    await asyncio.gather(*attackers)
    return results, errors, attack, most_files


@pytest.mark.slow
def test_more_slow_connections_than_the_limit_leave_normal_calls_served(
    guarded: GatewayProcess,
) -> None:
    results, errors, attack, most_files = asyncio.run(run_attack(guarded))
    served = [r for r in results if r is not None]
    rate = len(served) / len(results)
    print(  # the figures the issue asks for (pytest -s)
        f"\nslowloris: {SLOW} slow clients, limit {LIMIT}, {OPEN_FILES} files: probes"
        f" {len(served)}/{len(results)} served ({rate:.0%}), slowest"
        f" {max(served, default=0):.3f} s; slow connects {attack.connects}, answers"
        f" {attack.answers}, most open files {most_files}; probe errors {errors}"
    )
    assert len(results) >= 20
    # Before: 0 of 40 (every probe reset or timed out while the slow clients held every
    # file). A probe may still land in a burst of connections accepted before any of
    # them could be read, and be closed unread (an SDK would retry it).
    assert rate >= 0.9, (rate, errors, attack)
    assert max(served) < 2.0
    # The slow clients were really held off, not just outnumbered: their connections
    # were cut (they reconnected), and the gateway's open files stayed within bounds.
    assert attack.connects > SLOW
    assert most_files < OPEN_FILES - 10
    # And once they are gone, everything is as before.
    assert guarded.client.get(f"{guarded.base_url}/healthz").status_code == 200
