"""The database on PostgreSQL: `PostgresDatabase`, on an asyncpg connection pool.

It fills the seams `SQLiteDatabase` fills (`gateway.store.sql`): ``fetch`` for reads
(any pooled connection) and ``transaction()`` for writes, which yields a
`PostgresConnection`: aiosqlite's connection interface (``execute`` -> a cursor with
``rowcount``/``fetchone``/``fetchall``, ``executemany``, ``execute_fetchall``) over one
pooled connection inside a PostgreSQL transaction. So a store's statements, written
once with ``?`` placeholders, run on either; `numbered` turns them into PostgreSQL's
``$1..$n`` (once per distinct statement: an lru_cache).

Unlike SQLite's one writer connection, several transactions run at once here (one per
pooled connection): PostgreSQL isolates them (READ COMMITTED), and a store that reads
then writes what it read must lock the rows (``SELECT ... FOR UPDATE``) or write in one
statement, as on any server database.

Errors at the edge: a constraint violation is raised as `PostgresIntegrityError`, a
`gateway.store.sql.IntegrityError` (SQLite's class), so the stores catch one class on
both. After any error inside a transaction PostgreSQL refuses further statements in it
until it ends: a store that catches an error to carry on wraps the statement in
`gateway.store.sql.savepoint` (portable).

asyncpg is the ``postgres`` extra: imported when a PostgreSQL database is opened.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from gateway.store.database import Database
from gateway.store.migrations import available_migrations
from gateway.store.sql import IntegrityError

if TYPE_CHECKING:
    import asyncpg

logger = logging.getLogger(__name__)

# The advisory lock `migrate` holds: several gateway processes starting together on
# one database apply each migration once (the others wait, then find it applied).
MIGRATION_LOCK_KEY = 0x5350414E4C4142  # "SPANLAB"
DEFAULT_POOL_SIZE = 10


class PostgresIntegrityError(IntegrityError):
    """A PostgreSQL constraint violation (unique, foreign key, check, not null), as the
    stores catch it on SQLite too. ``constraint``: the violated constraint's name."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class PostgresDataError(ValueError):
    """A value PostgreSQL refuses (its error class 22: a number out of range, text it
    cannot take), as a ValueError: what asyncpg's own encoders raise for a value they
    cannot send."""


def is_postgres_url(value: str) -> bool:
    """Whether a database setting names a PostgreSQL server rather than a SQLite file."""
    return value.startswith(("postgresql://", "postgres://"))


