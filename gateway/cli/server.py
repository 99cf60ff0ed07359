"""The server `spanlab serve` runs: its uvicorn configuration (`gateway_config`), the
garbage collector's tuning (`tune_gc`), and what it does on SIGTERM/SIGINT before
uvicorn's graceful wait (`GatewayServer`).

uvicorn's shutdown stops accepting connections, then waits (up to
``shutdown_grace_s``) for every open connection to finish its response, and only then
runs the app's lifespan shutdown. A live ``GET /events`` stream (any open tab of the
web UI) never finishes by itself: it held every shutdown for the whole grace, then was
cancelled with a traceback in the log. `GatewayServer` ends those streams first, so
the wait is only for calls in progress.
"""

from __future__ import annotations

import gc
import logging
import math
import socket
import sys

import uvicorn
from starlette.applications import Starlette

from gateway.config import Settings
from gateway.http.server import ClientLimits, fit_to_file_limit, guarded_protocol
from gateway.state import AppState

__all__ = ["KEEPALIVE_TIMEOUT_S", "GatewayServer", "gateway_config", "tune_gc"]

logger = logging.getLogger(__name__)

# An idle kept-alive connection is closed after this many seconds (uvicorn's default,
# stated here because the protocol's deadlines leave idle time to it).
KEEPALIVE_TIMEOUT_S = 5


def gateway_config(settings: Settings, app: Starlette) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` as `spanlab serve` runs it (one process, or
    each worker of ``--workers``)."""
    limits = ClientLimits(
        max_connections=fit_to_file_limit(settings.max_client_connections),
        header_timeout=settings.client_header_timeout,
        body_timeout=settings.client_body_timeout,
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # The access log would print query strings, which may hold keys.
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_grace_s)),
        server_header=False,
        # Named rather than "auto": both are dependencies, and a silent fallback to
        # the pure-Python loop or parser would cost a good part of the throughput. The
        # protocol is uvicorn's httptools one, sending a response in one write, with
        # deadlines for slow clients and a connection limit (gateway/http/server.py;
        # uvicorn's own limit_concurrency stays off: slow connections would hold it).
        loop="asyncio" if sys.platform == "win32" else "uvloop",
        http=guarded_protocol(limits),
        timeout_keep_alive=KEEPALIVE_TIMEOUT_S,
        # Nothing here reads the client address or scheme, so X-Forwarded-* rewriting
        # (a middleware around every request) has nothing to do.
        proxy_headers=False,
    )


GC_YOUNG_THRESHOLD = 100_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running server.

    A proxied call allocates hundreds of objects (uvicorn, the client, the span),
    so the default thresholds ran a young collection several times per call and a
    full one, over every object of the process, every few dozen calls: about a
    quarter of the gateway's CPU per call in process. Everything loaded at start is
    frozen out of the collector's view, and collections run less often; reference
    counting still frees all non-cyclic garbage at once.

    A young collection walks every object made since the last one that is still
    alive, and under load that is mostly the state of the calls in flight: at 256
    calls in flight one ran every ~600 calls, found nothing to free, and held the
    loop (every call) for 5-15 ms of CPU, ~10 us per call on average. Its threshold
    is ten times that of a quiet server's needs (as the writer process's is), so it
    runs about ten times less often; cyclic garbage (a failed call's traceback)
    still goes at the next one, at most ~100,000 objects later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


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
