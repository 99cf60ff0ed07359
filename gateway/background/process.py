"""`BackgroundProcess`: the gateway's side of its background process (start it, watch
it, start it again when it dies, stop it with the gateway), and `background_main`,
the process itself: a gateway app run without an HTTP server, at idle CPU priority.

The two are peers of one relay (`gateway.fanout`): the gateway's "a run started" and
"cancel it" reach the background process at once, its events (cells, scores, their
spans) reach the gateway's ``/events`` listeners. Its metrics come through a pipe, a
snapshot every `METRICS_EVERY_S`, and ``/metrics`` adds them to the gateway's own
(under ``--workers`` every process writes to the shared metrics files instead).

It starts on first need (the first matrix run a gateway starts: a gateway nobody
runs experiments on never pays for a second process), then stays. While it is down
(between a death and its restart, or for good after a failed start) the gateway runs
the cells itself, as before it existed: a run never waits for a process that is not
coming.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import orjson
import uvloop
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.background.lifeline import (
    FIRST_RESTART_DELAY_S,
    MAX_RESTART_DELAY_S,
    STARTUP_FAILURE,
    STEADY_AFTER_S,
    die_with,
)
from gateway.config import Settings
from gateway.fanout.unix import WorkerRole
from gateway.metrics import Metrics, PeerSnapshot, forget_process

__all__ = ["BackgroundProcess", "background_main", "lower_priority"]

logger = logging.getLogger(__name__)

WATCH_S = 0.5
METRICS_EVERY_S = 1.0
READ_SIZE = 1 << 16
FRAME_HEADER = 4
LOG_FORMAT = "%(asctime)s %(levelname)s [background] %(name)s: %(message)s"


class BackgroundProcess:
    """One background process for a gateway (the one process of `spanlab serve`, or
    worker 1 of ``--workers``). ``role``: its place among the relay's peers;
    ``gateway_role``: the gateway's, when the gateway has none of its own (one
    process: the pair then has a run directory of its own, removed at stop)."""

    def __init__(
        self,
        settings: Settings,
        role: WorkerRole,
        gateway_role: WorkerRole | None = None,
        own_run_dir: bool = False,
    ) -> None:
        self.settings = settings
        self.role = role
        self.gateway_role = gateway_role
        self._own_run_dir = own_run_dir
        self._process: BaseProcess | None = None
        self._pipe: Connection | None = None
        self._buffer = bytearray()  # what was read of the next snapshot
        self._metrics: Metrics | None = None
        self._watch: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._delay = FIRST_RESTART_DELAY_S
        self._wanted = False  # the gateway has started (`start`)
        self._failed = False  # its start failed: not tried again

    @classmethod
    def beside_one_gateway(cls, settings: Settings) -> BackgroundProcess:
        """For `spanlab serve` with one process: the pair's relay in a new directory
        only this user may enter."""
        run_dir = tempfile.mkdtemp(prefix="spanlab-")
        return cls(settings, WorkerRole(2, 2, run_dir), WorkerRole(1, 2, run_dir), True)

    def available(self) -> bool:
        """Whether it runs the cells of shared runs now: started the first time it is
        asked (in the gateway's event loop), not while it is down."""
        if self._wanted and self._watch is None and not self._failed:
            self._spawn()
            self._watch = asyncio.get_running_loop().create_task(self._keep_up())
        return self._process is not None and self._process.is_alive()

    def start(self, metrics: Metrics) -> None:
        """The gateway is up (its database ready): from now on it may be started."""
        self._metrics = metrics
        self._wanted = True

    async def stop(self) -> None:
        """Stop it as the gateway stops: one SIGTERM (its runs' cells in flight end
        interrupted, its writer drains), killed if it outlives the grace."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        process, self._process = self._process, None
        if process is not None and process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
            grace = self.settings.shutdown_grace_s + self.settings.shutdown_drain_s + 15.0
            await asyncio.to_thread(process.join, grace)
            if process.is_alive():
                logger.error("the background process did not stop in time; killing it")
                process.kill()
                await asyncio.to_thread(process.join)
        self._close_pipe()
        if self._own_run_dir:
            shutil.rmtree(self.role.run_dir, ignore_errors=True)

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=background_main,
            args=(self.settings, self.role, os.getpid(), writer),
            name="spanlab-background",
        )
        process.start()
        writer.close()  # the child's end; ours reads
        self._close_pipe()
        self._pipe = reader
        asyncio.get_running_loop().add_reader(reader.fileno(), self._read_metrics)
        self._process, self._started_at = process, time.monotonic()
        logger.info("background process started (pid %s): matrix cells run there", process.pid)

    def _read_metrics(self) -> None:
        """Read what the pipe has (the event loop made it non-blocking: a snapshot may
        come in several reads) and take each whole snapshot, framed as
        `Connection.send_bytes` frames them (a 4-byte big-endian length)."""
        pipe = self._pipe
        if pipe is None:
            return
        try:
            data = os.read(pipe.fileno(), READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # it exited: its last figures stay until the next one's
            self._close_pipe()
            return
        buffer = self._buffer
        buffer += data
        while len(buffer) >= FRAME_HEADER:
            size = int.from_bytes(buffer[:FRAME_HEADER], "big", signed=True)
            if len(buffer) < FRAME_HEADER + size:
                break
            snapshot = orjson.loads(bytes(buffer[FRAME_HEADER : FRAME_HEADER + size]))
            del buffer[: FRAME_HEADER + size]
            if self._metrics is not None:
                self._metrics.peer_snapshot = snapshot

    def _close_pipe(self) -> None:
        pipe, self._pipe = self._pipe, None
        self._buffer.clear()
        if pipe is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(pipe.fileno())
            pipe.close()

    async def _keep_up(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            process = self._process
            if process is None or process.is_alive():
                continue
            if process.pid is not None:
                forget_process(process.pid)  # its live gauges, with shared metrics
            if process.exitcode == STARTUP_FAILURE:
                logger.error(
                    "the background process failed to start (see its log above); matrix"
                    " cells run in the gateway's process"
                )
                self._process, self._failed = None, True
                return
            if time.monotonic() - self._started_at >= STEADY_AFTER_S:
                self._delay = FIRST_RESTART_DELAY_S
            logger.error(
                "the background process (pid %s) exited with status %s; the gateway runs"
                " matrix cells until it is started again in %.0f s",
                process.pid,
                process.exitcode,
                self._delay,
            )
            self._process = None
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, MAX_RESTART_DELAY_S)
            self._spawn()


def lower_priority() -> str:
    """Put this process (and the writer process it starts) at the kernel's idle
    priority: it gets the CPU when no normal process wants it, and a proxied call that
    wakes up preempts it. Where that is refused, the lowest nice value."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (AttributeError, OSError):
        pass
    try:
        os.nice(19 - os.nice(0))
        return "nice 19"
    except OSError:
        return "unchanged"


def background_main(settings: Settings, role: WorkerRole, parent: int, pipe: Connection) -> None:
    """The background process: a gateway app without an HTTP server until SIGTERM."""
    os.setpgrp()  # a terminal's Ctrl-C goes to the gateway, which stops us once
    die_with(parent)
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, force=True)
    logger.info("CPU priority: %s", lower_priority())
    app = create_app(settings, worker=role, headless=True)
    started = asyncio.Event()
    try:
        uvloop.run(_run(app, pipe, started))
    except Exception:
        if started.is_set():
            raise  # died after starting: the gateway starts it again
        logger.exception("the background process failed to start")
        raise SystemExit(STARTUP_FAILURE) from None


async def _run(app: Starlette, pipe: Connection, started: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with app.router.lifespan_context(app):
        started.set()
        # What startup made stays: the collector's young generation is what cells make.
        gc.freeze()
        metrics: Metrics = app.state.spanlab.metrics
        sending = None
        if metrics.shared_dir is None:  # under --workers the shared files carry them
            sending = loop.create_task(_send_metrics(metrics, pipe))
        await stop.wait()
        if sending is not None:
            sending.cancel()


async def _send_metrics(metrics: Metrics, pipe: Connection) -> None:
    while True:
        snapshot: PeerSnapshot = metrics.snapshot()
        try:
            pipe.send_bytes(orjson.dumps(snapshot))
        except OSError:  # the gateway is gone; SIGTERM follows
            return
        await asyncio.sleep(METRICS_EVERY_S)
