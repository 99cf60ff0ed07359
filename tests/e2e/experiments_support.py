"""A real ``spanlab serve`` for the experiment end-to-end tests (its own process, its
own config and database), in front of the scripted upstream of
``tests/experiments_upstream.py``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.experiments_upstream import config_toml
from tests.serve import GatewayProcess

# The experiment tests' name for the one `spanlab serve` process of the suite.
Served = GatewayProcess


@contextmanager
def spanlab_serve(
    workdir: Path, upstream_url: str, *, api_key_env: str | None = None, **env: str
) -> Iterator[Served]:
    config = config_toml(upstream_url, api_key_env=api_key_env)
    with GatewayProcess(workdir, config, env, log_level="warning") as served:
        yield served
