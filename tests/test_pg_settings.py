"""Selecting PostgreSQL: a postgresql:// URL in ``db`` (``--db``, ``SPANLAB_DB``) or in
``database_url`` picks the PostgreSQL stores; a SQLite path stays SQLite."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.store.database import SQLiteDatabase
from gateway.store.postgres import PostgresDatabase
from gateway.store.postgres_spans import PostgresSpanStore
from gateway.store.sqlite import SQLiteSpanStore
from gateway.store.stores import stores_for

URL = "postgresql://spanlab:secret@db.example:5432/spanlab"


def test_a_url_in_db_or_database_url_selects_postgresql() -> None:
    assert Settings.from_mapping({"db": URL}).database == URL
    assert Settings.from_mapping({"db": "x.db", "database_url": URL}).database == URL
    assert Settings.from_mapping({"db": "x.db"}).database == "x.db"
    stores = stores_for(URL, pool_size=3)
    assert isinstance(stores.database, PostgresDatabase)
    assert stores.database.pool_size == 3
    assert isinstance(stores.spans, PostgresSpanStore)
    assert stores.database.file_path is None
    sqlite = stores_for("x.db")
    assert isinstance(sqlite.database, SQLiteDatabase)
    assert isinstance(sqlite.spans, SQLiteSpanStore)


def test_the_environment_selects_postgresql() -> None:
    settings = Settings.load(None, env={"SPANLAB_DB": URL, "SPANLAB_DATABASE_POOL_SIZE": "4"})
    assert settings.database == URL
    assert settings.database_pool_size == 4


def test_a_database_url_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ConfigError, match="database_url"):
        Settings.from_mapping({"database_url": "mysql://x@y/z"})
    with pytest.raises(ConfigError, match="database_pool_size"):
        Settings.from_mapping({"database_pool_size": 0})


def test_config_show_never_shows_the_database_password() -> None:
    runner = CliRunner()
    for env in ({"SPANLAB_DB": URL}, {"SPANLAB_DATABASE_URL": URL}):
        result = runner.invoke(cli, ["config", "show"], env=env)
        assert result.exit_code == 0, result.output
        assert "secret" not in result.output
        assert "postgresql://spanlab:***@db.example:5432/spanlab" in result.output
