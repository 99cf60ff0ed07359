"""The dataset store, on SQLite and on PostgreSQL (the ``stores`` fixture): composed
into the stores on the one database, versions without copies, an edit whole or not at
all, concurrent edits serialized."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.errors import Conflict, NotFound
from gateway.store.datasets import (
    DATASET_COLUMNS,
    DatasetRecord,
    ItemChanges,
    ItemContent,
    ItemRecord,
)
from gateway.store.sql import SQLDatabase
from gateway.store.sqlite_datasets import ITEM_ROW_COLUMNS, SqlDatasetStore
from gateway.store.stores import Stores
from tests.sql_helpers import sql_db, table_columns


def record(name: str = "d") -> DatasetRecord:
    return DatasetRecord(id=f"ds_{name}", name=name, created_at="t0", updated_at="t0")


def item(key: str, value: str = "v") -> ItemContent:
    return ItemContent(key=key, variables={"x": value})


async def count_rows(db: SQLDatabase) -> int:
    rows = await db.fetch("SELECT COUNT(*) FROM dataset_items")
    return int(rows[0][0])


async def test_the_dataset_store_sits_on_the_one_database_with_the_others(
    stores: Stores,
) -> None:
    assert isinstance(stores.datasets, SqlDatasetStore)
    assert stores.datasets.db is stores.database is stores.spans.db  # type: ignore[attr-defined]
    db = sql_db(stores.database)
    assert tuple(await table_columns(db, "datasets")) == DATASET_COLUMNS
    item_columns = set(await table_columns(db, "dataset_items"))
    assert set(ITEM_ROW_COLUMNS) <= item_columns
    assert {f.name for f in dataclasses.fields(DatasetRecord)} == set(DATASET_COLUMNS)
    assert "0004_datasets" in await stores.database.applied_migrations()


async def test_an_edit_writes_only_the_rows_it_changes(stores: Stores) -> None:
    store = stores.datasets
    db = sql_db(stores.database)
    created = await store.create_dataset(record(), [item(f"k{i}") for i in range(100)])
    assert (created.dataset.version, created.dataset.item_count) == (1, 100)
    first = created.added[0]
    for n in range(5):
        await store.change_items(
            "ds_d", ItemChanges(updates={first.id: {"variables": {"x": str(n)}}}), action="u"
        )
    assert await count_rows(db) == 105  # not 6 x 100
    dataset = await store.get_dataset("ds_d")
    assert dataset is not None and dataset.version == 6
    for version in range(1, 7):
        got = await store.get_item("ds_d", first.id, version=version)
        assert isinstance(got, ItemRecord)
        assert got.variables == ({"x": "v"} if version == 1 else {"x": str(version - 2)})
        page = await store.list_items("ds_d", version=version, limit=1000)
        assert len(page.items) == 100


async def test_a_refused_edit_writes_nothing_not_even_its_first_part(stores: Stores) -> None:
    store = stores.datasets
    created = await store.create_dataset(record(), [item("a"), item("b")])
    a, b = created.added
    changes = ItemChanges(
        delete=[a.id], updates={b.id: {"variables": {"x": "new"}}}, add=[item("c"), item("b")]
    )
    with pytest.raises(Conflict, match="'b' is already in the dataset"):
        await store.change_items("ds_d", changes, action="x")
    with pytest.raises(NotFound):
        await store.change_items("ds_d", ItemChanges(delete=[a.id, "dsi_missing"]), action="x")
    page = await store.list_items("ds_d", version=1, limit=10)
    assert [(i["key"], i["variables"]) for i in page.items] == [
        ("a", {"x": "v"}),
        ("b", {"x": "v"}),
    ]
    dataset = await store.get_dataset("ds_d")
    assert dataset is not None and (dataset.version, dataset.item_count) == (1, 2)
    assert [v.version for v in await store.list_versions("ds_d")] == [1]


async def test_a_key_deleted_can_come_back_and_the_old_version_still_has_the_old_item(
    stores: Stores,
) -> None:
    store = stores.datasets
    created = await store.create_dataset(record(), [item("a", "old")])
    change = ItemChanges(delete=[created.added[0].id], add=[item("a", "new")])
    result = await store.change_items("ds_d", change, action="replaced")
    assert result.dataset.version == 2
    v1 = await store.list_items("ds_d", version=1, limit=10)
    v2 = await store.list_items("ds_d", version=2, limit=10)
    assert [i["variables"] for i in v1.items] == [{"x": "old"}]
    assert [i["variables"] for i in v2.items] == [{"x": "new"}]
    assert v1.items[0]["id"] != v2.items[0]["id"]


async def test_concurrent_edits_each_get_their_own_version(stores: Stores) -> None:
    store = stores.datasets
    await store.create_dataset(record())
    results = await asyncio.gather(
        *(
            store.change_items("ds_d", ItemChanges(add=[item(f"k{i}")]), action="items_added")
            for i in range(10)
        )
    )
    assert sorted(r.dataset.version for r in results) == list(range(2, 12))
    versions = await store.list_versions("ds_d")
    assert [v.item_count for v in versions] == list(range(10, -1, -1))
    page = await store.list_items("ds_d", version=11, limit=100)
    assert len(page.items) == 10


async def test_deleting_a_dataset_deletes_every_version(stores: Stores) -> None:
    store = stores.datasets
    db = sql_db(stores.database)
    await store.create_dataset(record(), [item("a")])
    await store.change_items("ds_d", ItemChanges(add=[item("b")]), action="a")
    assert await store.delete_dataset("ds_d")
    assert await count_rows(db) == 0
    assert await db.fetch("SELECT * FROM dataset_versions") == []
    assert not await store.delete_dataset("ds_d")
