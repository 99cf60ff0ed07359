"""The old home of the loopback fake upstream: it lives in `tests.upstream.server` now.
Kept so that ``from tests.e2e.mock_upstream import MockUpstream`` goes on working."""

from __future__ import annotations

from tests.upstream.server import *  # noqa: F403
from tests.upstream.server import _stream_bomb  # noqa: F401  (tests/e2e/test_response_limits.py)
