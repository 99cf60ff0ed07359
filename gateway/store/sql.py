"""What a store needs of a SQL database, whichever the dialect: typing Protocols that
`SQLiteDatabase` (aiosqlite) and `PostgresDatabase` (asyncpg) both satisfy, so one store
implementation can run on either.

Statements are written once, with ``?`` placeholders (SQLite's); the PostgreSQL side
translates them to ``$1..$n`` (`gateway.store.postgres.numbered`). Rows, whichever the
driver (`sqlite3.Row`, `asyncpg.Record`), give ``row["col"]``, ``row[0]`` and
``row.keys()``. Where the SQL itself differs, `gateway.store.dialect` has the fragment.

A constraint violation (a unique index, a foreign key, a CHECK) is `IntegrityError` on
both: SQLite's own class, and on PostgreSQL `PostgresIntegrityError`, a subclass the
adapter raises in place of asyncpg's. A store catches ``IntegrityError`` from here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from itertools import count
from typing import TYPE_CHECKING, Any, Protocol

# The one class a store catches for a constraint violation, on either dialect.
IntegrityError = sqlite3.IntegrityError


class SQLRow(Protocol):
    """A row by column name or position (`sqlite3.Row`, `asyncpg.Record`)."""

    def keys(self) -> Any: ...

    def __getitem__(self, key: Any, /) -> Any: ...


class SQLCursor(Protocol):
    """What ``execute`` returns: how many rows it changed, and its rows."""

    @property
    def rowcount(self) -> int: ...

    async def fetchone(self) -> Any: ...

    async def fetchall(self) -> Iterable[Any]: ...


class SQLConnection(Protocol):
    """What a transaction yields (`aiosqlite.Connection` fits as it is)."""

    async def execute(self, sql: str, parameters: Any = None, /) -> Any: ...

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]], /) -> Any: ...

    async def execute_fetchall(self, sql: str, parameters: Any = None, /) -> Iterable[Any]: ...


class SQLDatabase(Protocol):
    """A database as the stores use it: its dialect ("sqlite", "postgresql"), reads,
    and one write transaction at a time (committed whole, or rolled back)."""

    dialect: str

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


async def fetch_all(conn: SQLConnection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Rows of ``sql`` inside a transaction, on either dialect."""
    return list(await conn.execute_fetchall(sql, params))


_savepoints = count(1)


@asynccontextmanager
async def savepoint(conn: SQLConnection) -> AsyncIterator[None]:
    """A part of a transaction that can fail alone: on an error inside, only its
    statements are undone and the error propagates; the transaction goes on. Needed on
    PostgreSQL to catch an `IntegrityError` and carry on (an error there aborts the
    whole transaction); the same SQL on SQLite."""
    name = f"sp_{next(_savepoints)}"
    await conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        await conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
        await conn.execute(f"RELEASE SAVEPOINT {name}")
        raise
    await conn.execute(f"RELEASE SAVEPOINT {name}")


if TYPE_CHECKING:  # mypy checks that both dialects fit the Protocols above
    import aiosqlite

    from gateway.store.database import SQLiteDatabase
    from gateway.store.postgres import PostgresConnection, PostgresDatabase

    def _both_fit(
        sqlite: SQLiteDatabase,
        postgres: PostgresDatabase,
        sqlite_conn: aiosqlite.Connection,
        postgres_conn: PostgresConnection,
    ) -> tuple[SQLDatabase, SQLDatabase, SQLConnection, SQLConnection]:
        return sqlite, postgres, sqlite_conn, postgres_conn
