"""Items to and from files: JSONL (one item object per line) and CSV.

Reading checks every line before anything is stored, and an error names the line
(``Row N``: the file's line number; a CSV's header is line 1), so an import is whole
or not at all. JSONL round-trips exactly. A CSV's columns become the item's
``variables`` (text), except these: the key column (``key``, or the one named), the
expected-output column (only when named), and ``operation``, ``request`` (a JSON
object: a whole-request item), ``metadata`` (a JSON object) and ``source_span_id``,
which are what an export writes besides the variables.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from gateway.datasets.items import parse_item
from gateway.errors import ValidationFailed
from gateway.store.datasets import ITEM_CONTENT_FIELDS, ItemContent

FORMATS = ("jsonl", "csv")
MAX_IMPORT_ITEMS = 50_000  # one transaction: it holds the write lock ~1 s per 20k items
# Columns a CSV holds besides the variables (the key's and expected output's names
# are the import's to choose).
CSV_RESERVED = ("operation", "request", "metadata", "source_span_id")
CSV_FIELD_LIMIT = 1 << 28  # the csv module's default (128 KiB a cell) is too small


def _too_many(row: int) -> ValidationFailed:
    return ValidationFailed(
        f"Row {row}: an import holds at most {MAX_IMPORT_ITEMS:,} items.",
        param="content",
        code="too_many_items",
    )


def _empty(kind: str) -> ValidationFailed:
    return ValidationFailed(f"The {kind} holds no items.", param="content", code="empty_import")


def parse_jsonl(text: str) -> list[ItemContent]:
    items: list[ItemContent] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(
                f"Row {number}: not valid JSON ({exc}).", param="content", code="invalid_line"
            ) from None
        if len(items) >= MAX_IMPORT_ITEMS:
            raise _too_many(number)
        items.append(parse_item(value, number, default_key=f"row-{number}"))
    if not items:
        raise _empty("JSONL")
    return items


def _json_cell(text: str, name: str, row: int) -> Any:
    if not text.strip():
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValidationFailed(
            f"Row {row}: the {name} column must hold a JSON object.",
            param=name,
            code="invalid_line",
        ) from None
    return value


def parse_csv(
    text: str, *, expected_column: str | None = None, key_column: str | None = None
) -> list[ItemContent]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ValidationFailed(
            f"Row 1: not a CSV header ({exc}).", param="content", code="invalid_line"
        ) from None
    if header is None or not any(cell.strip() for cell in header):
        raise _empty("CSV")
    names = [cell.strip() for cell in header]
    for index, name in enumerate(names):
        if not name:
            raise ValidationFailed(
                f"Row 1: column {index + 1} has no name.", param="content", code="invalid_line"
            )
        if name in names[:index]:
            raise ValidationFailed(
                f"Row 1: column {name!r} is named twice.", param="content", code="invalid_line"
            )
    if expected_column is not None and expected_column not in names:
        raise ValidationFailed(
            f"The CSV has no column {expected_column!r} (expected_column); its columns:"
            f" {', '.join(names)}.",
            param="expected_column",
        )
    if key_column is not None and key_column not in names:
        raise ValidationFailed(
            f"The CSV has no column {key_column!r} (key_column); its columns: {', '.join(names)}.",
            param="key_column",
        )
    key_name = key_column or ("key" if "key" in names else None)
    special = {key_name, expected_column, *CSV_RESERVED}
    variable_names = [n for n in names if n not in special]
    items: list[ItemContent] = []
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise ValidationFailed(
                f"Row {reader.line_num}: not valid CSV ({exc}).",
                param="content",
                code="invalid_line",
            ) from None
        if cells is None:
            break
        row = reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # a blank line
        if len(cells) != len(names):
            raise ValidationFailed(
                f"Row {row}: {len(cells)} cells, the header names {len(names)} columns.",
                param="content",
                code="invalid_line",
            )
        if len(items) >= MAX_IMPORT_ITEMS:
            raise _too_many(row)
        cell = dict(zip(names, cells, strict=True))
        body: dict[str, Any] = {}
        if key_name is not None and cell[key_name].strip():
            body["key"] = cell[key_name]
        if expected_column is not None and cell[expected_column] != "":
            body["expected_output"] = cell[expected_column]
        for name in ("request", "metadata"):
            if name in cell:
                body[name] = _json_cell(cell[name], name, row)
        if cell.get("operation"):
            body["operation"] = cell["operation"]
        if cell.get("source_span_id"):
            body["source_span_id"] = cell["source_span_id"]
        if body.get("request") is None:
            body["variables"] = {name: cell[name] for name in variable_names}
        elif any(cell[name] != "" for name in variable_names):
            raise ValidationFailed(
                f"Row {row}: a row with a request has no variables (leave their cells empty).",
                param="content",
                code="invalid_line",
            )
        items.append(parse_item(body, row, default_key=f"row-{row}"))
    if not items:
        raise _empty("CSV")
    return items


def parse_file(
    text: str,
    format: str,
    *,
    expected_column: str | None = None,
    key_column: str | None = None,
) -> list[ItemContent]:
    text = text.removeprefix("\ufeff")  # a byte order mark, as spreadsheets write
    if format == "jsonl":
        if expected_column is not None or key_column is not None:
            raise ValidationFailed(
                "expected_column and key_column are for CSV; a JSONL line names its"
                " key and expected_output itself.",
                param="expected_column" if expected_column is not None else "key_column",
            )
        return parse_jsonl(text)
    return parse_csv(text, expected_column=expected_column, key_column=key_column)


# --- writing ---------------------------------------------------------------------------


def jsonl_line(item: dict[str, Any]) -> bytes:
    """One item as an export line: its content, without empty fields or its ids."""
    content = {name: item[name] for name in ITEM_CONTENT_FIELDS if item.get(name) is not None}
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def to_jsonl(items: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(jsonl_line(item) for item in items)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def to_csv(items: Sequence[dict[str, Any]], *, expected_column: str = "expected") -> str:
    """The items as CSV: ``key``, the variables (by first appearance), then
    ``expected`` and the other columns some item needs. A variable named like one of
    those columns cannot be written (a 422: export JSONL instead)."""
    variables: dict[str, None] = {}
    for item in items:
        for name in item.get("variables") or {}:
            variables[name] = None
    extra = [
        name
        for name, field in (
            ("operation", "request"),
            ("request", "request"),
            (expected_column, "expected_output"),
            ("metadata", "metadata"),
            ("source_span_id", "source_span_id"),
        )
        if any(item.get(field) is not None for item in items)
    ]
    clash = sorted(set(variables) & {"key", expected_column, *CSV_RESERVED})
    if clash:
        raise ValidationFailed(
            f"Variable {clash[0]!r} has the name of a CSV column of its own; export as"
            " JSONL instead.",
            param="format",
        )
    names = ["key", *variables, *extra]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for item in items:
        cells = {name: _text((item.get("variables") or {}).get(name)) for name in variables}
        cells["key"] = item["key"]
        cells["operation"] = _text(item.get("operation"))
        cells["request"] = _text(item.get("request"))
        cells[expected_column] = _text(item.get("expected_output"))
        cells["metadata"] = _text(item.get("metadata"))
        cells["source_span_id"] = _text(item.get("source_span_id"))
        writer.writerow([cells[name] for name in names])
    return out.getvalue()
