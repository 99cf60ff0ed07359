"""The datasets API: datasets, their items by version, items from captured spans,
JSONL/CSV import and export, version history.

Handlers parse and answer; `gateway.datasets.service.DatasetService` does the work.
Bodies are read up to ``max_body_bytes`` (413 past it). The JSON shapes are
documented in ``docs/api.md``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.api import json_body, json_response, query_int, query_str, query_text
from gateway.api.spans import span_filter
from gateway.datasets.service import DatasetService, change_summary
from gateway.errors import BodyTooLarge, InvalidRequest, ValidationFailed
from gateway.http.guard import RAW_IMPORT_TYPES, media_type
from gateway.proxy.endpoint import body_timeout
from gateway.state import app_state
from gateway.store.datasets import DatasetFilter

EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def service(request: Request) -> DatasetService:
    state = app_state(request)

    async def flush() -> None:
        await state.writer.flush(state.settings.flush_timeout_s)

    return DatasetService(state.stores.datasets, state.stores.spans, flush=flush)


async def read_json_limited(request: Request) -> Any:
    """The JSON body, at most ``max_body_bytes`` (else 413) and within
    ``client_body_timeout`` (else 408); the connection closes after either, as the
    rest of the body may still be on its way."""
    body = await read_limited(request)
    if not body.strip():
        return None
    return json_body(body)


async def read_limited(request: Request) -> bytes:
    """The body's bytes, within the limits of `read_json_limited`."""
    settings = app_state(request).settings
    limit = settings.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.client_body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(
                        f"Request body is larger than max_body_bytes ({limit} bytes).",
                        headers={"connection": "close"},
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise body_timeout() from None
    return b"".join(chunks)


def query_version(request: Request) -> int | None:
    raw = query_str(request, "version")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"version must be an integer, got {raw!r}", param="version") from None
    if value < 1:
        raise InvalidRequest("version must be 1 or more", param="version")
    return value


def _id(request: Request) -> str:
    value: str = request.path_params["dataset_id"]
    return value


def _item_id(request: Request) -> str:
    value: str = request.path_params["item_id"]
    return value


async def _body(request: Request) -> Any:
    body = await read_json_limited(request)
    if body is None:
        raise InvalidRequest("This request needs a JSON body.", param="body", code="missing_body")
    return body


async def create_dataset(request: Request) -> Response:
    change = await service(request).create(await _body(request))
    return json_response(change.dataset.as_dict(), status_code=201)


async def list_datasets(request: Request) -> Response:
    filters = DatasetFilter(project=query_str(request, "project"), text=query_text(request))
    page = await service(request).list_datasets(
        filters,
        limit=query_int(request, "limit", 50, low=1, high=1000),
        cursor=query_str(request, "cursor"),
    )
    return json_response({"data": page.items, "next_cursor": page.next_cursor})


async def get_dataset(request: Request) -> Response:
    return json_response((await service(request).get(_id(request))).as_dict())


async def update_dataset(request: Request) -> Response:
    dataset = await service(request).update(_id(request), await _body(request))
    return json_response(dataset.as_dict())


async def delete_dataset(request: Request) -> Response:
    await service(request).delete(_id(request))
    return Response(status_code=204)


async def list_items(request: Request) -> Response:
    page, version = await service(request).items(
        _id(request),
        version=query_version(request),
        limit=query_int(request, "limit", 100, low=1, high=1000),
        cursor=query_str(request, "cursor"),
    )
    return json_response({"data": page.items, "next_cursor": page.next_cursor, "version": version})


async def add_items(request: Request) -> Response:
    change = await service(request).add_items(_id(request), await _body(request))
    out = {**change_summary(change), "data": [item.as_dict() for item in change.added]}
    return json_response(out, status_code=201)


async def get_item(request: Request) -> Response:
    item = await service(request).item(
        _id(request), _item_id(request), version=query_version(request)
    )
    return json_response(item.as_dict())


async def update_item(request: Request) -> Response:
    item = await service(request).update_item(_id(request), _item_id(request), await _body(request))
    return json_response(item.as_dict())


async def delete_item(request: Request) -> Response:
    await service(request).delete_item(_id(request), _item_id(request))
    return Response(status_code=204)


async def items_from_spans(request: Request) -> Response:
    # The filters are GET /spans's, in the query string; the options in the body.
    filters = span_filter(request)
    result = await service(request).from_spans(
        _id(request), filters, await read_json_limited(request)
    )
    change = result.change
    out = {
        **change_summary(change),
        "matched": result.matched,
        "skipped": result.skipped,
        "data": [item.as_dict() for item in change.added],
    }
    return json_response(out, status_code=201)


async def import_items(request: Request) -> Response:
    change = await service(request).import_(_id(request), await _import_body(request))
    return json_response(change_summary(change), status_code=201)


async def _import_body(request: Request) -> Any:
    """The import's fields: the JSON body, or a file sent as is (``text/csv``, JSON
    Lines; the guard lets only those through besides JSON) with the options in the
    query string (``expected_column``, ``key_column``, ``on_conflict``, ``format``)."""
    content_type = request.headers.get("content-type", "")
    if media_type(content_type.encode("latin-1")) not in RAW_IMPORT_TYPES:
        return await _body(request)
    fields: dict[str, Any] = dict(request.query_params)
    if "content" in fields:
        raise InvalidRequest("The file is the body: content cannot be a query parameter.")
    raw = await read_limited(request)
    try:
        fields["content"] = raw.decode("utf-8-sig")  # a spreadsheet's byte order mark
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValidationFailed(
            f"Line {line}: the file is not UTF-8 text (byte {exc.start}).", param="content"
        ) from None
    fields["content_type"] = content_type
    return fields


async def export_items(request: Request) -> Response:
    format = query_str(request, "format") or "jsonl"
    dataset_id = _id(request)
    body, version = await service(request).export(dataset_id, format, query_version(request))
    return Response(
        body,
        media_type=EXPORT_TYPES[format],
        headers={
            "content-disposition": f'attachment; filename="{dataset_id}-v{version}.{format}"',
            "x-spanlab-dataset-version": str(version),
        },
    )


async def list_versions(request: Request) -> Response:
    versions = await service(request).versions(_id(request))
    return json_response({"data": [v.as_dict() for v in versions]})


def routes() -> list[BaseRoute]:
    # Fixed paths before the {item_id} ones, which would otherwise take them.
    base = "/datasets/{dataset_id}"
    return [
        Route("/datasets", list_datasets, methods=["GET"]),
        Route("/datasets", create_dataset, methods=["POST"]),
        Route(base, get_dataset, methods=["GET"]),
        Route(base, update_dataset, methods=["PUT", "PATCH"]),
        Route(base, delete_dataset, methods=["DELETE"]),
        Route(base + "/items", list_items, methods=["GET"]),
        Route(base + "/items", add_items, methods=["POST"]),
        Route(base + "/items/from-spans", items_from_spans, methods=["POST"]),
        Route(base + "/items/{item_id}", get_item, methods=["GET"]),
        Route(base + "/items/{item_id}", update_item, methods=["PUT", "PATCH"]),
        Route(base + "/items/{item_id}", delete_item, methods=["DELETE"]),
        Route(base + "/import", import_items, methods=["POST"]),
        Route(base + "/export", export_items, methods=["GET"]),
        Route(base + "/versions", list_versions, methods=["GET"]),
    ]
