"""The gateway's writer process, seen from outside: find it, stop it, wait for its end."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.conftest import CLIENT_KEY, GatewayProcess


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(x) for x in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def writer_pid(gateway: GatewayProcess) -> int:
    """The writer process's pid (after a first call, which it has stored)."""
    assert gateway.proc is not None
    r = gateway.client.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "warm-up"}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    r.raise_for_status()
    gateway.span(r.headers["x-spanlab-span-id"])
    for pid in children(gateway.proc.pid):
        if b"gateway.writer.process" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("the gateway has no writer process")


def wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while running(pid):
        assert time.monotonic() < deadline, f"process {pid} still running after {timeout}s"
        time.sleep(0.05)
