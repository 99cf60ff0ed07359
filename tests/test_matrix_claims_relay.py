"""The relay's control channel (`Relay.signal`, `Relay.on_signal`): what the matrix
engine uses to tell the other workers a run started, was cancelled, or a cell ended.
Unlike events, signals go whether or not a peer has ``/events`` listeners."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateway.fanout.unix import UnixRelay, WorkerRole
from tests.conftest import GatewayFactory
from tests.test_fanout import settle


async def test_a_signal_reaches_the_peer_handler_without_any_listener(tmp_path: Path) -> None:
    first = UnixRelay(WorkerRole(1, 2, str(tmp_path)))
    second = UnixRelay(WorkerRole(2, 2, str(tmp_path)))
    got: list[dict[str, Any]] = []
    delivered: list[dict[str, Any]] = []
    await first.start(lambda e: None)
    await second.start(delivered.append)
    try:
        second.on_signal("matrix", got.append)

        def broken(data: dict[str, Any]) -> None:
            raise RuntimeError("a bad handler")

        second.on_signal("other", broken)
        assert first.peers_listening is False and second.peers_listening is False
        first.signal("other", {"x": 1})  # its handler fails: the next still arrives
        first.signal("matrix", {"what": "run", "experiment_id": "e1", "run_id": "r1"})
        first.signal("unknown", {"y": 2})  # nobody handles it: ignored
        second.signal("matrix", {"what": "cell"})  # not to itself
        await settle()
        assert got == [{"what": "run", "experiment_id": "e1", "run_id": "r1"}]
        assert delivered == []  # signals are not events
        assert first.dropped == 0
    finally:
        await first.close()
        await second.close()


async def test_signals_wake_the_matrix_engine_and_its_progress_listeners(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(matrix_lease_s=30.0)  # its own poll: once a second
    matrix = gw.state.experiments.matrix
    async with matrix.hub.listen("e1") as wake:
        matrix.signalled({"what": "cell", "experiment_id": "e1", "run_id": "r1"})
        assert await asyncio.wait_for(wake.get(), 1) is False
        matrix.signalled({"what": "end", "experiment_id": "e1", "run_id": "r1"})
        assert await asyncio.wait_for(wake.get(), 1) is True
    polled = asyncio.Event()
    original = matrix.claims.running_runs

    async def running_runs() -> list[Any]:
        polled.set()
        return await original()

    matrix.claims.running_runs = running_runs  # type: ignore[method-assign]
    await asyncio.sleep(0)
    polled.clear()
    began = time.monotonic()
    matrix.signalled({"what": "cancel", "experiment_id": "e1", "run_id": "r1"})
    await asyncio.wait_for(polled.wait(), 1)
    assert time.monotonic() - began < 0.5  # at once, not at the next second's poll
