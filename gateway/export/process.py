"""The export process: OTLP export beside the span writer, under a GIL of its own.

Mapping a row to a GenAI span, building the SDK's span and encoding the protobuf cost
about as much CPU as the writer spends storing the span; in the writer's process that
work took the GIL from the thread preparing rows and halved the writer's throughput
under load (README, Performance). So the writer only hands committed rows over:
`ExportPipe.offer` appends them to a bounded queue (what does not fit is dropped and
counted), and a sender thread `marshal`s them (a few microseconds a span) down a pipe
to this process, which runs the `SpanExporter` (`gateway.export.otlp`).

The protocol: frames of a 4-byte little-endian length and a payload. Writer -> export
process: a marshalled list of rows. Export process -> writer: marshalled counts
``(exported, dropped, failed)`` since the last frame. The process ends when its input
does (the writer closed it, or died): it exports what it holds, within
`CLOSE_WITHIN_S`, and exits. It ignores SIGINT and SIGTERM, like the writer.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from gateway.export.otlp import CLOSE_WITHIN_S, ExportConfig, SpanExporter, StatsCallback

logger = logging.getLogger(__name__)

LENGTH = struct.Struct("<I")
SEND_ROWS = 512  # rows per frame to the export process
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(LENGTH.size)
    if len(head) < LENGTH.size:
        return None
    (length,) = LENGTH.unpack(head)
    payload = stream.read(length)
    return payload if len(payload) == length else None


class ExportPipe:
    """The writer's side: a bounded queue, the export process, and two threads (one
    sends rows, one reads the counts back)."""

    def __init__(self, config: ExportConfig, on_stats: StatsCallback) -> None:
        self.config = config
        self.on_stats = on_stats
        self._queue: deque[Sequence[Sequence[Any]]] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._closing = False
        self._broken = False
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH")) if p)
        level = logging.getLevelName(logging.getLogger("gateway").getEffectiveLevel())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from gateway.export.process import main; main(sys.argv[1:])",
                config.to_json(),
                level if isinstance(level, str) else "INFO",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # terminal signals are not its business: its input is
        )
        self._sender = threading.Thread(target=self._send_loop, name="spanlab-otlp-send")
        self._reader = threading.Thread(target=self._read_loop, name="spanlab-otlp-counts")
        self._sender.daemon = self._reader.daemon = True
        self._sender.start()
        self._reader.start()

    def offer(self, rows: Sequence[Sequence[Any]]) -> None:
        """Queue committed rows; what does not fit is dropped (counted). Never blocks
        beyond a lock held for a few list operations."""
        dropped = 0
        with self._lock:
            room = self.config.queue_max - self._queued
            if room < len(rows):
                dropped = len(rows) - max(room, 0)
                rows = rows[: max(room, 0)]
            if rows:
                self._queue.append(rows)
                self._queued += len(rows)
                self._ready.notify()
        if dropped:
            self._count(0, dropped, 0)

    def close(self, within: float = CLOSE_WITHIN_S + 1.0) -> None:
        """Send what is queued, let the process export it (within ``within`` seconds),
        then stop it."""
        with self._lock:
            self._closing = True
            self._ready.notify()
        self._sender.join(within)
        try:
            self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(1.0)

    def _count(self, exported: int, dropped: int, failed: int) -> None:
        try:
            self.on_stats(exported, dropped, failed)
        except Exception:
            logger.debug("reporting export counts failed", exc_info=True)

    def _send_loop(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._closing:
                        self._ready.wait()
                    if not self._queue:
                        return
                    batch: list[Sequence[Any]] = []
                    while self._queue and len(batch) < SEND_ROWS:
                        batch.extend(self._queue.popleft())
                    self._queued -= len(batch)
                if self._broken:
                    self._count(0, 0, len(batch))
                    continue
                try:
                    data = marshal.dumps(batch)
                except ValueError:  # not a row of plain values: not expected, not fatal
                    self._count(0, 0, len(batch))
                    continue
                try:
                    stdin.write(LENGTH.pack(len(data)) + data)
                    stdin.flush()
                except OSError:
                    self._broken = True
                    self._count(0, 0, len(batch))
                    logger.error(
                        "the OTLP export process ended (code %s); spans are no longer exported",
                        self.proc.poll(),
                    )
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _read_loop(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        while (payload := _read_frame(stdout)) is not None:
            self._count(*marshal.loads(payload))


def main(argv: Sequence[str]) -> None:
    config = ExportConfig.from_json(argv[0])
    logging.basicConfig(
        level=argv[1] if len(argv) > 1 else "INFO",
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print must not corrupt the frames
    lock = threading.Lock()

    def report(exported: int, dropped: int, failed: int) -> None:
        data = marshal.dumps((exported, dropped, failed))
        with lock, contextlib.suppress(OSError):
            out.write(LENGTH.pack(len(data)) + data)

    exporter = SpanExporter(config, report)
    stdin = os.fdopen(os.dup(0), "rb")
    try:
        while (payload := _read_frame(stdin)) is not None:
            exporter.offer(marshal.loads(payload))
    finally:
        exporter.close()


if __name__ == "__main__":
    main(sys.argv[1:])
