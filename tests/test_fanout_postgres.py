"""Live events between processes on one PostgreSQL database (`PostgresRelay`,
LISTEN/NOTIFY), against a real PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg

from gateway.fanout.postgres import PostgresRelay
from gateway.fanout.relay import SPAN_REF


async def until(check: Callable[[], bool]) -> None:
    """Wait (at most 10 s) for ``check`` to hold."""
    async with asyncio.timeout(10.0):
        while not check():  # noqa: ASYNC110 (state PostgreSQL changes: no event to await)
            await asyncio.sleep(0.02)


async def test_events_cross_processes_while_someone_listens(pg_url: str) -> None:
    got: list[dict[str, Any]] = []
    sender, receiver = PostgresRelay(pg_url), PostgresRelay(pg_url)
    await sender.start(lambda e: None)
    await receiver.start(got.append)
    try:
        sender.send({"span_id": "unheard"})  # nobody listens anywhere: nothing sent
        receiver.listening(True)
        await until(lambda: sender.peers_listening)
        big = {"span_id": "big", "output_text": "x" * 20_000}
        batch = [{"span_id": f"s{i}", "output_text": "y" * 700} for i in range(30)]
        for event in [*batch, big]:
            sender.send(event)
        await until(lambda: len(got) == 31)
        assert [e.get("span_id") for e in got[:30]] == [f"s{i}" for i in range(30)]
        assert got[30] == {SPAN_REF: "big"}  # past NOTIFY's 8000 bytes: by reference
        assert sender.dropped == 0
    finally:
        await sender.close()
        await receiver.close()


async def test_a_lost_connection_is_made_again_and_interest_told_anew(pg_url: str) -> None:
    got: list[dict[str, Any]] = []
    sender, receiver = PostgresRelay(pg_url), PostgresRelay(pg_url)
    await sender.start(lambda e: None)
    await receiver.start(got.append)
    try:
        receiver.listening(True)
        await until(lambda: sender.peers_listening)
        # An administrator (or a failover) ends both relays' sessions.
        admin = await asyncpg.connect(pg_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed == 2
        # Both listened; both come back (1 s), greet, and the interest is known again.
        await asyncio.sleep(1.5)
        await until(lambda: sender.peers_listening)
        sender.send({"span_id": "after"})
        await until(lambda: any(e.get("span_id") == "after" for e in got))
    finally:
        await sender.close()
        await receiver.close()
