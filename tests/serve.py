"""The one way tests start a real ``spanlab serve``: `GatewayProcess`, a subprocess of
this checkout on a free loopback port with its own config, database and log.

The e2e fixtures (`start_gateway`, `gateway` in ``tests/e2e/conftest.py``), the browser
tests' `server` and the experiment and Anthropic e2e modules all start it through here.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
IN_FLIGHT_METRIC = "spanlab_in_flight_requests "


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for a child process of this checkout: none of the caller's
    ``SPANLAB_*`` settings or provider keys leak in, only ``env``."""
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SPANLAB_") and not k.endswith("_API_KEY")
    }
    out.update(env or {})
    out["PYTHONPATH"] = str(REPO_ROOT)
    out["PYTHONUNBUFFERED"] = "1"
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def to_toml(config: dict[str, Any]) -> str:
    """Enough TOML for a gateway config: scalars, then one level of nested tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, tables in config.items():
        if not isinstance(tables, dict):
            continue
        for name, table in tables.items():
            lines.append(f'\n[{section}."{name}"]')
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


class _PortTaken(Exception):
    pass


class GatewayProcess:
    """``python -m gateway serve`` on a free loopback port, its output in a log file."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any] | str,
        env: Mapping[str, str] | None = None,
        max_open_files: int | None = None,
        log_level: str | None = None,
        db: str | None = None,
    ) -> None:
        """``config`` is a dict (written as TOML) or the TOML text itself; ``log_level``
        is passed as ``--log-level`` (the config's own applies otherwise); ``db`` is
        passed as ``--db`` (a postgresql:// URL; default: spanlab.db in ``workdir``)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.max_open_files = max_open_files  # the process's ulimit -n, if set
        self.log_level = log_level
        self.workdir = workdir
        self.config_path = workdir / "spanlab.toml"
        text = config if isinstance(config, str) else to_toml(config)
        self.config_path.write_text(text, encoding="utf-8")
        self.db: Path | str = db or workdir / "spanlab.db"
        self.log_path = workdir / "gateway.log"
        self.env = dict(env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(timeout=10.0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url

    def __enter__(self) -> GatewayProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start (or restart, on the same database) and wait for /healthz."""
        for attempt in range(3):
            try:
                self._start()
                return
            except _PortTaken:
                # Another process took the free port before the gateway bound it.
                if attempt == 2:
                    raise

    def _start(self) -> None:
        self.port = free_port()
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = child_env(self.env)
        command = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(self.config_path),
            "--port",
            str(self.port),
            "--db",
            str(self.db),
        ]
        if self.log_level:
            command += ["--log-level", self.log_level]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit_files if self.max_open_files else None,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                self.proc = None
                if "address already in use" in self.log()[log_start:]:
                    raise _PortTaken()
                raise RuntimeError(f"gateway exited at start:\n{self.log()}")
            try:
                if self.client.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway did not answer /healthz:\n{self.log()}")
            time.sleep(0.05)

    def _limit_files(self) -> None:
        """In the child, before exec: its open-file limit, soft and hard."""
        assert self.max_open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    def open_files(self) -> int:
        """How many files the gateway process has open now (Linux)."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def terminate(self) -> None:
        """Send SIGTERM and return at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        """SIGTERM, then wait: the graceful shutdown under test. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        self.terminate()
        self.proc = None
        if proc.poll() is None:
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
        return proc.returncode

    def stop_gracefully(self) -> None:
        """SIGTERM and check the shutdown was the graceful one: the app's lifespan
        finished (the span writer drained) rather than the process being cut short."""
        code = self.stop()
        # uvicorn re-raises the signal it caught once it has shut down cleanly.
        assert code in (0, -signal.SIGTERM), f"exit code {code}:\n{self.log()}"
        log = self.log().rsplit("Waiting for application shutdown.", 1)
        assert len(log) == 2 and "Application shutdown complete." in log[1], self.log()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.client.close()

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """``python -m gateway ARGS`` as a real process, next to this gateway's database."""
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            env=child_env({**self.env, **env}),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # --- reading spans back ----------------------------------------------------------------

    def span(self, span_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """``GET /spans/{id}``, polled until the background writer has stored it."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.client.get(f"{self.base_url}/spans/{span_id}")
            if response.status_code == 200:
                data: dict[str, Any] = response.json()
                return data
            assert response.status_code == 404, response.text
            if time.monotonic() > deadline:
                raise AssertionError(f"span {span_id} was not stored within {timeout}s")
            time.sleep(0.02)

    def spans(self, **filters: str | int) -> list[dict[str, Any]]:
        """Every span matching ``filters`` (all pages of ``GET /spans``)."""
        items: list[dict[str, Any]] = []
        params: dict[str, str | int] = {**filters, "limit": 1000}
        while True:
            response = self.client.get(f"{self.base_url}/spans", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["data"]
            if not page["next_cursor"]:
                return items
            params["cursor"] = page["next_cursor"]

    def wait_spans(self, count: int, timeout: float = 10.0, **filters: str) -> list[dict[str, Any]]:
        """The spans matching ``filters`` once there are ``count`` of them (never more)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.spans(**filters)
            assert len(found) <= count, f"{len(found)} spans for {filters}, expected {count}"
            if len(found) == count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} spans for {filters} stored")
            time.sleep(0.02)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until the in-flight gauge is back to zero: no call left hanging."""
        deadline = time.monotonic() + timeout
        while True:
            metrics = self.client.get(f"{self.base_url}/metrics").text
            line = next(x for x in metrics.splitlines() if x.startswith(IN_FLIGHT_METRIC))
            if float(line.split()[-1]) == 0:
                return
            assert time.monotonic() < deadline, f"still in flight after {timeout}s: {line}"
            time.sleep(0.02)

    def detailed_spans(
        self, count: int = 1, timeout: float = 10.0, **filters: str
    ) -> list[dict[str, Any]]:
        """The stored spans matching ``filters``, each in detail (``GET /spans/{id}``),
        once at least ``count`` are in."""
        deadline = time.monotonic() + timeout
        while True:
            listed = self.spans(**filters)
            if len(listed) >= count:
                return [self.span(s["span_id"], timeout) for s in listed]
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} span(s) for {filters} not stored: {listed}")
            time.sleep(0.02)
