"""An item as a client writes it: validation, field aliases, redaction.

An item has a ``key``, exactly one of ``variables`` (a JSON object, for a template)
and ``request`` (a whole request: messages, tools, response_format...; ``operation``
names its API dialect, ``chat`` by default), and optionally ``expected_output`` (text,
or ``{"content", "tool_calls"}``), ``metadata`` (an object) and ``source_span_id``.
Fields may be written in snake_case or camelCase (``expectedOutput``); ``expected``
is short for ``expected_output``. Secret-named fields of ``request``, ``variables``
and ``metadata`` are redacted as capture does, before anything is stored.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from gateway.capture.redaction import NestingTooDeep, nesting_depth, redact_body
from gateway.errors import ValidationFailed
from gateway.store.datasets import ITEM_CONTENT_FIELDS, ItemContent

OPERATIONS = ("chat", "completions", "responses", "messages", "embeddings")
MAX_KEY_LENGTH = 256
MAX_DEPTH = 128  # as the management API's bodies (`gateway.api.MAX_BODY_DEPTH`)
# Fields an item comes back with that a client may send back unchanged (ignored).
READ_ONLY = frozenset(
    {"id", "dataset_id", "position", "version", "created_at", "updated_at", "row"}
)
CONTENT = frozenset(ITEM_CONTENT_FIELDS)
ALIASES = {"expected": "expected_output"}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub(lambda m: "_" + m.group(1).lower(), name)


def normalized(body: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``body`` with camelCase names (and `ALIASES`) in snake_case; the same field
    given twice, differently, is refused."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        plain = snake(str(name))
        plain = ALIASES.get(plain, plain)
        if plain in out and out[plain] != value:
            raise ValidationFailed(
                f"{where}{plain!r} is given twice (as {name!r} too) with different values.",
                param=plain,
            )
        out[plain] = value
    return out


def _at(row: int | None) -> str:
    return f"Row {row}: " if row is not None else ""


def _object(value: Any, name: str, row: int | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(f"{_at(row)}{name} must be a JSON object.", param=name)
    return value


def _checked(value: Any, name: str, row: int | None) -> Any:
    """``value`` with its secret-named fields redacted; too deep a value is refused."""
    try:
        if nesting_depth(value, MAX_DEPTH) > MAX_DEPTH:
            raise NestingTooDeep()
        return redact_body(value)
    except NestingTooDeep:
        raise ValidationFailed(
            f"{_at(row)}{name} nests more than {MAX_DEPTH} levels deep.",
            param=name,
            code="too_deeply_nested",
        ) from None


def check_key(value: Any, row: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{_at(row)}key must be a non-empty string.", param="key")
    if len(value) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"{_at(row)}key is longer than {MAX_KEY_LENGTH} characters.", param="key"
        )
    return value


def new_key() -> str:
    return "item-" + secrets.token_hex(6)


def _fields(body: Any, row: int | None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed(f"{_at(row)}an item must be a JSON object.", param="items")
    fields = normalized(body, _at(row))
    unknown = set(fields) - CONTENT - READ_ONLY
    if unknown:
        raise ValidationFailed(
            f"{_at(row)}unknown field(s) {', '.join(sorted(unknown))}. An item has"
            f" {', '.join(sorted(CONTENT))}.",
            param=sorted(unknown)[0],
        )
    return {k: v for k, v in fields.items() if k in CONTENT}


def _check_values(fields: dict[str, Any], row: int | None) -> dict[str, Any]:
    """The given fields, each checked (and redacted); absent ones stay absent."""
    out: dict[str, Any] = {}
    if "key" in fields:
        out["key"] = check_key(fields["key"], row)
    for name in ("variables", "request", "metadata"):
        if name in fields:
            out[name] = _checked(_object(fields[name], name, row), name, row)
    if "expected_output" in fields:
        out["expected_output"] = _checked(fields["expected_output"], "expected_output", row)
    if "operation" in fields:
        operation = fields["operation"]
        if operation is not None and operation not in OPERATIONS:
            raise ValidationFailed(
                f"{_at(row)}operation must be one of {', '.join(OPERATIONS)}, got {operation!r}.",
                param="operation",
            )
        out["operation"] = operation
    if "source_span_id" in fields:
        span_id = fields["source_span_id"]
        if span_id is not None and (not isinstance(span_id, str) or not span_id):
            raise ValidationFailed(
                f"{_at(row)}source_span_id must be a span id (a string).", param="source_span_id"
            )
        out["source_span_id"] = span_id
    return out


def parse_item(body: Any, row: int | None = None, *, default_key: str | None = None) -> ItemContent:
    """A new item from a client's object (``row`` numbers it in an import's errors;
    without a key it gets ``default_key``, or a generated one)."""
    fields = _check_values(_fields(body, row), row)
    variables, request = fields.get("variables"), fields.get("request")
    if (variables is None) == (request is None):
        raise ValidationFailed(
            f"{_at(row)}an item needs exactly one of variables (an object, for a template)"
            " and request (a whole request).",
            param="variables" if variables is None else "request",
        )
    # A request's dialect (chat by default); a template's is its variant's to say.
    operation = (fields.get("operation") or "chat") if request is not None else None
    return ItemContent(
        key=fields.get("key") or default_key or new_key(),
        variables=variables,
        request=request,
        operation=operation,
        expected_output=fields.get("expected_output"),
        metadata=fields.get("metadata"),
        source_span_id=fields.get("source_span_id"),
        row=row,
    )


def parse_update(body: Any) -> dict[str, Any]:
    """The fields a partial update of an item changes. Giving ``variables`` makes it a
    template item (its ``request`` goes) and the other way round."""
    fields = _check_values(_fields(body, None), None)
    if "key" in fields and fields["key"] is None:
        raise ValidationFailed("key must be a non-empty string.", param="key")
    variables, request = fields.get("variables"), fields.get("request")
    if variables is not None and request is not None:
        raise ValidationFailed(
            "an item has either variables or a request, not both.", param="request"
        )
    if ("variables" in fields and variables is None and request is None) or (
        "request" in fields and request is None and variables is None
    ):
        raise ValidationFailed(
            "an item needs one of variables and request: give the other to replace it.",
            param="variables" if "variables" in fields else "request",
        )
    if variables is not None:
        fields["request"] = None
    if request is not None:
        fields["variables"] = None
    return fields
