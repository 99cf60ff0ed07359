"""Live events between gateway processes (`gateway.fanout`): two Unix relays in one
event loop stand for two workers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from gateway.fanout.relay import EVENTS, SPAN_REF, encode_events
from gateway.fanout.unix import UnixRelay, WorkerRole


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


async def pair(tmp_path: Path) -> tuple[UnixRelay, UnixRelay, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    first = UnixRelay(WorkerRole(1, 2, str(tmp_path)))
    second = UnixRelay(WorkerRole(2, 2, str(tmp_path)))
    await first.start(lambda e: None)
    await second.start(got.append)
    return first, second, got


async def test_events_reach_a_peer_only_while_it_has_listeners(tmp_path: Path) -> None:
    first, second, got = await pair(tmp_path)
    try:
        first.send({"span_id": "a"})
        await settle()
        assert got == [] and first.peers_listening is False  # nobody listens there
        second.listening(True)
        await settle()
        assert first.peers_listening
        for i in range(3):  # one turn of the loop: one datagram
            first.send({"span_id": f"b{i}"})
        await settle()
        assert [e["span_id"] for e in got] == ["b0", "b1", "b2"]
        second.listening(False)
        await settle()
        first.send({"span_id": "c"})
        await settle()
        assert len(got) == 3
    finally:
        await first.close()
        await second.close()


async def test_a_dead_peer_counts_as_dropped(tmp_path: Path) -> None:
    first, second, _ = await pair(tmp_path)
    second.listening(True)
    await settle()
    await second.shut()  # gone without a word (killed): its socket is no more
    assert not (tmp_path / "events-2.sock").exists()
    first.send({"span_id": "x"})
    await settle()
    assert first.dropped == 1
    await first.close()


async def test_a_peer_closing_says_it_listens_no_more(tmp_path: Path) -> None:
    first, second, _ = await pair(tmp_path)
    second.listening(True)
    await settle()
    assert first.peers_listening
    await second.close()
    await settle()
    assert not first.peers_listening
    await first.close()


def test_large_batches_split_and_an_oversized_span_goes_by_reference() -> None:
    events = [{"span_id": f"s{i}", "output_text": "x" * 300} for i in range(10)]
    events.append({"span_id": "big", "output_text": "y" * 5000})
    events.append({"spanlab_event": "too.big", "data": {"text": "z" * 5000}})
    messages = encode_events("me", events, 1024)
    assert all(len(m) <= 1024 for m, _ in messages) and len(messages) > 1
    decoded = [orjson.loads(m) for m, _ in messages]
    assert all(d["kind"] == EVENTS and d["from"] == "me" for d in decoded)
    sent = [e for d in decoded for e in d["events"]]
    assert [e.get("span_id") for e in sent[:10]] == [f"s{i}" for i in range(10)]
    assert sent[10] == {SPAN_REF: "big"} and len(sent) == 11  # the named event is left out
    assert sum(n for _, n in messages) == 11


async def test_a_newcomer_learns_at_once_who_listens(tmp_path: Path) -> None:
    """A worker that starts (or restarts) after a peer's listener came is told at once,
    not at the next heartbeat: the events of its first seconds reach that listener."""
    first = UnixRelay(WorkerRole(1, 2, str(tmp_path)))
    await first.start(lambda e: None)
    first.listening(True)  # nobody there to hear it yet
    await settle()
    second = UnixRelay(WorkerRole(2, 2, str(tmp_path)))
    await second.start(lambda e: None)
    await settle()
    assert second.peers_listening
    await second.close()
    await first.close()
