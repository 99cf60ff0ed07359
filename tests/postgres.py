"""PostgreSQL for the tests: one throwaway cluster per test session
(`bench.postgres.PostgresServer`: initdb in a temporary directory, as the postgres user
when run as root, on a free loopback port), a TEMPLATE database migrated once, and a
database of its own for each test (``CREATE DATABASE tN TEMPLATE spanlab_template``:
a file copy, ~0.1 s).

Without PostgreSQL installed the tests that need it are skipped, saying why; under
``CI=true`` they fail instead (CI installs it: .ci/run).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from bench.postgres import PostgresServer, pg_bin

TEMPLATE = "spanlab_template"
_numbers = itertools.count(1)
T = TypeVar("T")


def require_postgres() -> None:
    """Skip (fail under CI=true) when PostgreSQL or asyncpg is not installed."""
    missing = None
    if pg_bin() is None:
        missing = "PostgreSQL is not installed (apt-get install postgresql)"
    else:
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            missing = "asyncpg is not installed (pip install -e '.[postgres]')"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: CI must run the PostgreSQL tests")
        pytest.skip(missing)


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end on a loop of its own, in a thread: callable from a
    synchronous fixture whatever loop the test itself runs on."""
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        async def main() -> T:
            return await make()

        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    value: T = result[0]
    return value


class PostgresCluster:
    """The session's server and the databases made on it."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.server.port}/{database}"

    async def _admin(self, *statements: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url("postgres"))
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    def make_template(self) -> None:
        from gateway.store.postgres import PostgresDatabase

        async def migrate() -> None:
            await self._admin(f"CREATE DATABASE {TEMPLATE}")
            db = PostgresDatabase(self.url(TEMPLATE), pool_size=1)
            try:
                await db.migrate()
            finally:
                await db.close()

        run_sync(migrate)

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database's URL: a copy of the migrated template, or empty."""
        name = f"t{next(_numbers)}"
        template = f" TEMPLATE {TEMPLATE}" if migrated else ""
        run_sync(lambda: self._admin(f"CREATE DATABASE {name}{template}"))
        return self.url(name)


def start_cluster() -> PostgresCluster:
    # synchronous_commit off: the tests check what is stored, not the disk's flush
    # (the durability promise of SQLite's synchronous = NORMAL, as the benchmark's).
    server = PostgresServer({"synchronous_commit": "off", "fsync": "off"}).start()
    cluster = PostgresCluster(server)
    try:
        cluster.make_template()
    except BaseException:
        server.stop()
        raise
    return cluster
