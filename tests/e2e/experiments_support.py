"""A real ``spanlab serve`` for the experiment end-to-end tests (its own process, its
own config and database), in front of the scripted upstream of
``tests/experiments_upstream.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.experiments_upstream import config_toml, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0


def child_env(**extra: str) -> dict[str, str]:
    """An environment for a child process of this checkout, without SPANLAB_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLAB_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


@dataclass
class Served:
    url: str
    db: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes]

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """``python -m gateway ARGS`` as a real process."""
        return subprocess.run(
            [sys.executable, "-m", "gateway", *args],
            env=child_env(**env),
            cwd=self.db.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@contextmanager
def spanlab_serve(
    workdir: Path, upstream_url: str, *, api_key_env: str | None = None, **env: str
) -> Iterator[Served]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "spanlab.toml"
    config.write_text(config_toml(upstream_url, api_key_env=api_key_env), encoding="utf-8")
    db = workdir / "spanlab.db"
    log = workdir / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
                "--db",
                str(db),
                "--log-level",
                "warning",
            ],
            env=child_env(**env),
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(url, db, config, log, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if served.process.poll() is not None:
                raise RuntimeError(f"spanlab serve exited: {log.read_text()}")
            try:
                if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"spanlab serve did not start: {log.read_text()}")
            time.sleep(0.05)
        yield served
    finally:
        served.process.terminate()
        try:
            served.process.wait(20)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(5)
