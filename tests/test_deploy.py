"""The deployment example (docs/deploy/compose.yaml) and the Dockerfile: the compose
file is valid for Docker Compose, names only settings that exist, and the image has
what it needs (the PostgreSQL driver, the OTLP exporter)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ENV_PREFIX, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docs" / "deploy" / "compose.yaml"


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded["services"]


def test_every_spanlab_variable_in_the_compose_file_is_a_setting() -> None:
    known = {s.env_var for s in SETTINGS}
    gateways = {name: s for name, s in services().items() if name.startswith("gateway")}
    assert len(gateways) == 2
    for name, service in gateways.items():
        env = service["environment"]
        named = {k for k in env if k.startswith(ENV_PREFIX)}
        assert named - known == set(), name
        assert env["SPANLAB_DATABASE_URL"].startswith("postgresql://")
        assert "postgres" in service["depends_on"]


def test_the_image_has_the_postgresql_driver_and_the_otlp_exporter() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '".[postgres,otlp]"' in dockerfile and '"spanlab[postgres,otlp]"' in dockerfile


def test_docker_compose_accepts_the_file() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed (.ci/run installs it)")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = {**os.environ, "POSTGRES_PASSWORD": "pw", "SPANLAB_ADMIN_KEY": "k" * 32}
    ok = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    # Without the secrets it refuses rather than running with empty ones.
    env.pop("POSTGRES_PASSWORD")
    refused = subprocess.run(
        [compose, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD" in refused.stderr
