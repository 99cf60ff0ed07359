"""The benchmark's processes: mock upstream, gateways (`spanlab serve`), load generator."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench.util import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode} before listening")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def _stop(proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class MockUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.mock_upstream", "--port", str(self.port)],
            env=_env(),
            cwd=ROOT,
        )
        _wait_http(f"http://127.0.0.1:{self.port}/_stats", self.proc)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats", timeout=5) as r:
            data: dict[str, int] = json.loads(r.read())
            return data

    def stop(self) -> None:
        _stop(self.proc)


class Gateway:
    """`spanlab serve` (as ``python -m gateway serve``) routing every model to the mock."""

    def __init__(self, workdir: Path, name: str, upstream: MockUpstream, capture: bool) -> None:
        self.name = name
        self.port = free_port()
        self.db = workdir / f"{name}.db"
        self.capture = capture
        self.requests_sent = 0
        config = workdir / f"{name}.toml"
        config.write_text(
            'log_level = "warning"\n'
            'default_provider = "mock"\n'
            f"capture = {'true' if capture else 'false'}\n"
            "[providers.mock]\n"
            'kind = "openai"\n'
            f'base_url = "{upstream.base_url}"\n',
            encoding="utf-8",
        )
        self.log = (workdir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
                "--db",
                str(self.db),
            ],
            env=_env(),
            cwd=workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _wait_http(f"http://127.0.0.1:{self.port}/healthz", self.proc)
        self.ps = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        """Graceful stop: the writer drains its queue before the process exits."""
        _stop(self.proc)
        self.log.close()

    def spans_stored(self) -> int:
        if not self.db.exists():
            return 0
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0])


class RSSSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, gateway: Gateway, interval: float = 0.05) -> None:
        self.gateway = gateway
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.gateway.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.gateway.rss())


class LoadGenerator:
    """The load generator worker process; `run(job)` sends one job and waits for it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"],
            env=_env(),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError("load generator did not start")

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("load generator died")
        result: dict[str, Any] = json.loads(line)
        if "failed" in result:
            raise RuntimeError(f"load generator job {job['kind']} failed: {result['failed']}")
        return result

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
