"""Keys and projects in the store and on the command line: a key is shown once,
stored only as its hash (canary: the key is nowhere in the database file), listed by
its prefix, revoked; projects are rows with a default one (on SQLite and on
PostgreSQL: the ``stores`` fixture)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from gateway.access.keys import KEY_MARK, hash_key, key_id_of, parse_scopes
from gateway.access.store import AccessStore
from gateway.cli.main import cli
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.store.database import SQLiteDatabase
from gateway.store.sql import IntegrityError
from gateway.store.stores import Stores, stores_for
from tests.sql_helpers import database_text, sql_db


def database_bytes(db: Path) -> bytes:
    """The database file and its WAL, as stored on disk."""
    return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())


async def test_a_key_is_stored_only_as_its_hash(tmp_path: Path) -> None:
    db_path = tmp_path / "spanlab.db"
    db = SQLiteDatabase(str(db_path))
    await db.open()
    try:
        store = AccessStore(db)
        record, key = await store.create_key("ci", ["proxy", "read"])
        assert key.startswith(KEY_MARK) and len(key) > 50
        assert key_id_of(key) == record.id
        assert record.prefix == f"slk_{record.id}" and key.startswith(record.prefix + "_")
        rows = await db.fetch("SELECT * FROM access_keys")
        assert [row["hash"] for row in rows] == [hashlib.sha256(key.encode()).hexdigest()]
        for row in rows:
            assert all(key not in str(value) for value in tuple(row))
        secret = key.split("_", 2)[2]  # the random part whole (it may hold "_")
        listed = orjson.dumps([k.as_dict() for k in await store.list_keys()])
        assert secret.encode() not in listed and b"hash" not in listed
    finally:
        await db.close()
    stored = database_bytes(db_path)
    assert key.encode() not in stored and secret.encode() not in stored  # the canary
    assert hash_key(key).encode() in stored


async def test_projects_are_rows_with_a_default(stores: Stores) -> None:
    db = sql_db(stores.database)
    store = AccessStore(db)
    assert [p.id for p in await store.list_projects()] == ["default"]
    # Listed, but not a row until named (NULL means it): existing rows unchanged.
    assert await db.fetch("SELECT id FROM projects") == []
    await store.create_key("default bot", ["proxy"], project_id="default")
    assert [r["id"] for r in await db.fetch("SELECT id FROM projects")] == ["default"]
    with pytest.raises(InvalidRequest):
        await store.create_project("default")
    await store.create_project("team-a", "Team A")
    with pytest.raises(Conflict, match="exists"):
        await store.create_project("team-a", "Again")
    record, _ = await store.create_key("bot", ["proxy"], project_id="team-a")
    assert record.project_id == "team-a"
    projects = {p.id: p for p in await store.list_projects()}
    assert projects["team-a"].name == "Team A" and projects["team-a"].keys == 1
    assert projects["default"].keys == 1
    with pytest.raises(NotFound):
        await store.create_key("bot", ["proxy"], project_id="nope")
    # Reads and edits are fenced to the key's project; admin is the gateway's.
    reader, _ = await store.create_key("bot", ["read", "write"], project_id="team-a")
    assert reader.scopes == ("read", "write")
    with pytest.raises(InvalidRequest, match="not admin"):
        await store.create_key("bot", ["admin"], project_id="team-a")
    with pytest.raises(InvalidRequest, match="unknown scope"):
        await store.create_key("bot", ["root"])
    # The datasets' foreign key on projects(id) holds: an unknown project is
    # refused by the database.
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO datasets (id, name, project_id, created_at, updated_at)"
                " VALUES ('d1', 'n', 'missing', 'x', 'x')"
            )
    [row] = await db.fetch("SELECT name, created_at FROM projects WHERE id = 'team-a'")
    assert row["name"] == "Team A" and row["created_at"].endswith("Z")


def test_parse_scopes() -> None:
    assert parse_scopes("write, proxy") == ("proxy", "write")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes("")


def test_keys_and_projects_on_the_command_line(db_setting: str) -> None:
    runner = CliRunner()
    db = db_setting  # a SQLite file not there yet (a key may be the first thing made), or PG
    made = runner.invoke(cli, ["keys", "create", "ci", "--scope", "read", "--db", db, "--json"])
    assert made.exit_code == 0, made.output
    created = orjson.loads(made.stdout)
    key = created["key"]
    assert created["scopes"] == ["read"] and key.startswith("slk_")

    listed = runner.invoke(cli, ["keys", "list", "--db", db, "--json"])
    assert listed.exit_code == 0
    assert key not in listed.output
    assert [k["prefix"] for k in orjson.loads(listed.stdout)] == [created["prefix"]]
    table = runner.invoke(cli, ["keys", "list", "--db", db])
    assert created["prefix"] in table.output and "active" in table.output

    revoked = runner.invoke(cli, ["keys", "revoke", created["prefix"], "--db", db])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert runner.invoke(cli, ["keys", "list", "--db", db, "--json"]).stdout.strip() == "[]"
    after = orjson.loads(runner.invoke(cli, ["keys", "list", "--all", "--db", db, "--json"]).stdout)
    assert after[0]["revoked_at"] is not None and after[0]["active"] is False

    assert runner.invoke(cli, ["projects", "create", "team-a", "--db", db]).exit_code == 0
    again = runner.invoke(cli, ["projects", "create", "team-a", "--db", db])
    assert again.exit_code == 1 and "exists" in again.output
    assert runner.invoke(cli, ["projects", "rename", "team-a", "Team A", "--db", db]).exit_code == 0
    projects = orjson.loads(runner.invoke(cli, ["projects", "list", "--db", db, "--json"]).stdout)
    assert [(p["id"], p["name"]) for p in projects] == [
        ("default", "Default project"),
        ("team-a", "Team A"),
    ]
    plain = runner.invoke(cli, ["keys", "create", "p", "--scope", "proxy", "--db", db])
    assert plain.exit_code == 0 and plain.stdout.startswith("slk_")
    assert "cannot be shown again" in plain.stderr
    bad = runner.invoke(
        cli, ["keys", "create", "x", "--scope", "admin", "--project", "team-a", "--db", db]
    )
    assert bad.exit_code == 1 and "not admin" in bad.output
    assert runner.invoke(cli, ["keys", "revoke", "slk_ffffffffffff", "--db", db]).exit_code == 1
    if db.startswith("postgresql://"):
        stored = asyncio.run(all_rows(db)).encode()
    else:
        stored = database_bytes(Path(db))
    assert hash_key(key).encode() in stored and key.encode() not in stored


async def all_rows(url: str) -> str:
    stores = stores_for(url)
    await stores.open()
    try:
        return await database_text(sql_db(stores.database))
    finally:
        await stores.close()


def test_config_show_does_not_print_the_admin_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["config", "show"], env={"SPANLAB_ADMIN_KEY": "canary-admin-key-0123456789abcdef"}
    )
    assert result.exit_code == 0, result.output
    assert "canary-admin-key" not in result.output
    assert orjson.loads(result.stdout)["admin_key"] == "(set)"


def test_commands_on_the_database_need_no_key(tmp_path: Path) -> None:
    """Keys on (a key in the database) do not lock out the commands that run the
    gateway in process on the database file."""
    runner = CliRunner()
    db = str(tmp_path / "spanlab.db")
    made = runner.invoke(cli, ["keys", "create", "ops", "--scope", "admin", "--db", db])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli, ["experiments", "list", "--db", db, "--json"])
    assert listed.exit_code == 0, listed.output
    datasets = runner.invoke(cli, ["datasets", "list", "--db", db, "--json"])
    assert datasets.exit_code == 0, datasets.output
