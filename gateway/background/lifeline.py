"""A child process that must not outlive its parent (a gateway's workers, its
background process): the kernel sends it SIGTERM when the parent dies, even by
SIGKILL, so no orphan keeps a port or runs cells nobody watches."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

__all__ = ["die_with"]

PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
