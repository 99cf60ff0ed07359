"""The Anthropic dialect of the fake upstream lives in `tests.upstream.anthropic`; kept
so that the old imports go on working."""

from __future__ import annotations

from tests.upstream.anthropic import *  # noqa: F403
from tests.upstream.anthropic import SpanlabProcess  # noqa: F401
