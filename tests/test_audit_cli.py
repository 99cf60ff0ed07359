"""``spanlab audit`` (through the gateway in process, as the other API commands) and
the audit log's retention (``audit_retention_days``, applied by ``spanlab prune`` and
by a running gateway)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from click.testing import CliRunner

from gateway.access.policy import AccessPolicy
from gateway.access.store import AccessStore
from gateway.cli.main import cli
from gateway.config import Settings
from gateway.store.events import EventRecord
from gateway.store.stores import sqlite_stores

OLD = "2001-01-01T00:00:00.000000Z"


def add_event(db: str, event: EventRecord) -> None:
    async def main() -> None:
        stores = sqlite_stores(db)
        await stores.open()
        try:
            await stores.events.append(event)
        finally:
            await stores.close()

    asyncio.run(main())


def test_spanlab_audit_lists_filters_and_limits(tmp_path: Path) -> None:
    db = str(tmp_path / "spanlab.db")
    runner = CliRunner()
    add_event(db, EventRecord(type="key.created", at=OLD, subject_id="k1", payload={"actor": "x"}))
    for name in ("first", "second", "third"):
        r = runner.invoke(cli, ["datasets", "create", name, "--db", db])
        assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["audit", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    entries = orjson.loads(r.output)
    assert [e["type"] for e in entries] == ["dataset.created"] * 3 + ["key.created"]
    assert [e["payload"]["name"] for e in entries[:3]] == ["third", "second", "first"]
    assert {e["payload"]["actor"] for e in entries[:3]} == {"local"}
    r = runner.invoke(cli, ["audit", "--db", db, "--json", "--type", "key."])
    assert [e["subject_id"] for e in orjson.loads(r.output)] == ["k1"]
    r = runner.invoke(cli, ["audit", "--db", db, "--json", "--since", "1h"])
    assert len(orjson.loads(r.output)) == 3  # the 2001 entry is older than an hour
    r = runner.invoke(cli, ["audit", "--db", db, "--json", "--limit", "2"])
    assert [e["payload"]["name"] for e in orjson.loads(r.output)] == ["third", "second"]
    r = runner.invoke(cli, ["audit", "--db", db])
    assert r.exit_code == 0, r.output
    assert "dataset.created" in r.output and "name=third" in r.output and "local" in r.output
    r = runner.invoke(cli, ["audit", "--db", db, "--type", "nothing.like.this"])
    assert r.exit_code == 0 and "No audit entries." in r.output
    r = runner.invoke(cli, ["audit", "--db", db, "--since", "not a time"])
    assert r.exit_code != 0 and "since" in r.output


def test_prune_applies_the_audit_retention(tmp_path: Path) -> None:
    db = str(tmp_path / "spanlab.db")
    runner = CliRunner()
    add_event(db, EventRecord(type="key.created", at=OLD, payload={"actor": "x"}))
    r = runner.invoke(cli, ["datasets", "create", "kept", "--db", db])
    assert r.exit_code == 0, r.output
    # Without the setting, prune leaves the log alone.
    r = runner.invoke(cli, ["prune", "--older-than", "30d", "--db", db])
    assert r.exit_code == 0 and "audit" not in r.output, r.output
    r = runner.invoke(cli, ["audit", "--db", db, "--json"])
    assert len(orjson.loads(r.output)) == 2
    r = runner.invoke(
        cli,
        ["prune", "--older-than", "30d", "--db", db],
        env={"SPANLAB_AUDIT_RETENTION_DAYS": "30"},
    )
    assert r.exit_code == 0, r.output
    assert "deleted 1 audit entry older than 30 day(s)" in r.output
    r = runner.invoke(cli, ["audit", "--db", db, "--json"])
    assert [e["type"] for e in orjson.loads(r.output)] == ["dataset.created"]


async def test_a_running_gateway_applies_the_retention_hourly(tmp_path: Path) -> None:
    stores = sqlite_stores(str(tmp_path / "spanlab.db"))
    await stores.open()
    try:
        await stores.events.append(EventRecord(type="key.created", at=OLD))
        await stores.events.append(EventRecord(type="key.created", at="2999-01-01T00:00:00Z"))
        policy = AccessPolicy(Settings().with_overrides(audit_retention_days=7.0))
        policy.store = AccessStore(stores.database)  # type: ignore[arg-type]
        assert await policy.apply_retention() == 1
        await stores.events.append(EventRecord(type="key.created", at=OLD))
        assert await policy.apply_retention() == 0  # not again within the hour
        kept = await stores.events.list_events()
        assert [e.at for e in kept] == ["2999-01-01T00:00:00Z", OLD]
        off = AccessPolicy(Settings())
        off.store = AccessStore(stores.database)  # type: ignore[arg-type]
        assert await off.apply_retention() == 0  # 0 days: kept
    finally:
        await stores.close()


def test_keys_and_projects_changed_with_the_cli_are_audited(tmp_path: Path) -> None:
    db = str(tmp_path / "spanlab.db")
    runner = CliRunner()
    r = runner.invoke(cli, ["projects", "create", "team-a", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["projects", "rename", "team-a", "Team A", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["keys", "create", "ci", "--scope", "read", "--json", "--db", db])
    assert r.exit_code == 0, r.output
    created = orjson.loads(r.stdout)
    r = runner.invoke(cli, ["keys", "revoke", created["id"], "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["audit", "--db", db, "--json"])
    entries = orjson.loads(r.output)
    assert [(e["type"], e["subject_id"]) for e in entries] == [
        ("key.revoked", created["id"]),
        ("key.created", created["id"]),
        ("project.renamed", "team-a"),
        ("project.created", "team-a"),
    ]
    assert {e["payload"]["actor"] for e in entries} == {"cli"}
    assert entries[1]["payload"]["scopes"] == ["read"]
    dumped = r.output
    assert created["key"] not in dumped and created["key"].split("_", 2)[2] not in dumped
