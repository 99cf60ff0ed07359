"""Helpers of the store tests that run on both backends (the ``stores`` and
``db_setting`` fixtures of tests/conftest.py): the SQL database under the stores, and
what a test asks of a table in either dialect."""

from __future__ import annotations

from typing import Any, cast

import pytest

from gateway.store.database import Database
from gateway.store.sql import SQLDatabase
from tests.conftest import GatewayFactory


def sql_db(database: Database) -> SQLDatabase:
    """The stores' database as the SQL the management stores run on (either dialect)."""
    assert database.dialect in ("sqlite", "postgresql"), database
    return cast(SQLDatabase, database)


async def table_columns(db: SQLDatabase, table: str) -> list[str]:
    """A table's columns, in their order."""
    if db.dialect == "postgresql":
        rows = await db.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " AND table_schema = current_schema() ORDER BY ordinal_position",
            (table,),
        )
        return [r["column_name"] for r in rows]
    return [r["name"] for r in await db.fetch(f"PRAGMA table_info({table})")]


async def database_text(db: SQLDatabase) -> str:
    """Every row of every table of a PostgreSQL database, as text: what a canary test
    searches for a secret (on SQLite it reads the file's bytes)."""
    tables = await db.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    )
    out = []
    for table in tables:
        for row in await db.fetch(f'SELECT * FROM "{table[0]}"'):
            out.append(" ".join(str(value) for value in tuple(row)))
    return "\n".join(out)


@pytest.fixture(name="make_gateway")
def make_gateway_on_each_backend(make_gateway: GatewayFactory, db_setting: str) -> GatewayFactory:
    """`make_gateway` on SQLite, then on PostgreSQL: a test module that imports this
    fixture runs each of its in-process tests on both (a gateway given its own ``db``
    keeps it)."""

    def on_backend(*args: Any, **overrides: Any) -> Any:
        overrides.setdefault("db", db_setting)
        return make_gateway(*args, **overrides)

    return on_backend
