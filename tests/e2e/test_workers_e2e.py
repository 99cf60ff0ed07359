"""``spanlab serve --workers N``: real worker processes on one port, a real upstream.

Every call through any worker is stored; a killed worker is replaced while the others
keep serving; SIGTERM stops them all gracefully; the supervisor's death (SIGKILL) takes
the workers with it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import StartGateway, sdk
from tests.serve import EventsReader, GatewayProcess

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces; split after its ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def is_worker(pid: int) -> bool:
    """A process multiprocessing spawned to run a function (not its resource tracker)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in command


def workers_of(gateway: GatewayProcess, count: int, timeout: float = 20.0) -> list[int]:
    """The supervisor's worker processes, once there are ``count`` of them."""
    assert gateway.proc is not None
    deadline = time.monotonic() + timeout
    while True:
        pids = sorted(p for p in children(gateway.proc.pid) if is_worker(p))
        if len(pids) == count:
            return pids
        assert time.monotonic() < deadline, f"workers {pids}, wanted {count}:\n{gateway.log()}"
        time.sleep(0.1)


def started(gateway: GatewayProcess, count: int, timeout: float = 20.0) -> None:
    """Wait for ``count`` app startups in the log (workers and their replacements)."""
    deadline = time.monotonic() + timeout
    while gateway.log().count("Application startup complete.") < count:
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def calls_on_new_connections(gateway: GatewayProcess, count: int, thread: str) -> None:
    """``count`` calls, each on a connection of its own (the kernel spreads accepted
    connections over the workers), every one answered."""
    for i in range(count):
        with httpx.Client(timeout=10.0) as client:
            answer = client.post(
                f"{gateway.base_url}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{i}"}]},
                headers={"x-thread-id": thread},
            )
        assert answer.status_code == 200, answer.text


def test_two_workers_serve_store_every_call_and_replace_a_dead_one(
    start_gateway: StartGateway, test_id: str
) -> None:
    gateway = start_gateway(workers=2)
    first, second = workers_of(gateway, 2)
    calls_on_new_connections(gateway, 30, test_id)
    streamed = sdk(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        extra_headers={"x-thread-id": test_id},
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    gateway.wait_spans(31, timeout=15.0, thread=test_id)

    os.kill(first, signal.SIGKILL)
    # The other keeps serving while the supervisor starts a replacement.
    calls_on_new_connections(gateway, 5, test_id + "-b")
    replaced = workers_of(gateway, 2)
    assert first not in replaced and second in replaced
    assert "exited with status -9; starting it again" in gateway.log()
    calls_on_new_connections(gateway, 10, test_id + "-c")
    gateway.wait_spans(5, thread=test_id + "-b")
    gateway.wait_spans(10, thread=test_id + "-c")

    # Once the replacement has started (three startups in all), a SIGTERM stops all.
    started(gateway, 3)
    pids = workers_of(gateway, 2)
    gateway.stop_gracefully()
    assert not any(alive(pid) for pid in pids)
    assert gateway.log().count("Application shutdown complete.") == 2


def test_the_workers_die_with_their_supervisor(start_gateway: StartGateway) -> None:
    gateway = start_gateway(workers=2)
    pids = workers_of(gateway, 2)
    assert gateway.proc is not None
    gateway.proc.kill()  # SIGKILL: no chance to tell them
    gateway.proc.wait()
    gateway.proc = None
    deadline = time.monotonic() + 30.0
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    # They shut down gracefully on the kernel's SIGTERM: the port is free again.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{gateway.base_url}/healthz", timeout=1.0)


def requests_counted(gateway: GatewayProcess) -> float:
    """``spanlab_requests_total`` summed over its series, as /metrics answers."""
    text = httpx.get(f"{gateway.base_url}/metrics", timeout=5.0).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("spanlab_requests_total{")
    )


def test_live_events_and_metrics_cover_every_worker(
    start_gateway: StartGateway, test_id: str
) -> None:
    gateway = start_gateway(workers=2, events_heartbeat_s=0.5)
    started(gateway, 2)
    # One stream, held by one worker; the calls land on both.
    events = EventsReader(f"{gateway.base_url}/events")
    try:
        time.sleep(0.3)  # its worker tells the other it has a listener
        calls_on_new_connections(gateway, 24, test_id)
        gateway.wait_spans(24, thread=test_id)
        deadline = time.monotonic() + 10.0
        while events.spans() < 24:
            assert time.monotonic() < deadline, f"{events.spans()} of 24 spans streamed"
            time.sleep(0.05)
    finally:
        events.stop.set()
    streamed = [line for line in events.lines if test_id in line]
    assert len(streamed) == 24
    # Whichever worker answers /metrics counts every worker's calls.
    for _ in range(6):
        assert requests_counted(gateway) == 24
    gateway.stop_gracefully()
