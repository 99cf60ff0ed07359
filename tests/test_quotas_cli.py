"""``spanlab keys create|update --rpm ...`` and ``spanlab projects create|update``:
limits set on the database, shown by ``list``, in force in a gateway started on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from click.testing import CliRunner

from gateway.cli.main import cli
from tests.conftest import GatewayFactory
from tests.quotas_helpers import clocked_gateway


def test_keys_and_projects_take_limits_on_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "spanlab.db")
    runner = CliRunner()
    r = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "ci-bot",
            "--scope",
            "proxy",
            "--rpm",
            "60",
            "--tokens-per-day",
            "100000",
            "--usd-per-day",
            "2.5",
            "--usd-per-month",
            "40",
            "--json",
            "--db",
            db,
        ],
    )
    assert r.exit_code == 0, r.output
    created = orjson.loads(r.stdout)
    assert created["limits"] == {
        "rpm": 60,
        "tokens_per_day": 100000,
        "usd_per_day": 2.5,
        "usd_per_month": 40.0,
    }
    r = runner.invoke(cli, ["keys", "update", created["prefix"], "--rpm", "0", "--db", db])
    assert r.exit_code == 0, r.output
    assert "100000 tokens/day, 2.5 USD/day, 40 USD/month" in r.output
    r = runner.invoke(cli, ["keys", "list", "--json", "--db", db])
    listed = orjson.loads(r.output)
    assert listed[0]["limits"]["rpm"] is None and listed[0]["limits"]["usd_per_day"] == 2.5
    bad = runner.invoke(cli, ["keys", "update", created["id"], "--rpm", "-3", "--db", db])
    assert bad.exit_code != 0 and "'rpm' must be 0 or more" in bad.output
    nothing = runner.invoke(cli, ["keys", "update", created["id"], "--db", db])
    assert nothing.exit_code != 0 and "Name a limit" in nothing.output

    r = runner.invoke(cli, ["projects", "create", "team-a", "--rpm", "5", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["projects", "update", "team-a", "--usd-per-month", "10", "--db", db])
    assert r.exit_code == 0 and "5 rpm, 10 USD/month" in r.output, r.output
    r = runner.invoke(cli, ["projects", "list", "--json", "--db", db])
    team = next(p for p in orjson.loads(r.output) if p["id"] == "team-a")
    assert team["limits"] == {
        "rpm": 5,
        "tokens_per_day": None,
        "usd_per_day": None,
        "usd_per_month": 10.0,
    }
    r = runner.invoke(cli, ["audit", "--json", "--type", "key.", "--db", db])
    assert [e["type"] for e in orjson.loads(r.output)] == ["key.updated", "key.created"]


async def test_a_limit_set_with_the_cli_holds_in_a_running_gateway(
    make_gateway: GatewayFactory,
) -> None:
    gw, _ = await clocked_gateway(make_gateway)
    db = gw.state.settings.db
    runner = CliRunner()
    args = ["keys", "create", "cli-key", "--scope", "proxy", "--rpm", "1", "--json", "--db", db]
    r = await asyncio.to_thread(runner.invoke, cli, args)  # its own event loop
    assert r.exit_code == 0, r.output
    key = orjson.loads(r.stdout)["key"]
    await gw.app.state.access.reload()  # what its periodic refresh does
    await gw.app.state.quotas.reload()
    headers = {"x-spanlab-key": key}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    statuses = [
        (await gw.client.post("/v1/chat/completions", json=chat, headers=headers)).status_code
        for _ in range(2)
    ]
    assert statuses == [200, 429]
