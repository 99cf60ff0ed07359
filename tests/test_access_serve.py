"""`spanlab serve`'s policy: bound to a non-loopback address it refuses to start with
no key configured, unless --insecure-no-auth (then it warns, and the UI shows a
banner); with keys it starts. On loopback nothing changes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from tests.access_helpers import ADMIN_KEY
from tests.conftest import GatewayFactory
from tests.test_cli import NoServer


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_a_public_bind_without_keys_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str
) -> None:
    server = NoServer(monkeypatch)
    result = CliRunner().invoke(cli, ["serve", "--host", host, "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 1
    assert "Refusing to listen" in result.output and "--insecure-no-auth" in result.output
    assert server.hosts == []


def test_a_public_bind_with_keys_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "s.db")
    server = NoServer(monkeypatch)
    made = CliRunner().invoke(cli, ["keys", "create", "ops", "--scope", "admin", "--db", db])
    assert made.exit_code == 0, made.output
    with caplog.at_level(logging.WARNING, logger="gateway"):
        result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--db", db])
    assert result.exit_code == 0, result.output
    assert server.hosts == ["0.0.0.0"]
    assert "allowed_hosts" in result.stderr  # the Host names are not known: say so
    # With allowed_hosts, and the admin key from the environment (no key in the db):
    other = str(tmp_path / "t.db")
    result = CliRunner().invoke(
        cli,
        ["serve", "--host", "0.0.0.0", "--db", other],
        env={"SPANLAB_ADMIN_KEY": ADMIN_KEY, "SPANLAB_ALLOWED_HOSTS": "spanlab.example"},
    )
    assert result.exit_code == 0, result.output
    assert "WARNING" not in result.stderr
    # A revoked key does not count.
    key = made.stdout.strip()
    assert CliRunner().invoke(cli, ["keys", "revoke", key[:16], "--db", db]).exit_code == 0
    again = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--db", db])
    assert again.exit_code == 1


async def test_an_insecure_gateway_says_so(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(insecure_no_auth=True, host="0.0.0.0")
    session = (await gw.client.get("/session")).json()
    assert session == {"auth": False, "insecure": True, "principal": None}
    assert (await gw.client.get("/spans")).status_code == 200
