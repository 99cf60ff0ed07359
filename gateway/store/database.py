"""The database: connections, transactions and migrations, under the stores.

`Database` is what every dialect provides to the rest of the gateway (open, close,
migrate, ping, compact, and the file a separate writer process may store spans
into). `SQLiteDatabase` implements it with two aiosqlite connections: one writer
(management writes, and spans when the span writer runs in the gateway's process)
and one reader. On a database file the spans are stored by the writer process
(`gateway.writer.process`) on its own connection; SQLite serializes its transactions
with this connection's (WAL, ``BEGIN IMMEDIATE``, a 5 s busy timeout on both sides).

The stores (`gateway.store.spans`, `gateway.store.experiments`) sit on a database by
composition: a SQLite store takes a `SQLiteDatabase` and uses its connections and
its one write transaction. A PostgreSQL database and its stores fill the same seams.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from gateway.store.migrations import available_migrations
from gateway.store.sqlite_stats import reset_rollup

logger = logging.getLogger(__name__)


class Database(ABC):
    """What the gateway needs of a database, whatever its dialect."""

    dialect: str

    @abstractmethod
    async def open(self) -> None:
        """Connect, and apply the migrations still pending."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""

    @abstractmethod
    async def applied_migrations(self) -> list[str]: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the database does not answer."""

    @abstractmethod
    async def compact(self) -> None:
        """Give the space of deleted rows back (after a prune)."""

    @property
    @abstractmethod
    def file_path(self) -> str | None:
        """The database file a writer process can open and store spans into, or None
        (an in-memory database, or a server database): then spans are stored in the
        gateway's process through the span store."""


def _ensure_parent(path: str) -> None:
    Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # Every write transaction holds this: the writer connection is shared by the
        # span writer and management writes, and two interleaved BEGINs would merge.
        self._write_lock = asyncio.Lock()

    @property
    def file_path(self) -> str | None:
        return None if self.path == ":memory:" else self.path

    # --- connections ---------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    async def open(self) -> None:
        if self.path != ":memory:":
            await asyncio.to_thread(_ensure_parent, self.path)
        self._writer = await self._connect()
        mode = await (await self._writer.execute("PRAGMA journal_mode = WAL")).fetchone()
        if mode is not None and mode[0] != "wal" and self.path != ":memory:":
            logger.warning("SQLite refused WAL mode (got %s); concurrent reads may wait", mode[0])
        await self.migrate()
        self._reader = await self._connect() if self.path != ":memory:" else self._writer

    async def close(self) -> None:
        for conn in {id(c): c for c in (self._reader, self._writer) if c is not None}.values():
            await conn.close()
        self._reader = self._writer = None

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("database is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("database is not open")
        return self._reader

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a query on the reader connection."""
        return list(await self.reader.execute_fetchall(sql, params))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection, committed or rolled back
        whole; the end is shielded so a cancelled caller cannot leave it open."""
        async with self._write_lock:
            conn = self.writer
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # SQLite rolls back by itself on some errors (a full disk): a ROLLBACK
                # then fails ("no transaction is active") and would hide the real error.
                with anyio.CancelScope(shield=True):
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                await conn.execute("COMMIT")

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    async def compact(self) -> None:
        async with self._write_lock:
            await self.writer.execute("VACUUM")
        # VACUUM may renumber the rowids of a table without an INTEGER PRIMARY KEY, as
        # the spans': the rollup's watermark (a rowid) means nothing after it. The
        # rollup starts again; the writer folds every span in anew.
        async with self.transaction() as conn:
            await reset_rollup(conn)

    # --- migrations ----------------------------------------------------------------

    async def migrate(self) -> list[str]:
        conn = self.writer
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
        done = {row[0] for row in rows}
        applied = []
        for migration in available_migrations(self.dialect):
            if migration.version in done:
                continue
            stamp = datetime.now(UTC).isoformat()
            script = (
                "BEGIN;\n"
                + migration.sql
                + f"\n;INSERT INTO schema_migrations VALUES ({migration.version},"
                + f" '{migration.name}', '{stamp}');"
                + "\nCOMMIT;"
            )
            try:
                await conn.executescript(script)
            except sqlite3.Error:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise
            applied.append(migration.label)
            logger.info("applied migration %s", migration.label)
        return applied

    async def applied_migrations(self) -> list[str]:
        rows = await self.writer.execute_fetchall(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        )
        return [f"{r[0]:04d}_{r[1]}" for r in rows]
