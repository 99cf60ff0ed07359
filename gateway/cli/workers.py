"""``spanlab serve --workers N``: N gateway processes on one listening socket, under a
supervisor.

The supervisor (the process ``spanlab serve`` started) brings the database up to date
once and stores every spill file a shutdown left, binds the socket, then starts the
workers with multiprocessing's *spawn* (a fresh interpreter each: nothing is inherited
but the settings and the socket). Each worker is a whole gateway (app, span writer
process, upstream connections); the kernel hands each accepted connection to one of
the workers waiting on the socket. Calls are independent, so nothing else is shared
but the database, what `gateway.fanout` relays between them (live events), and the
metrics files `/metrics` sums (prometheus_client's multiprocess mode). Worker 1 also
starts the background process matrix cells run in (`gateway.background`), the relay's
last peer.

Signals: the workers run in process groups of their own, so a Ctrl-C at a terminal
reaches the supervisor alone, which sends each worker a single SIGTERM (a second one
would make uvicorn cut the calls in progress). A worker that dies is started again
after a pause that doubles from 1 s to 30 s; one that fails its startup (exit status
`STARTUP_FAILURE`, as uvicorn's lifespan failure) stops them all, since the same
failure would recur. When the supervisor dies, even by SIGKILL, the kernel sends each
worker SIGTERM (``PR_SET_PDEATHSIG``), so no orphan keeps the port.

May import: `gateway.app`, `gateway.background`, `gateway.cli.server`, `gateway.config`,
`gateway.fanout`, `gateway.metrics`, `gateway.store`, `gateway.writer.spill`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import FrameType

from gateway.background.lifeline import (
    FIRST_RESTART_DELAY_S,
    MAX_RESTART_DELAY_S,
    STARTUP_FAILURE,
    STEADY_AFTER_S,
    die_with,
)
from gateway.config import Settings
from gateway.fanout.unix import WorkerRole
from gateway.metrics import MULTIPROCESS_DIR_ENV, forget_process
from gateway.store.stores import stores_for
from gateway.writer.spill import replay_spill, spill_path_for, spill_paths_for

__all__ = ["STARTUP_FAILURE", "run_workers"]

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [worker {index}] %(name)s: %(message)s"


@dataclass(slots=True)
class Worker:
    index: int
    process: BaseProcess
    started_at: float
    delay: float = FIRST_RESTART_DELAY_S
    restart_at: float | None = None  # dead, to be started again then


@dataclass(slots=True)
class Supervisor:
    settings: Settings
    count: int
    sock: socket.socket
    run_dir: str
    stop: threading.Event = field(default_factory=threading.Event)
    workers: list[Worker] = field(default_factory=list)
    failed: bool = False

    @property
    def peers(self) -> int:
        """Processes on the relay: the workers, and the background process worker 1
        starts (it is the last peer)."""
        return self.count + int(self.settings.background_process)

    def spawn(self, index: int) -> BaseProcess:
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=worker_main,
            args=(
                self.settings,
                self.sock,
                WorkerRole(index, self.peers, self.run_dir),
                os.getpid(),
            ),
            name=f"spanlab-worker-{index}",
        )
        process.start()
        logger.info("worker %d started (pid %s)", index, process.pid)
        return process

    def start(self) -> None:
        now = time.monotonic()
        self.workers = [Worker(i, self.spawn(i), now) for i in range(1, self.count + 1)]

    def watch(self) -> None:
        """One look at the workers: restart the dead, or stop on a startup failure."""
        now = time.monotonic()
        for worker in self.workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    worker.process = self.spawn(worker.index)
                    worker.started_at, worker.restart_at = now, None
                continue
            if worker.process.is_alive():
                continue
            code = worker.process.exitcode
            if worker.process.pid is not None:
                forget_process(worker.process.pid)  # its gauges (in flight...) end
            if code == STARTUP_FAILURE:
                logger.error("worker %d failed to start; stopping every worker", worker.index)
                self.failed = True
                self.stop.set()
                return
            if now - worker.started_at >= STEADY_AFTER_S:
                worker.delay = FIRST_RESTART_DELAY_S
            logger.error(
                "worker %d (pid %s) exited with status %s; starting it again in %.0f s",
                worker.index,
                worker.process.pid,
                code,
                worker.delay,
            )
            worker.restart_at = now + worker.delay
            worker.delay = min(worker.delay * 2, MAX_RESTART_DELAY_S)

    def shut_down(self) -> None:
        """One SIGTERM each, then wait for their graceful shutdown (calls in progress,
        the span writer's drain); whoever outlives that is killed."""
        alive = [w.process for w in self.workers if w.restart_at is None and w.process.is_alive()]
        for process in alive:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        deadline += self.settings.shutdown_drain_s + 15.0
        for process in alive:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()


def run_workers(settings: Settings, count: int) -> int:
    """Serve with ``count`` worker processes until SIGTERM/SIGINT; the exit status."""
    if settings.database == ":memory:":
        raise ValueError("--workers needs a database file (each worker has its own memory)")
    asyncio.run(prepare_database(settings))
    sock = bind_socket(settings.host, settings.port)
    # Only this user may enter it: it holds the relay sockets and the metrics files.
    run_dir = tempfile.mkdtemp(prefix="spanlab-workers-")
    metrics_dir = os.path.join(run_dir, "metrics")
    os.mkdir(metrics_dir)
    # Read by prometheus_client when a worker imports it: every worker's counters go to
    # files there, and /metrics on any worker sums them all.
    os.environ[MULTIPROCESS_DIR_ENV] = metrics_dir
    supervisor = Supervisor(settings, count, sock, run_dir)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    supervisor.start()
    try:
        while not supervisor.stop.wait(0.25):
            supervisor.watch()
    finally:
        supervisor.shut_down()
        sock.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if supervisor.failed else 0


async def prepare_database(settings: Settings) -> None:
    """Apply the pending migrations, and store what any shutdown spilled, once, before
    the workers start (they would otherwise race each other to both)."""
    stores = stores_for(settings.database, settings.database_pool_size)
    await stores.open()
    try:
        database = stores.database
        spill = settings.spill_file or spill_path_for(database.file_path, database.dialect)
        for path in spill_paths_for(spill):
            await replay_spill(stores.spans, path)
    finally:
        await stores.close()


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on (as uvicorn binds its own)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def worker_main(settings: Settings, sock: socket.socket, role: WorkerRole, parent: int) -> None:
    """A worker: one gateway serving on the supervisor's socket."""
    os.setpgrp()  # a terminal's Ctrl-C goes to the supervisor, which tells us once
    die_with(parent)
    logging.basicConfig(
        level=settings.log_level.upper(), format=LOG_FORMAT.format(index=role.index), force=True
    )
    from gateway.app import create_app
    from gateway.background.process import BackgroundProcess
    from gateway.cli.server import GatewayServer, gateway_config, tune_gc

    # Worker 1 runs the matrix cells' background process (another when it restarts).
    background = None
    if settings.background_process and role.index == 1:
        last = WorkerRole(role.count, role.count, role.run_dir)
        background = BackgroundProcess(settings, last)
    app = create_app(settings, worker=role, background=background)
    server = GatewayServer(gateway_config(settings, app))
    tune_gc()
    server.run(sockets=[sock])
    sys.exit(0 if server.started else STARTUP_FAILURE)
