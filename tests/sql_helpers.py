"""Helpers of the store tests that run on both backends (the ``stores`` and
``db_setting`` fixtures of tests/conftest.py): the SQL database under the stores, and
what a test asks of a table in either dialect."""

from __future__ import annotations

from typing import cast

from gateway.store.database import Database
from gateway.store.sql import SQLDatabase


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
