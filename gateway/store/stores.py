"""The database and the stores on it, as the gateway holds them: `stores_for` a
database setting (a SQLite file path, or a ``postgresql://`` URL)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.database import Database, SQLiteDatabase
from gateway.store.datasets import DatasetStore
from gateway.store.evaluation import EvaluationStore
from gateway.store.events import EventStore
from gateway.store.experiments import ExperimentStore, SqlExperimentStore
from gateway.store.playground import PlaygroundStore
from gateway.store.postgres import DEFAULT_POOL_SIZE, PostgresDatabase, is_postgres_url
from gateway.store.postgres_spans import PostgresSpanStore
from gateway.store.spans import SpanStore
from gateway.store.sqlite import SQLiteSpanStore
from gateway.store.sqlite_datasets import SqlDatasetStore
from gateway.store.sqlite_evaluation import SqlEvaluationStore
from gateway.store.sqlite_events import SqlEventStore
from gateway.store.sqlite_playground import SqlPlaygroundStore


@dataclass(frozen=True, slots=True)
class Stores:
    database: Database
    spans: SpanStore
    experiments: ExperimentStore
    datasets: DatasetStore
    playground: PlaygroundStore
    events: EventStore
    evaluation: EvaluationStore

    async def open(self) -> None:
        await self.database.open()

    async def close(self) -> None:
        await self.database.close()


def sqlite_stores(path: str) -> Stores:
    """A SQLite database at ``path`` (a file, or ``:memory:``) and its stores."""
    db = SQLiteDatabase(path)
    return Stores(
        db,
        SQLiteSpanStore(db),
        SqlExperimentStore(db),
        SqlDatasetStore(db),
        SqlPlaygroundStore(db),
        SqlEventStore(db),
        SqlEvaluationStore(db),
    )


def pg_stores(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Stores:
    """A PostgreSQL database at ``url`` and its stores: the span store
    (`PostgresSpanStore`); the management stores' statements are written once for both
    dialects (`gateway.store.sql`), so they sit on this database as they sit on
    SQLite's."""
    db = PostgresDatabase(url, pool_size)
    return Stores(
        db,
        PostgresSpanStore(db),
        SqlExperimentStore(db),
        SqlDatasetStore(db),
        SqlPlaygroundStore(db),
        SqlEventStore(db),
        SqlEvaluationStore(db),
    )


def stores_for(setting: str, pool_size: int = DEFAULT_POOL_SIZE) -> Stores:
    """The stores of a database setting: a ``postgresql://`` URL, else a SQLite file
    (or ``:memory:``)."""
    if is_postgres_url(setting):
        return pg_stores(setting, pool_size)
    return sqlite_stores(setting)
