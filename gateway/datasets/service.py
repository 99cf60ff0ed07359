"""`DatasetService`: what the datasets API does, over the dataset and span stores.

It validates what clients send (`gateway.datasets.items`), turns spans into items
(`gateway.datasets.from_spans`), reads and writes files (`gateway.datasets.transfer`)
and hands each edit to the store as one change: one transaction, one new version.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.datasets.from_spans import NotAnInput, item_from_span
from gateway.datasets.items import normalized, parse_item, parse_update
from gateway.datasets.transfer import FORMATS, parse_file, to_csv, to_jsonl
from gateway.errors import NotFound, ValidationFailed
from gateway.store.datasets import (
    ChangeResult,
    DatasetFilter,
    DatasetRecord,
    DatasetStore,
    ItemChanges,
    ItemContent,
    ItemRecord,
    OnConflict,
    VersionRecord,
)
from gateway.store.experiments import now_iso
from gateway.store.pagination import Page
from gateway.store.spans import SpanFilter, SpanStore

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 200
MAX_ITEMS_PER_CALL = 10_000  # items one POST or from-spans may add
MAX_SAMPLE_POOL = 200_000  # spans a sample may be drawn from
DATASET_FIELDS = frozenset({"name", "description", "project_id"})
DATASET_READ_ONLY = frozenset({"id", "version", "item_count", "created_at", "updated_at"})
FROM_SPANS_FIELDS = frozenset({"sample", "seed", "span_ids", "on_conflict"})
IMPORT_FIELDS = frozenset(
    {
        "format",
        "content",
        "content_type",
        "filename",
        "expected_column",
        "key_column",
        "on_conflict",
    }
)
# A file's media type (a browser's File.type) names its format as well.
CONTENT_TYPES = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    "text/csv": "csv",
    "application/csv": "csv",
}
ON_CONFLICT = ("error", "skip", "update")


def new_dataset_id() -> str:
    return "ds_" + secrets.token_hex(12)


def _object(body: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed(f"The body must be a JSON object ({what}).", param="body")
    fields = normalized(body)
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s) {', '.join(sorted(unknown))}. Accepted:"
            f" {', '.join(sorted(allowed))}.",
            param=sorted(unknown)[0],
        )
    return fields


def _text(value: Any, name: str, *, required: bool = False, limit: int | None = None) -> str | None:
    if value is None or (value == "" and not required):
        if required:
            raise ValidationFailed(f"{name} is required.", param=name)
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationFailed(f"{name} must be a non-empty string.", param=name)
    if limit is not None and len(value) > limit:
        raise ValidationFailed(f"{name} is longer than {limit} characters.", param=name)
    return value


def _on_conflict(value: Any, default: OnConflict) -> OnConflict:
    if value is None:
        return default
    if value not in ON_CONFLICT:
        raise ValidationFailed(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {value!r}.",
            param="on_conflict",
        )
    mode: OnConflict = value
    return mode


def items_of(body: Any) -> list[Any]:
    """One item, a list of them, or ``{"items": [...]}``."""
    if isinstance(body, dict) and set(body) == {"items"}:
        body = body["items"]
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ValidationFailed("No items given.", param="items", code="empty_import")
    if len(items) > MAX_ITEMS_PER_CALL:
        raise ValidationFailed(
            f"At most {MAX_ITEMS_PER_CALL:,} items at once (use import).", param="items"
        )
    return items


@dataclass(slots=True)
class FromSpansResult:
    change: ChangeResult
    matched: int
    skipped: list[dict[str, str]] = field(default_factory=list)


class DatasetService:
    """``flush`` waits for the spans captured so far to be stored (so a call made a
    moment ago can be taken into a dataset)."""

    def __init__(
        self,
        store: DatasetStore,
        spans: SpanStore,
        *,
        flush: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.spans = spans
        self.flush = flush

    # --- datasets ------------------------------------------------------------------

    async def get(self, dataset_id: str) -> DatasetRecord:
        dataset = await self.store.get_dataset(dataset_id)
        if dataset is None:
            raise NotFound(f"No dataset with id {dataset_id!r}.", param="dataset_id")
        return dataset

    async def list_datasets(
        self, filters: DatasetFilter, *, limit: int, cursor: str | None
    ) -> Page:
        return await self.store.list_datasets(filters, limit=limit, cursor=cursor)

    async def create(self, body: Any) -> ChangeResult:
        fields = _object(body, DATASET_FIELDS | {"items"}, "a dataset")
        stamp = now_iso()
        dataset = DatasetRecord(
            id=new_dataset_id(),
            name=str(_text(fields.get("name"), "name", required=True, limit=MAX_NAME_LENGTH)),
            description=_text(fields.get("description"), "description"),
            project_id=_text(fields.get("project_id"), "project_id"),
            created_at=stamp,
            updated_at=stamp,
        )
        items: list[ItemContent] = []
        if fields.get("items") is not None:
            if not isinstance(fields["items"], list):
                raise ValidationFailed("items must be a list of items.", param="items")
            if fields["items"]:
                items = [
                    parse_item(item, i + 1) for i, item in enumerate(items_of(fields["items"]))
                ]
        return await self.store.create_dataset(dataset, items)

    async def update(self, dataset_id: str, body: Any) -> DatasetRecord:
        fields = _object(body, DATASET_FIELDS | DATASET_READ_ONLY, "the fields to change")
        current = await self.get(dataset_id)
        for name in DATASET_READ_ONLY & set(fields):
            if fields[name] != getattr(current, name):
                raise ValidationFailed(
                    f"{name} cannot be changed (it is the dataset's own).", param=name
                )
        values: dict[str, Any] = {}
        if "name" in fields:
            values["name"] = _text(fields["name"], "name", required=True, limit=MAX_NAME_LENGTH)
        if "description" in fields:
            values["description"] = _text(fields["description"], "description")
        if "project_id" in fields:
            values["project_id"] = _text(fields["project_id"], "project_id")
        return await self.store.update_dataset(dataset_id, values)

    async def delete(self, dataset_id: str) -> None:
        if not await self.store.delete_dataset(dataset_id):
            raise NotFound(f"No dataset with id {dataset_id!r}.", param="dataset_id")

    async def versions(self, dataset_id: str) -> list[VersionRecord]:
        await self.get(dataset_id)
        return await self.store.list_versions(dataset_id)

    # --- items ---------------------------------------------------------------------

    async def version_of(self, dataset_id: str, version: int | None) -> tuple[DatasetRecord, int]:
        """The dataset and the version asked for (its current one by default)."""
        dataset = await self.get(dataset_id)
        if version is None:
            return dataset, dataset.version
        if not 1 <= version <= dataset.version:
            raise NotFound(
                f"Dataset {dataset_id!r} has no version {version} (its versions are 1 to"
                f" {dataset.version}).",
                param="version",
                code="version_not_found",
            )
        return dataset, version

    async def items(
        self, dataset_id: str, *, version: int | None, limit: int, cursor: str | None
    ) -> tuple[Page, int]:
        _, number = await self.version_of(dataset_id, version)
        page = await self.store.list_items(dataset_id, version=number, limit=limit, cursor=cursor)
        return page, number

    async def item(self, dataset_id: str, item_id: str, *, version: int | None) -> ItemRecord:
        _, number = await self.version_of(dataset_id, version)
        item = await self.store.get_item(dataset_id, item_id, version=number)
        if item is None:
            raise NotFound(
                f"Dataset {dataset_id!r} has no item {item_id!r} in version {number}.",
                param="item_id",
            )
        return item

    async def add_items(self, dataset_id: str, body: Any) -> ChangeResult:
        given = items_of(body)
        many = not (isinstance(body, dict) and set(body) != {"items"})
        items = [parse_item(item, i + 1 if many else None) for i, item in enumerate(given)]
        await self.get(dataset_id)
        return await self.store.change_items(
            dataset_id, ItemChanges(add=items), action="items_added"
        )

    async def update_item(self, dataset_id: str, item_id: str, body: Any) -> ItemRecord:
        update = parse_update(body)
        result = await self.store.change_items(
            dataset_id, ItemChanges(updates={item_id: update}), action="items_updated"
        )
        if result.updated:
            return result.updated[0]
        return await self.item(dataset_id, item_id, version=None)  # nothing changed

    async def delete_item(self, dataset_id: str, item_id: str) -> ChangeResult:
        return await self.store.change_items(
            dataset_id, ItemChanges(delete=[item_id]), action="items_deleted"
        )

    # --- from spans ----------------------------------------------------------------

    async def from_spans(self, dataset_id: str, filters: SpanFilter, body: Any) -> FromSpansResult:
        """Items from the spans matching ``filters`` (or the ``span_ids`` listed), a
        random ``sample`` of them if asked (the same ``seed``, the same sample)."""
        fields = _object({} if body is None else body, FROM_SPANS_FIELDS, "from-spans options")
        sample = fields.get("sample")
        if sample is not None and (
            not isinstance(sample, int) or isinstance(sample, bool) or sample < 1
        ):
            raise ValidationFailed("sample must be a positive integer.", param="sample")
        if sample is not None and sample > MAX_ITEMS_PER_CALL:
            raise ValidationFailed(f"sample is at most {MAX_ITEMS_PER_CALL:,}.", param="sample")
        seed = fields.get("seed")
        if seed is not None and not isinstance(seed, int | str):
            raise ValidationFailed("seed must be an integer or a string.", param="seed")
        on_conflict = _on_conflict(fields.get("on_conflict"), "skip")
        await self.get(dataset_id)
        if self.flush is not None:
            await self.flush()
        span_ids = fields.get("span_ids")
        if span_ids is not None:
            ids = await self._listed_spans(span_ids, filters)
        else:
            ids = await self._matching_spans(filters, sample is not None)
        matched = len(ids)
        if sample is not None and sample < len(ids):
            chosen = set(random.Random(seed).sample(ids, sample))
            ids = [span_id for span_id in ids if span_id in chosen]
        items: list[ItemContent] = []
        skipped: list[dict[str, str]] = []
        for span_id in ids:
            span = await self.spans.get_span(span_id)
            if span is None:  # pruned meanwhile
                skipped.append({"span_id": span_id, "reason": "the span no longer exists"})
                continue
            try:
                items.append(item_from_span(span))
            except NotAnInput as exc:
                skipped.append({"span_id": span_id, "reason": str(exc)})
        change = await self.store.change_items(
            dataset_id, ItemChanges(add=items, on_conflict=on_conflict), action="from_spans"
        )
        skipped += [{"span_id": key, "reason": "already in the dataset"} for key in change.skipped]
        return FromSpansResult(change, matched, skipped)

    async def _listed_spans(self, span_ids: Any, filters: SpanFilter) -> list[str]:
        if filters != SpanFilter():
            raise ValidationFailed(
                "Give either span_ids or span filters, not both.", param="span_ids"
            )
        if (
            not isinstance(span_ids, list)
            or not span_ids
            or not all(isinstance(s, str) and s for s in span_ids)
        ):
            raise ValidationFailed("span_ids must be a list of span ids.", param="span_ids")
        if len(span_ids) > MAX_ITEMS_PER_CALL:
            raise ValidationFailed(
                f"At most {MAX_ITEMS_PER_CALL:,} span_ids at once.", param="span_ids"
            )
        unique = list(dict.fromkeys(span_ids))
        for span_id in unique:
            if await self.spans.get_span(span_id) is None:
                raise NotFound(f"No span with id {span_id!r}.", param="span_ids")
        return unique

    async def _matching_spans(self, filters: SpanFilter, sampling: bool) -> list[str]:
        """The ids of the spans ``filters`` match, oldest first."""
        bound = MAX_SAMPLE_POOL if sampling else MAX_ITEMS_PER_CALL
        ids: list[str] = []
        cursor = None
        while True:
            page = await self.spans.list_spans(filters, limit=1000, cursor=cursor)
            ids += [item["span_id"] for item in page.items]
            if len(ids) > bound:
                raise ValidationFailed(
                    f"More than {bound:,} spans match: narrow the filters"
                    + ("." if sampling else " or take a sample."),
                    param="sample",
                    code="too_many_spans",
                )
            cursor = page.next_cursor
            if cursor is None:
                break
        ids.reverse()
        return ids

    # --- files ---------------------------------------------------------------------

    async def import_(self, dataset_id: str, body: Any) -> ChangeResult:
        fields = _object(body, IMPORT_FIELDS, "an import")
        content = fields.get("content")
        if not isinstance(content, str):
            raise ValidationFailed(
                "content must be the file's text (JSONL or CSV).", param="content"
            )
        format = fields.get("format")
        filename = _text(fields.get("filename"), "filename")
        content_type = _text(fields.get("content_type"), "content_type")
        if format is None and content_type is not None:
            format = CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())
        if format is None and filename is not None:
            suffix = filename.rsplit(".", 1)[-1].lower()
            format = {"jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}.get(suffix)
        if format not in FORMATS:
            raise ValidationFailed(
                f"format must be one of {', '.join(FORMATS)} (or a content_type or a"
                f" filename that says which), got {format!r}.",
                param="format",
            )
        items = parse_file(
            content,
            str(format),
            expected_column=_text(fields.get("expected_column"), "expected_column"),
            key_column=_text(fields.get("key_column"), "key_column"),
        )
        await self.get(dataset_id)
        on_conflict = _on_conflict(fields.get("on_conflict"), "error")
        return await self.store.change_items(
            dataset_id, ItemChanges(add=items, on_conflict=on_conflict), action="imported"
        )

    async def all_items(self, dataset_id: str, version: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.store.list_items(
                dataset_id, version=version, limit=1000, cursor=cursor
            )
            items += page.items
            cursor = page.next_cursor
            if cursor is None:
                return items

    async def export(self, dataset_id: str, format: str, version: int | None) -> tuple[bytes, int]:
        """The version's items as a file; and which version it is."""
        if format not in FORMATS:
            raise ValidationFailed(
                f"format must be one of {', '.join(FORMATS)}, got {format!r}.", param="format"
            )
        _, number = await self.version_of(dataset_id, version)
        items = await self.all_items(dataset_id, number)
        if format == "jsonl":
            return to_jsonl(items), number
        return to_csv(items).encode(), number


def change_summary(change: ChangeResult) -> Mapping[str, Any]:
    return {
        "dataset": change.dataset.as_dict(),
        "version": change.dataset.version,
        "added": len(change.added),
        "updated": len(change.updated),
        "deleted": len(change.deleted),
        "skipped": list(change.skipped),
    }
