"""What `spanlab serve` does on SIGTERM/SIGINT before uvicorn's graceful wait.

uvicorn's shutdown stops accepting connections, then waits (up to
``shutdown_grace_s``) for every open connection to finish its response, and only then
runs the app's lifespan shutdown. A live ``GET /events`` stream (any open tab of the
web UI) never finishes by itself: it held every shutdown for the whole grace, then was
cancelled with a traceback in the log. `GatewayServer` ends those streams first, so
the wait is only for calls in progress.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
from starlette.applications import Starlette

from gateway.state import AppState

__all__ = ["GatewayServer"]

logger = logging.getLogger(__name__)


class GatewayServer(uvicorn.Server):
    """uvicorn's server, ending the app's live event streams as shutdown begins."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        state: AppState | None = None
        if isinstance(app, Starlette):
            state = getattr(app.state, "spanlab", None)
        if state is not None:  # None: the app never started
            if state.events.listeners:
                logger.info("closing %d live event stream(s)", state.events.listeners)
            state.events.close()
        await super().shutdown(sockets)
