"""A child process that must not outlive its parent (a gateway's workers, its
background process): the kernel sends it SIGTERM when the parent dies, even by
SIGKILL, so no orphan keeps a port or runs cells nobody watches. And the rules both
parents follow when a child dies: its exit status for a failed start, the pauses
before starting it again."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

__all__ = [
    "FIRST_RESTART_DELAY_S",
    "MAX_RESTART_DELAY_S",
    "STARTUP_FAILURE",
    "STEADY_AFTER_S",
    "die_with",
]

PR_SET_PDEATHSIG = 1
# A child's exit status when its app failed to start (as uvicorn's lifespan failure):
# it is not started again, since the same failure would recur.
STARTUP_FAILURE = 3
# A child that died is started again after a pause doubling from the first to the
# largest; one that stayed up `STEADY_AFTER_S` had started: its pause starts over.
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
STEADY_AFTER_S = 60.0


def die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
