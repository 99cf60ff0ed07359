"""kill -9 of the gateway under load: every call answered has its span in the database.

The writer process outlives the gateway (its own session; it stores what it has read
when its input closes), so when only the gateway dies, what was answered must be
there. The figures are printed (``pytest -s``) for the issue's closing note.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import httptools
import orjson
import pytest

from gateway.config import Settings
from gateway.writer.span_writer import IN_FLIGHT_BATCHES
from tests.e2e.conftest import CLIENT_KEY, GatewayProcess, StartGateway
from tests.e2e.processes import wait_gone, writer_pid

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CALLS = 5000
CONNECTIONS = 64
KILL_AFTER = 3000  # answered calls before the kill: mid-load


def stored(db: Path, ids: list[str]) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY)")
        conn.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(i,) for i in ids])
        rows = conn.execute("SELECT span_id FROM spans JOIN wanted ON span_id = id").fetchall()
        return {row[0] for row in rows}
    finally:
        conn.close()


class Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection, one exchange at a time: a raw protocol
    with httptools' parser, a tenth of httpx's cost per call, so the load is the
    gateway's and not the client's."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, str | None, bytes]] | None = None
        self.span_id: str | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("connection lost"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-spanlab-span-id":
            self.span_id = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            status = self.parser.get_status_code()
            self.waiter.set_result((status, self.span_id, bytes(self.body)))

    async def exchange(self, request: bytes) -> tuple[int, str | None, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.span_id, self.body = None, bytearray()
        self.transport.write(request)
        return await asyncio.wait_for(self.waiter, 20)


def encode(gateway: GatewayProcess, test_id: str, i: int) -> bytes:
    stream = i % 4 == 0
    body = orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"call {i}"}],
            "stream": stream,
        }
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{gateway.port}\r\n"
        f"authorization: Bearer {CLIENT_KEY}\r\nx-thread-id: {test_id}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load_and_kill(gateway: GatewayProcess, test_id: str, kill: list[int]) -> list[str]:
    """Fire CALLS calls on CONNECTIONS connections, SIGKILL the pids in ``kill`` once
    KILL_AFTER are answered; the span ids of the calls answered (whole response
    received: a stream up to its ``[DONE]``)."""
    answered: list[str] = []
    killed = asyncio.Event()
    calls = iter(range(CALLS))
    started = time.monotonic()
    loop = asyncio.get_running_loop()

    async def client() -> None:
        _, conn = await loop.create_connection(Connection, "127.0.0.1", gateway.port)
        try:
            for i in calls:
                if killed.is_set():
                    return
                try:
                    status, span_id, body = await conn.exchange(encode(gateway, test_id, i))
                except (ConnectionError, TimeoutError):
                    return
                if status != 200 or span_id is None:
                    continue
                if i % 4 == 0 and not body.rstrip().endswith(b"data: [DONE]"):
                    continue
                answered.append(span_id)
                if len(answered) >= KILL_AFTER and not killed.is_set():
                    killed.set()
                    rate = len(answered) / (time.monotonic() - started)
                    print(f"\nkilled at {len(answered)} answered calls ({rate:.0f} calls/s)")
                    for pid in kill:
                        os.kill(pid, signal.SIGKILL)
        finally:
            assert conn.transport is not None
            conn.transport.close()

    await asyncio.gather(*(client() for _ in range(CONNECTIONS)))
    assert killed.is_set(), f"only {len(answered)} calls answered"
    return answered


async def test_kill_9_of_the_gateway_loses_no_answered_call(
    start_gateway: StartGateway, test_id: str
) -> None:
    gateway = start_gateway(log_level="warning")
    assert gateway.proc is not None
    child = writer_pid(gateway)
    answered = await load_and_kill(gateway, test_id, [gateway.proc.pid])
    gateway.proc.wait(10)
    gateway.proc = None
    # The writer process stores what it holds, then exits on its own.
    await asyncio.to_thread(wait_gone, child, 20)
    missing = set(answered) - stored(gateway.db, answered)
    print(f"\nkill -9 gateway only: {len(missing)} of {len(answered)} answered calls missing")
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no span"


async def test_kill_9_of_gateway_and_writer_is_measured(
    start_gateway: StartGateway, test_id: str
) -> None:
    """Both killed: what the writer had not committed is lost (at most its last group
    commit and what was on its way); the database stays whole and holds no other span."""
    gateway = start_gateway(log_level="warning")
    assert gateway.proc is not None
    child = writer_pid(gateway)
    answered = await load_and_kill(gateway, test_id, [child, gateway.proc.pid])
    gateway.proc.wait(10)
    gateway.proc = None
    await asyncio.to_thread(wait_gone, child, 10)
    conn = sqlite3.connect(gateway.db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        thread_rows = conn.execute(
            "SELECT COUNT(*) FROM spans WHERE thread_id = ?", (test_id,)
        ).fetchone()[0]
    finally:
        conn.close()
    found = stored(gateway.db, answered)
    missing = len(answered) - len(found)
    print(f"\nkill -9 gateway and writer: {missing} of {len(answered)} answered calls missing")
    # Stored spans of this test are the answered ones plus calls cut by the kill.
    assert len(found) <= thread_rows
    # Lost at most what the writer may hold unstored by design: the spans sent to the
    # process and not yet acknowledged (its read-ahead, bounded), the gateway's queue
    # being empty at this load.
    assert missing <= IN_FLIGHT_BATCHES * Settings().write_batch_size
