"""The dataset store's interface, whatever the database: `DatasetStore`, its typed
records, and the change an edit of a dataset's items makes (`ItemChanges`).

A dataset is versioned by its items: each `DatasetStore.change_items` call that
changes anything is one new version, and every version's items stay readable
(`list_items(..., version=N)`). How the SQLite store keeps versions without copying
items is explained in ``migrations/sqlite/0004_datasets.sql``;
`gateway.store.sqlite_datasets.SqlDatasetStore` implements it on either dialect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.store.dialect import Dialect
from gateway.store.pagination import Page
from gateway.store.sqlwhere import Where

DATASET_COLUMNS = (
    "id",
    "project_id",
    "name",
    "description",
    "version",
    "item_count",
    "created_at",
    "updated_at",
)
# What an item holds (its content); `ItemRecord` adds where it lives and its rows' times.
ITEM_CONTENT_FIELDS = (
    "key",
    "operation",
    "variables",
    "request",
    "expected_output",
    "metadata",
    "source_span_id",
)
ITEM_JSON = frozenset({"variables", "request", "expected_output", "metadata"})
VERSION_ACTIONS = (
    "created",
    "items_added",
    "items_updated",
    "items_deleted",
    "imported",
    "from_spans",
)

# What adding an item whose key is already taken does: fail the whole change, leave
# that item out, or replace the existing item's content with it.
OnConflict = Literal["error", "skip", "update"]


@dataclass(slots=True)
class DatasetRecord:
    id: str
    name: str
    created_at: str
    updated_at: str
    project_id: str | None = None
    description: str | None = None
    version: int = 1
    item_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in DATASET_COLUMNS}


@dataclass(slots=True)
class ItemContent:
    """An item's content, as written: exactly one of ``variables`` and ``request``.
    ``row`` (not stored) numbers it in what it came from, for error messages."""

    key: str
    variables: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    operation: str | None = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    source_span_id: str | None = None
    row: int | None = None

    def content(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ITEM_CONTENT_FIELDS}


@dataclass(slots=True)
class ItemRecord:
    """An item of one version: its content, its identity and ``version``, the
    version its content was written in."""

    id: str
    dataset_id: str
    key: str
    position: int
    version: int
    created_at: str
    updated_at: str
    variables: dict[str, Any] | None = None
    request: dict[str, Any] | None = None
    operation: str | None = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    source_span_id: str | None = None

    def content(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ITEM_CONTENT_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset_id": self.dataset_id,
            **self.content(),
            "position": self.position,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class VersionRecord:
    dataset_id: str
    version: int
    action: str
    at: str
    item_count: int
    changes: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "version": self.version,
            "action": self.action,
            "at": self.at,
            "item_count": self.item_count,
            "changes": self.changes,
        }


@dataclass(slots=True)
class ItemChanges:
    """One edit of a dataset's items, made whole or not at all.

    ``updates`` map an item id to the fields to change (the others stay);
    ``on_conflict`` says what an added item whose key is taken does (``update``: its
    content replaces the existing item's, which keeps its id and place)."""

    add: list[ItemContent] = field(default_factory=list)
    updates: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    on_conflict: OnConflict = "error"


@dataclass(slots=True)
class ChangeResult:
    """What an edit did: the dataset after it (its version is new only if something
    changed), the items added and updated as they now are, the ids deleted, and the
    keys of the added items left out (``on_conflict="skip"``)."""

    dataset: DatasetRecord
    added: list[ItemRecord] = field(default_factory=list)
    updated: list[ItemRecord] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass(frozen=True, slots=True)
class DatasetFilter:
    project: str | None = None
    text: str | None = None

    def where(self, dialect: Dialect) -> tuple[str, list[Any]]:
        where = Where(dialect.like_nocase)
        where.project("project_id", self.project)
        where.contains_text(("name", "description", "id"), self.text)
        return where.sql()


class DatasetStore(ABC):
    """What the gateway needs of stored datasets, their items and versions."""

    @abstractmethod
    async def create_dataset(
        self, dataset: DatasetRecord, items: Sequence[ItemContent] = ()
    ) -> ChangeResult:
        """Store a new dataset as version 1, with ``items``. A name its project has
        already is a `Conflict`, and so are two items of one key."""

    @abstractmethod
    async def get_dataset(self, dataset_id: str) -> DatasetRecord | None: ...

    @abstractmethod
    async def list_datasets(
        self, filters: DatasetFilter, *, limit: int, cursor: str | None = None
    ) -> Page:
        """Datasets newest first (`DatasetRecord.as_dict` shapes)."""

    @abstractmethod
    async def update_dataset(self, dataset_id: str, values: Mapping[str, Any]) -> DatasetRecord:
        """Change ``name``, ``description`` or ``project_id`` (no new version)."""

    @abstractmethod
    async def delete_dataset(self, dataset_id: str) -> bool:
        """Delete a dataset with every version of its items."""

    @abstractmethod
    async def change_items(
        self, dataset_id: str, changes: ItemChanges, *, action: str
    ) -> ChangeResult:
        """Apply ``changes`` in one transaction: one new version if anything changed,
        none otherwise. An unknown dataset or item is `NotFound`, a key taken is a
        `Conflict` (``on_conflict="error"``); then nothing is written."""

    @abstractmethod
    async def list_items(
        self, dataset_id: str, *, version: int, limit: int, cursor: str | None = None
    ) -> Page:
        """Version ``version``'s items in list order (`ItemRecord.as_dict` shapes)."""

    @abstractmethod
    async def get_item(self, dataset_id: str, item_id: str, *, version: int) -> ItemRecord | None:
        """The item as it was in ``version`` (None if it was not in it)."""

    @abstractmethod
    async def list_versions(self, dataset_id: str) -> list[VersionRecord]:
        """Every version, newest first."""
