"""A throwaway PostgreSQL server for the benchmarks: Debian's ``postgresql`` binaries,
``initdb`` in a temporary directory, listening on a free loopback port.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (``runuser``), which then owns the data directory. Durability settings are the
server's defaults unless the caller passes others (a benchmark says which it used).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.util import free_port


def pg_bin() -> Path | None:
    """The directory of ``initdb``/``pg_ctl`` (Debian keeps them out of PATH)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


class PostgresServer:
    """``with PostgresServer() as pg: pg.dsn``: a fresh cluster, stopped and removed at
    the end."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.settings = settings or {}
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="spanlab-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def version(self) -> str:
        """``postgres (PostgreSQL) 15.x``, from the server binary."""
        done = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True
        )
        return done.stdout.strip()

    def cpu_seconds(self) -> float:
        """CPU time of the server: the postmaster, its live processes (backends,
        writers) and those it has reaped."""
        import psutil  # the bench extra

        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        master = psutil.Process(pid)
        times = master.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in master.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:  # ended since listed: its time is the master's
                continue
            total += child_times.user + child_times.system
        return float(total)

    def create_database(self, name: str) -> str:
        """A new database on this server; its URL."""
        import asyncpg  # the bench extra

        async def create() -> None:
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def _run(self, *args: str | Path) -> None:
        command = [str(a) for a in args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            self.bindir / "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.root}"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            self.bindir / "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(self.bindir / "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        for _ in range(50):
            try:
                shutil.rmtree(self.root)
                return
            except OSError:
                time.sleep(0.1)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
