"""`UnixRelay`: live events between the workers of one ``spanlab serve --workers``.

Each worker binds a Unix datagram socket ``events-<n>.sock`` in the run directory the
supervisor made (only its user may enter it) and sends to the others' (worker numbers
1..count). Datagrams keep message boundaries and never block: a peer whose buffer is
full, or not started yet, misses those events (counted in ``dropped``), as a slow
``/events`` listener does within one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.fanout.relay import Relay, encode_events

logger = logging.getLogger(__name__)

# Largest datagram sent (the socket buffers are sized above it); a bigger event is sent
# as a reference to its span, or dropped if it is no span.
MAX_DATAGRAM = 192 * 1024
SOCKET_BUFFER = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """A gateway's place among the workers of ``spanlab serve --workers``: its number
    (1..count) and the supervisor's run directory (relay sockets, shared metrics)."""

    index: int
    count: int
    run_dir: str


def socket_path(run_dir: str, worker: int) -> str:
    return str(Path(run_dir) / f"events-{worker}.sock")


class UnixRelay(Relay):
    def __init__(self, role: WorkerRole) -> None:
        super().__init__()
        self.path = socket_path(role.run_dir, role.index)
        others = (n for n in range(1, role.count + 1) if n != role.index)
        self.peers = [socket_path(role.run_dir, n) for n in others]
        self._sock: socket.socket | None = None

    async def open(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by this worker's predecessor
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        sock.setblocking(False)
        sock.bind(self.path)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    async def shut(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def transmit(self, message: dict[str, Any]) -> None:
        self._to_peers(orjson.dumps(message), 0)

    def send_events(self, events: list[dict[str, Any]]) -> None:
        if not self.peers_listening:
            return
        for message, count in encode_events(self.origin, events, MAX_DATAGRAM):
            self._to_peers(message, count)

    def _to_peers(self, data: bytes, events: int) -> None:
        if self._sock is None:
            return
        for peer in self.peers:
            try:
                self._sock.sendto(data, peer)
            except (BlockingIOError, FileNotFoundError, ConnectionRefusedError):
                self.dropped += events  # a full buffer, or a peer not (yet) there
            except OSError as exc:
                self.dropped += events
                logger.warning("relaying live events to %s failed: %s", peer, exc)

    def _readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data = sock.recv(MAX_DATAGRAM + 1024)
            except BlockingIOError:
                return
            except OSError as exc:
                logger.warning("reading relayed live events failed: %s", exc)
                return
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(message, dict):
                self.received(message)