def redacted_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=4096)
def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered ``$1, $2, ...`` (PostgreSQL's), left
    alone inside quoted literals and identifiers ('...', "...") and comments."""
    if "?" not in sql:
        return sql
    out: list[str] = []
    n = 0
    i = 0
    length = len(sql)
    while i < length:
        ch = sql[i]
        if ch in ("'", '"'):
            # A quoted literal or identifier; a doubled quote inside is an escaped one.
            end = i + 1
            while end < length:
                if sql[end] == ch:
                    if end + 1 < length and sql[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = length if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _numeric(text: str) -> int | float:
    """PostgreSQL's NUMERIC (what SUM of a BIGINT and AVG of an integer give) as
    SQLite's values are: an int when whole, else a float (never a Decimal, which the
    JSON encoder and the stores' arithmetic do not take)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _rowcount(status: str) -> int:
    """The rows a command changed, from its status ("INSERT 0 3", "UPDATE 2")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


def _params(parameters: Any) -> Sequence[Any]:
    if parameters is None:
        return ()
    if isinstance(parameters, Sequence):
        return parameters
    return tuple(parameters)


class PostgresCursor:
    """What `PostgresConnection.execute` returns: the rows (a statement that returns
    none has none) and how many rows it changed or returned."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid: int | None = None  # SQLite's; on PostgreSQL use RETURNING

    async def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[Any]:
        return list(self._rows)


@functools.lru_cache(maxsize=4096)
def _returns_rows(sql: str) -> bool:
    """Whether a statement gives rows back (else its status: how many it changed)."""
    head = sql.lstrip()[:10].upper()
    return head.startswith(("SELECT", "WITH", "VALUES", "SHOW")) or "RETURNING" in sql.upper()


class PostgresConnection:
    """One pooled connection inside a transaction, with aiosqlite's interface."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    async def execute(self, sql: str, parameters: Any = None) -> PostgresCursor:
        query = numbered(sql)
        args = _params(parameters)
        async with translated():
            if _returns_rows(sql):
                rows = await self.raw.fetch(query, *args)
                return PostgresCursor(rows, len(rows))
            status = await self.raw.execute(query, *args)
        return PostgresCursor([], _rowcount(status))

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> None:
        batch = [tuple(p) for p in parameters]
        if not batch:
            return
        async with translated():
            await self.raw.executemany(numbered(sql), batch)

    async def execute_fetchall(self, sql: str, parameters: Any = None) -> list[Any]:
        async with translated():
            rows: list[Any] = await self.raw.fetch(numbered(sql), *_params(parameters))
        return rows


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """asyncpg's errors as the gateway's where the stores rely on them."""
    import asyncpg

    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise PostgresIntegrityError(str(exc), getattr(exc, "constraint_name", None)) from exc
    except asyncpg.DataError as exc:
        raise PostgresDataError(str(exc)) from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "numeric", encoder=str, decoder=_numeric, schema="pg_catalog", format="text"
    )


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.pool_size = max(1, pool_size)
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"PostgresDatabase({redacted_url(self.url)!r})"

    @property
    def file_path(self) -> str | None:
        return None  # a server: spans are stored in the gateway's process (the store)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    async def connect(self) -> None:
        """The pool, without migrating (`open` migrates too)."""
        if self._pool is not None:
            return
        try:
            import asyncpg
        except ImportError as exc:  # pragma: no cover - the extra is in the test deps
            raise RuntimeError(
                "PostgreSQL needs the asyncpg driver: pip install 'spanlab[postgres]'"
            ) from exc
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            init=_init_connection,
        )

    async def open(self) -> None:
        await self.connect()
        await self.migrate()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a query, on any pooled connection (outside a write transaction)."""
        async with translated():
            rows: list[Any] = await self.pool.fetch(numbered(sql), *params)
        return rows

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        """One transaction on a pooled connection, committed or rolled back whole; the
        end is shielded so a cancelled caller cannot leave it open."""
        async with self.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                yield PostgresConnection(conn)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    if not conn.is_closed():
                        try:
                            await tx.rollback()
                        except Exception as exc:  # the real error is the one raised below
                            logger.debug("rollback failed: %s", exc)
                raise
            with anyio.CancelScope(shield=True):
                async with translated():  # a deferred constraint fails at COMMIT
                    await tx.commit()

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    async def compact(self) -> None:
        """VACUUM ANALYZE: PostgreSQL's autovacuum reuses deleted rows' space anyway;
        this makes it reusable now and refreshes the planner's statistics (a plain
        VACUUM gives no space back to the system; VACUUM FULL would, under an
        exclusive lock, which a live gateway cannot take)."""
        await self.pool.execute("VACUUM ANALYZE")

    # --- migrations ----------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply pending migrations, each in its own transaction, under an advisory
        lock: of several processes starting together one applies them, the others
        wait for it and find them applied."""
        await self.connect()
        applied: list[str] = []
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for migration in available_migrations(self.dialect):
                    if migration.version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)  # a script: the simple protocol
                        await conn.execute(
                            "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            datetime.now(UTC).isoformat(),
                        )
                    applied.append(migration.label)
                    logger.info("applied migration %s", migration.label)
            finally:
                with anyio.CancelScope(shield=True):
                    await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        return applied

    async def applied_migrations(self) -> list[str]:
        rows = await self.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        return [f"{r[0]:04d}_{r[1]}" for r in rows]
