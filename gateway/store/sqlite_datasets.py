"""Datasets on SQLite or PostgreSQL: `SqlDatasetStore`, one implementation on any
`SQLDatabase` (the module keeps its name from when it was SQLite's only).

Reads go to the database's ``fetch`` (on SQLite its reader connection); every write
runs in its ``transaction()`` (on SQLite the one write transaction, shared with the
span and experiment stores; on PostgreSQL an edit locks its dataset's row first). An
edit of a dataset's items closes the rows it replaces (``valid_to``) and adds rows
valid from the new version, so older versions stay readable without copies (see the
migration ``0004_datasets.sql``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.store.datasets import (
    DATASET_COLUMNS,
    ITEM_CONTENT_FIELDS,
    ITEM_JSON,
    ChangeResult,
    DatasetFilter,
    DatasetRecord,
    DatasetStore,
    ItemChanges,
    ItemContent,
    ItemRecord,
    VersionRecord,
)
from gateway.store.dialect import dialect_for
from gateway.store.experiments import INSERT_PROJECT, now_iso, row_lock
from gateway.store.pagination import Page, SortKey, decode_cursor, encode_cursor, keyset_page
from gateway.store.sql import IntegrityError, SQLConnection, SQLDatabase, SQLRow, fetch_all

DATASET_ORDER = (SortKey("created_at", "created_at", kind=str), SortKey("id", "id", kind=str))
ITEM_ROW_COLUMNS = (
    "id",
    "dataset_id",
    *ITEM_CONTENT_FIELDS,
    "position",
    "created_at",
    "updated_at",
    "valid_from",
)
_SELECT_DATASET = f"SELECT {', '.join(DATASET_COLUMNS)} FROM datasets"
_SELECT_ITEM = f"SELECT row_id, {', '.join(ITEM_ROW_COLUMNS)} FROM dataset_items"
_INSERT_ITEM = (
    f"INSERT INTO dataset_items ({', '.join(ITEM_ROW_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in ITEM_ROW_COLUMNS)})"
)
_IN_VERSION = "valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)"
_CURRENT = "valid_to IS NULL"


def new_item_id() -> str:
    return "dsi_" + secrets.token_hex(12)


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def dataset_from_row(row: SQLRow) -> DatasetRecord:
    return DatasetRecord(**{column: row[column] for column in DATASET_COLUMNS})


def item_from_row(row: SQLRow) -> ItemRecord:
    values = {}
    for name in ITEM_CONTENT_FIELDS:
        value = row[name]
        values[name] = orjson.loads(value) if name in ITEM_JSON and value is not None else value
    return ItemRecord(
        id=row["id"],
        dataset_id=row["dataset_id"],
        position=row["position"],
        version=row["valid_from"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        **values,
    )


@dataclass(slots=True)
class Prepared:
    """An item to add, its id drawn and its JSON encoded before the write transaction
    (so the database's write lock is held for the SQL alone)."""

    item: ItemContent
    id: str
    encoded: tuple[Any, ...]  # the ITEM_CONTENT_FIELDS columns


def prepare(items: Sequence[ItemContent]) -> list[Prepared]:
    return [
        Prepared(
            item,
            new_item_id(),
            tuple(_dump(v) if n in ITEM_JSON else v for n, v in item.content().items()),
        )
        for item in items
    ]


def _at(row: int | None) -> str:
    return f"Row {row}: " if row is not None else ""


class SqlDatasetStore(DatasetStore):
    def __init__(self, db: SQLDatabase) -> None:
        self.db = db
        self.dialect = dialect_for(db.dialect)

    # --- reading -------------------------------------------------------------------

    async def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        rows = await self.db.fetch(_SELECT_DATASET + " WHERE id = ?", (dataset_id,))
        return dataset_from_row(rows[0]) if rows else None

    async def list_datasets(
        self, filters: DatasetFilter, *, limit: int, cursor: str | None = None
    ) -> Page:
        where, params = filters.where(self.dialect)
        return await keyset_page(
            self.db.fetch,
            _SELECT_DATASET,
            where,
            params,
            DATASET_ORDER,
            limit=limit,
            cursor=cursor,
            convert=lambda row: dataset_from_row(row).as_dict(),
        )

    async def list_items(
        self, dataset_id: str, *, version: int, limit: int, cursor: str | None = None
    ) -> Page:
        # In list order (ascending position), unlike the newest-first lists.
        after = decode_cursor(cursor, 1)[0] if cursor else None
        if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
            raise InvalidRequest(f"Invalid cursor {cursor!r}", param="cursor")
        rows = await self.db.fetch(
            _SELECT_ITEM + f" WHERE dataset_id = ? AND {_IN_VERSION} AND position > ?"
            " ORDER BY position LIMIT ?",
            (dataset_id, version, version, -1 if after is None else after, limit + 1),
        )
        next_cursor = encode_cursor([rows[limit - 1]["position"]]) if len(rows) > limit else None
        return Page([item_from_row(r).as_dict() for r in rows[:limit]], next_cursor)

    async def get_item(self, dataset_id: str, item_id: str, *, version: int) -> ItemRecord | None:
        rows = await self.db.fetch(
            _SELECT_ITEM + f" WHERE dataset_id = ? AND id = ? AND {_IN_VERSION}",
            (dataset_id, item_id, version, version),
        )
        return item_from_row(rows[0]) if rows else None

    async def list_versions(self, dataset_id: str) -> list[VersionRecord]:
        rows = await self.db.fetch(
            "SELECT dataset_id, version, action, at, item_count, changes FROM dataset_versions"
            " WHERE dataset_id = ? ORDER BY version DESC",
            (dataset_id,),
        )
        return [
            VersionRecord(
                dataset_id=r["dataset_id"],
                version=r["version"],
                action=r["action"],
                at=r["at"],
                item_count=r["item_count"],
                changes=orjson.loads(r["changes"]) if r["changes"] else None,
            )
            for r in rows
        ]

    # --- writing -------------------------------------------------------------------

    async def create_dataset(
        self, dataset: DatasetRecord, items: Sequence[ItemContent] = ()
    ) -> ChangeResult:
        prepared = prepare(items)
        async with self.db.transaction() as conn:
            await self._ensure_project(conn, dataset.project_id)
            values = dataset.as_dict()
            values.update(version=1, item_count=0)
            try:
                await conn.execute(
                    f"INSERT INTO datasets ({', '.join(DATASET_COLUMNS)})"
                    f" VALUES ({', '.join('?' for _ in DATASET_COLUMNS)})",
                    tuple(values[c] for c in DATASET_COLUMNS),
                )
            except IntegrityError:
                raise self._name_taken(dataset.name, dataset.project_id) from None
            result = ChangeResult(dataset=DatasetRecord(**values))
            await self._add_items(conn, dataset.id, prepared, 1, dataset.created_at, result, {})
            return await self._finish(conn, result, 1, "created", dataset.created_at)

    async def update_dataset(self, dataset_id: str, values: Mapping[str, Any]) -> DatasetRecord:
        async with self.db.transaction() as conn:
            current = await self._locked_dataset(conn, dataset_id)
            updated = DatasetRecord(**{**current.as_dict(), **values})
            if updated == current:
                return current
            updated.updated_at = now_iso()
            await self._ensure_project(conn, updated.project_id)
            try:
                await conn.execute(
                    "UPDATE datasets SET name = ?, description = ?, project_id = ?,"
                    " updated_at = ? WHERE id = ?",
                    (
                        updated.name,
                        updated.description,
                        updated.project_id,
                        updated.updated_at,
                        dataset_id,
                    ),
                )
            except IntegrityError:
                raise self._name_taken(updated.name, updated.project_id) from None
            return updated

    async def delete_dataset(self, dataset_id: str) -> bool:
        async with self.db.transaction() as conn:
            cursor = await conn.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
            return bool(cursor.rowcount)

    async def change_items(
        self, dataset_id: str, changes: ItemChanges, *, action: str
    ) -> ChangeResult:
        prepared = prepare(changes.add)
        async with self.db.transaction() as conn:
            current = await self._locked_dataset(conn, dataset_id)
            version = current.version + 1
            stamp = now_iso()
            result = ChangeResult(dataset=current)
            for item_id in changes.delete:
                live = await self._live_item(conn, dataset_id, item_id)
                await conn.execute(
                    "UPDATE dataset_items SET valid_to = ? WHERE row_id = ?",
                    (version, live["row_id"]),
                )
                result.deleted.append(item_id)
            for item_id, update in changes.updates.items():
                live = await self._live_item(conn, dataset_id, item_id)
                old = item_from_row(live)
                content = {**old.content(), **update}
                # A request item names its dialect (chat by default), a template none.
                content["operation"] = (
                    (content["operation"] or "chat") if content["request"] is not None else None
                )
                if content == old.content():
                    continue
                await self._check_key(conn, dataset_id, content["key"], item_id, None)
                record = await self._rewrite(conn, live, content, version, stamp)
                result.updated.append(record)
            taken: dict[str, ItemContent] = {}
            await self._add_items(
                conn, dataset_id, prepared, version, stamp, result, taken, changes.on_conflict
            )
            if not result.changed:
                return result
            return await self._finish(conn, result, version, action, stamp)

    # --- helpers (inside a transaction) ----------------------------------------------

    async def _add_items(
        self,
        conn: SQLConnection,
        dataset_id: str,
        items: Sequence[Prepared],
        version: int,
        stamp: str,
        result: ChangeResult,
        taken: dict[str, ItemContent],
        on_conflict: str = "error",
    ) -> None:
        """Add ``items``; a key the dataset has goes by ``on_conflict``. The keys are
        read in one query and the rows written in batches: a large import holds the
        database's write lock (which the span writer process waits on) briefly."""
        if not items:
            return
        rows = await conn.execute_fetchall(
            "SELECT COALESCE(MAX(position), 0) FROM dataset_items WHERE dataset_id = ?",
            (dataset_id,),
        )
        position = int(next(iter(rows))[0])
        current: dict[str, int] = {}
        keys = list({p.item.key: None for p in items})
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for row in await self._fetch(
                conn,
                f"SELECT key, row_id FROM dataset_items WHERE dataset_id = ? AND {_CURRENT}"
                f" AND key IN ({', '.join('?' for _ in chunk)})",
                (dataset_id, *chunk),
            ):
                current[row["key"]] = row["row_id"]
        batch: list[tuple[Any, ...]] = []
        for prepared in items:
            item = prepared.item
            first = taken.get(item.key)
            if first is not None:
                where = f" (row {first.row})" if first.row is not None else ""
                raise Conflict(
                    f"{_at(item.row)}key {item.key!r} is given twice{where}; keys are unique"
                    " within a dataset. Nothing was written.",
                    param="key",
                    code="duplicate_key",
                )
            taken[item.key] = item
            row_id = current.get(item.key)
            if row_id is not None:
                await self._on_conflict(conn, item, row_id, on_conflict, version, stamp, result)
                continue
            position += 1
            result.added.append(
                ItemRecord(
                    id=prepared.id,
                    dataset_id=dataset_id,
                    position=position,
                    version=version,
                    created_at=stamp,
                    updated_at=stamp,
                    **item.content(),
                )
            )
            # The order of ITEM_ROW_COLUMNS.
            batch.append(
                (prepared.id, dataset_id, *prepared.encoded, position, stamp, stamp, version)
            )
            if len(batch) >= 500:
                await conn.executemany(_INSERT_ITEM, batch)
                batch = []
        if batch:
            await conn.executemany(_INSERT_ITEM, batch)

    async def _on_conflict(
        self,
        conn: SQLConnection,
        item: ItemContent,
        row_id: int,
        on_conflict: str,
        version: int,
        stamp: str,
        result: ChangeResult,
    ) -> None:
        """An added item whose key the current item of row ``row_id`` has."""
        [existing] = await self._fetch(conn, _SELECT_ITEM + " WHERE row_id = ?", (row_id,))
        if on_conflict == "error":
            raise Conflict(
                f"{_at(item.row)}key {item.key!r} is already in the dataset (item"
                f" {existing['id']}). Nothing was written.",
                param="key",
                code="duplicate_key",
            )
        if on_conflict == "skip" or item_from_row(existing).content() == item.content():
            result.skipped.append(item.key)
            return
        result.updated.append(await self._rewrite(conn, existing, item.content(), version, stamp))

    async def _rewrite(
        self,
        conn: SQLConnection,
        live: SQLRow,
        content: Mapping[str, Any],
        version: int,
        stamp: str,
    ) -> ItemRecord:
        """The live row ``live`` takes ``content`` from ``version`` on: a row written
        by this same version is changed in place, any other is closed and replaced."""
        old = item_from_row(live)
        record = ItemRecord(
            id=old.id,
            dataset_id=old.dataset_id,
            position=old.position,
            version=version,
            created_at=old.created_at,
            updated_at=stamp,
            **{name: content[name] for name in ITEM_CONTENT_FIELDS},
        )
        if live["valid_from"] == version:
            await conn.execute("DELETE FROM dataset_items WHERE row_id = ?", (live["row_id"],))
        else:
            await conn.execute(
                "UPDATE dataset_items SET valid_to = ? WHERE row_id = ?", (version, live["row_id"])
            )
        await conn.execute(_INSERT_ITEM, self._values(record))
        return record

    async def _check_key(
        self,
        conn: SQLConnection,
        dataset_id: str,
        key: str,
        item_id: str,
        row: int | None,
    ) -> None:
        other = await self._fetch(
            conn,
            f"SELECT id FROM dataset_items WHERE dataset_id = ? AND key = ? AND {_CURRENT}"
            " AND id != ?",
            (dataset_id, key, item_id),
        )
        if other:
            raise Conflict(
                f"{_at(row)}key {key!r} is already used by item {other[0]['id']}."
                " Nothing was written.",
                param="key",
                code="duplicate_key",
            )

    async def _finish(
        self,
        conn: SQLConnection,
        result: ChangeResult,
        version: int,
        action: str,
        stamp: str,
    ) -> ChangeResult:
        dataset_id = result.dataset.id
        rows = await conn.execute_fetchall(
            f"SELECT COUNT(*) FROM dataset_items WHERE dataset_id = ? AND {_CURRENT}",
            (dataset_id,),
        )
        count = int(next(iter(rows))[0])
        changes = {
            "added": len(result.added),
            "updated": len(result.updated),
            "deleted": len(result.deleted),
        }
        await conn.execute(
            "INSERT INTO dataset_versions (dataset_id, version, action, at, item_count, changes)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (dataset_id, version, action, stamp, count, _dump(changes)),
        )
        await conn.execute(
            "UPDATE datasets SET version = ?, item_count = ?, updated_at = ? WHERE id = ?",
            (version, count, stamp, dataset_id),
        )
        result.dataset = DatasetRecord(
            **{
                **result.dataset.as_dict(),
                "version": version,
                "item_count": count,
                "updated_at": stamp,
            }
        )
        return result

    async def _locked_dataset(self, conn: SQLConnection, dataset_id: str) -> DatasetRecord:
        rows = await self._fetch(
            conn, _SELECT_DATASET + " WHERE id = ?" + row_lock(self.dialect), (dataset_id,)
        )
        if not rows:
            raise NotFound(f"No dataset with id {dataset_id!r}.", param="dataset_id")
        return dataset_from_row(rows[0])

    async def _live_item(self, conn: SQLConnection, dataset_id: str, item_id: str) -> SQLRow:
        rows = await self._fetch(
            conn,
            _SELECT_ITEM + f" WHERE dataset_id = ? AND id = ? AND {_CURRENT}",
            (dataset_id, item_id),
        )
        if not rows:
            raise NotFound(
                f"Dataset {dataset_id!r} has no item {item_id!r}. Nothing was written.",
                param="item_id",
            )
        row: SQLRow = rows[0]
        return row

    @staticmethod
    async def _fetch(conn: SQLConnection, sql: str, params: Sequence[Any]) -> list[Any]:
        return await fetch_all(conn, sql, params)

    @staticmethod
    def _values(record: ItemRecord) -> tuple[Any, ...]:
        values = {
            **record.content(),
            "id": record.id,
            "dataset_id": record.dataset_id,
            "position": record.position,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "valid_from": record.version,
        }
        return tuple(_dump(values[c]) if c in ITEM_JSON else values[c] for c in ITEM_ROW_COLUMNS)

    @staticmethod
    def _name_taken(name: str, project_id: str | None) -> Conflict:
        where = f"project {project_id!r}" if project_id else "no project"
        return Conflict(
            f"A dataset named {name!r} already exists in {where}.",
            param="name",
            code="dataset_exists",
        )

    @staticmethod
    async def _ensure_project(conn: SQLConnection, project_id: str | None) -> None:
        if project_id:
            await conn.execute(INSERT_PROJECT, (project_id, project_id, now_iso()))
