"""The database and the stores on it, as the gateway holds them."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.database import Database, SQLiteDatabase
from gateway.store.datasets import DatasetStore
from gateway.store.evaluation import EvaluationStore
from gateway.store.events import EventStore
from gateway.store.experiments import ExperimentStore, SQLiteExperimentStore
from gateway.store.playground import PlaygroundStore
from gateway.store.spans import SpanStore
from gateway.store.sqlite import SQLiteSpanStore
from gateway.store.sqlite_datasets import SQLiteDatasetStore
from gateway.store.sqlite_evaluation import SQLiteEvaluationStore
from gateway.store.sqlite_events import SQLiteEventStore
from gateway.store.sqlite_playground import SQLitePlaygroundStore


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
        SQLiteExperimentStore(db),
        SQLiteDatasetStore(db),
        SQLitePlaygroundStore(db),
        SQLiteEventStore(db),
        SQLiteEvaluationStore(db),
    )
