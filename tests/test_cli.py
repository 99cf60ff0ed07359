"""The command line, through click's CliRunner."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from click.testing import CliRunner, Result

from gateway.cli import server as server_module
from gateway.cli.main import cli
from gateway.config import example_toml
from tests.conftest import GatewayFactory


class ThreadedRunner:
    """CliRunner.invoke off the event loop: the CLI runs its own asyncio.run."""

    async def invoke(self, *args: Any, **kwargs: Any) -> Result:
        return await asyncio.to_thread(CliRunner().invoke, *args, **kwargs)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2+2?"}]}


async def populate(make_gateway: GatewayFactory) -> tuple[str, list[str]]:
    gw = await make_gateway()
    ids = []
    for i in range(3):
        r = await gw.client.post(
            "/v1/chat/completions", json=CHAT, headers={"x-thread-id": f"t{i % 2}"}
        )
        ids.append(r.headers["x-spanlab-span-id"])
    await gw.flush()
    return gw.state.settings.db, ids


async def test_spans_list_and_show(make_gateway: GatewayFactory) -> None:
    db, ids = await populate(make_gateway)
    runner = ThreadedRunner()
    result = await runner.invoke(cli, ["spans", "list", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    listed = orjson.loads(result.output)
    assert [s["span_id"] for s in listed] == ids[::-1]

    result = await runner.invoke(cli, ["spans", "list", "--db", db, "--thread", "t0", "--json"])
    assert {s["span_id"] for s in orjson.loads(result.output)} == {ids[0], ids[2]}

    result = await runner.invoke(cli, ["spans", "list", "--db", db])
    assert result.exit_code == 0
    assert ids[0] in result.output and "What is 2+2?" in result.output

    result = await runner.invoke(cli, ["spans", "show", ids[1], "--db", db, "--json"])
    assert result.exit_code == 0
    span = orjson.loads(result.output)
    assert span["output_text"] == "Hello there!"
    assert span["request"] == CHAT

    result = await runner.invoke(cli, ["spans", "show", ids[1], "--db", db])
    assert result.exit_code == 0
    assert "Hello there!" in result.output and "gpt-4o-mini" in result.output


def test_errors_exit_non_zero_with_a_message(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["spans", "list", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "No database" in result.output

    db = str(tmp_path / "x.db")
    assert runner.invoke(cli, ["migrate", "--db", db]).exit_code == 0
    result = runner.invoke(cli, ["spans", "show", "ffffffffffffffff", "--db", db])
    assert result.exit_code == 1
    assert "No span" in result.output

    bad = tmp_path / "bad.toml"
    bad.write_text("port = 'x'")
    result = runner.invoke(cli, ["spans", "list", "--config", str(bad)])
    assert result.exit_code == 1
    assert "port" in result.output

    result = runner.invoke(cli, ["spans", "list", "--db", db, "--limit", "0"])
    assert result.exit_code == 2


def test_migrate_creates_and_reports(tmp_path: Path) -> None:
    db = tmp_path / "new" / "spanlab.db"
    result = CliRunner().invoke(cli, ["migrate", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "0001_spans" in result.output
    assert db.exists()


def test_config_example_and_show(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["config", "example"])
    assert result.output == example_toml()
    result = runner.invoke(
        cli,
        ["config", "show"],
        env={"SPANLAB_PORT": "9123", "OPENAI_API_KEY": "sk-should-not-show"},
    )
    assert result.exit_code == 0
    shown = orjson.loads(result.output)
    assert shown["port"] == 9123
    assert shown["providers"]["openai"]["api_key_set"] is True
    assert "sk-should-not-show" not in result.output


async def test_prune_deletes_only_older_spans(make_gateway: GatewayFactory) -> None:
    db, ids = await populate(make_gateway)
    import sqlite3

    conn = sqlite3.connect(db)
    # Age the first span by 40 days.
    conn.execute(
        "UPDATE spans SET start_us = start_us - 40 * 86400 * 1000000 WHERE span_id = ?", (ids[0],)
    )
    conn.commit()
    conn.close()
    runner = ThreadedRunner()
    result = await runner.invoke(cli, ["prune", "--older-than", "30d", "--db", db, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would delete 1 span" in result.output
    result = await runner.invoke(cli, ["prune", "--older-than", "30d", "--db", db])
    assert "deleted 1 span" in result.output
    result = await runner.invoke(cli, ["spans", "list", "--db", db, "--json"])
    assert {s["span_id"] for s in orjson.loads(result.output)} == set(ids[1:])
    result = await runner.invoke(cli, ["prune", "--older-than", "soon", "--db", db])
    assert result.exit_code == 2
    assert "duration" in result.output


class NoServer:
    """Stands in for uvicorn.Server.run: serve's start-up runs, nothing listens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hosts: list[str] = []

        def run(server: uvicorn.Server) -> None:
            self.hosts.append(server.config.host)
            server.started = True

        monkeypatch.setattr(uvicorn.Server, "run", run)
        # serve freezes the collector for a server's life: not for the test process
        monkeypatch.setattr(server_module, "tune_gc", lambda: None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", ""])
def test_serve_on_a_non_loopback_address_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    server = NoServer(monkeypatch)
    # Without keys it now refuses (tests/test_access_serve.py); told to, it runs and warns.
    with caplog.at_level(logging.WARNING, logger="gateway"):
        result = CliRunner().invoke(
            cli,
            ["serve", "--insecure-no-auth", "--host", host, "--db", str(tmp_path / "s.db")],
        )
    assert result.exit_code == 0, result.output
    assert server.hosts == [host]
    warning = result.stderr
    assert "WARNING" in warning and "not only on loopback" in warning
    assert "provider keys" in warning and "every captured trace" in warning
    assert "--host 127.0.0.1" in warning and "authenticat" in warning
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no authentication" in message for message in logged), logged


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_serve_on_loopback_does_not_warn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    server = NoServer(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="gateway"):
        result = CliRunner().invoke(
            cli, ["serve", "--host", host, "--port", "8080", "--db", str(tmp_path / "s.db")]
        )
    assert result.exit_code == 0, result.output
    assert server.hosts == [host]
    assert "loopback" not in result.stderr
    assert not [r for r in caplog.records if "no authentication" in r.getMessage()]


def test_config_show_hides_base_url_credentials() -> None:
    result = CliRunner().invoke(
        cli,
        ["config", "show"],
        env={"SPANLAB_PROVIDERS__OPENAI__BASE_URL": "https://spanlab:pw-hidden@llm.test/v1"},
    )
    assert result.exit_code == 0, result.output
    assert "pw-hidden" not in result.output
    shown = orjson.loads(result.output)
    assert shown["providers"]["openai"]["base_url"] == "https://[REDACTED]@llm.test/v1"


def test_serve_with_workers_needs_a_database_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "--db", ":memory:"])
    assert result.exit_code == 1
    assert "--workers needs a database file" in result.output


def test_serve_refuses_a_worker_count_out_of_range() -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output
