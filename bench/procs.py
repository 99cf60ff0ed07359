"""The benchmark's processes: mock upstream, gateways (`spanlab serve`), load generator."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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
# Where `spanlab serve` is imported from: this tree, or another checkout to compare
# builds in the same run conditions (``python -m bench --gateway-root DIR``).
GATEWAY_ROOT = ROOT


def _env(root: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root or ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
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

    def __init__(
        self,
        workdir: Path,
        name: str,
        upstream: MockUpstream,
        capture: bool,
        *,
        db: str | None = None,
        workers: int = 1,
        settings: str = "",
    ) -> None:
        """``db``: a database other than ``<name>.db`` in ``workdir`` (a postgresql://
        URL); ``workers``: ``spanlab serve --workers``; ``settings``: more top-level
        lines of its TOML config (e.g. ``admin_key = "..."``)."""
        self.name = name
        self.port = free_port()
        self.db = workdir / f"{name}.db"
        self.database = db or str(self.db)
        self.capture = capture
        self.requests_sent = 0
        config = workdir / f"{name}.toml"
        config.write_text(
            'log_level = "warning"\n'
            'default_provider = "mock"\n'
            f"capture = {'true' if capture else 'false'}\n"
            f"{settings.strip()}\n"
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
                self.database,
                # Only when asked: an older checkout (--gateway-root) may not know it.
                *(["--workers", str(workers)] if workers != 1 else []),
            ],
            env=_env(GATEWAY_ROOT),
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

    def tree_cpu_seconds(self) -> float:
        """CPU of the gateway and every process under it (workers, span writers)."""
        total = self.cpu_seconds()
        for child in self.ps.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += float(times.user + times.system)
        return total

    def stop(self) -> None:
        """Graceful stop: the writer drains its queue before the process exits."""
        _stop(self.proc)
        self.log.close()

    def spans_stored(self) -> int:
        if self.database.startswith(("postgresql://", "postgres://")):
            return postgres_spans(self.database)
        if not self.db.exists():
            return 0
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0])


def postgres_spans(url: str) -> int:
    """The spans a gateway stored in a PostgreSQL database."""
    import asyncpg  # the bench extra; only a PostgreSQL gateway needs it

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT COUNT(*) FROM spans"))
        finally:
            await conn.close()

    return asyncio.run(count())


NGINX_CONF = """\
# Generated by bench/procs.py: nginx as the reference reverse proxy (captures nothing).
# One worker, like the gateway's one event loop; keep-alive to the upstream; no
# buffering either way, so streams pass event by event.
{user}worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    upstream mock {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """Debian's nginx (``apt-get install nginx-light``), if installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


class Nginx:
    """nginx proxying every path to the mock: the third path of the benchmark, the
    physical reference for a reverse proxy (C, no capture)."""

    name = "nginx"

    def __init__(self, workdir: Path, upstream: MockUpstream, binary: str) -> None:
        self.port = free_port()
        self.requests_sent = 0
        prefix = workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        # As root, nginx's workers would switch to "nobody", who cannot write the
        # temporary directory the bench runs in.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(
                user=user, prefix=prefix, upstream_port=upstream.port, port=self.port
            ),
            encoding="utf-8",
        )
        self.log = (prefix / "stdout.log").open("w")
        self.proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _wait_http(f"http://127.0.0.1:{self.port}/_stats", self.proc)
        self.ps = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        """The master's and its workers' resident memory."""
        total = 0
        for proc in (self.ps, *self.ps.children()):
            try:
                total += int(proc.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        return total

    def cpu_seconds(self) -> float:
        """The master's and its workers' CPU time."""
        total = 0.0
        for proc in (self.ps, *self.ps.children()):
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RSSSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, gateway: Gateway | Nginx, interval: float = 0.05) -> None:
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
