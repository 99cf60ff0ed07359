"""The management API (JSON at the root paths: /spans, /traces, /threads, /stats...).

Handlers are small: they parse query parameters into typed values (bad ones raise
`InvalidRequest`, which the app's one exception handler turns into the error shape),
call the store, and answer with `json_response`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.capture.redaction import nesting_depth
from gateway.errors import InvalidRequest
from gateway.proxy.endpoint import body_timeout


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code)


def query_str(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value not in (None, "") else None


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer, got {raw!r}", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low} and {high}", param=name)
    return value


MAX_UNIX_SECONDS = 253_402_300_800  # 10000-01-01, past what ISO 8601 times can say


def query_time_us(request: Request, name: str) -> int | None:
    """A time given as ISO 8601 (``2025-01-31T12:00:00Z``) or Unix seconds."""
    raw = query_str(request, name)
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not -MAX_UNIX_SECONDS <= seconds <= MAX_UNIX_SECONDS:  # also false for NaN
            raise InvalidRequest(f"{name} is out of range, got {raw!r}", param=name)
        return int(seconds * 1_000_000)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{name} must be ISO 8601 or Unix seconds, got {raw!r}", param=name
        ) from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"{name} needs a time zone (e.g. a trailing Z)", param=name)
    return int(moment.timestamp() * 1_000_000)


async def read_body(request: Request) -> bytes:
    """The request body, read within ``client_body_timeout`` (else 408, and the
    connection closes: the rest of the body may still be on its way)."""
    timeout: float = request.app.state.spanlab.settings.client_body_timeout
    try:
        async with asyncio.timeout(timeout):
            return await request.body()
    except TimeoutError:
        raise body_timeout() from None


# How deeply a management API body may nest. What is stored from it is re-encoded
# (orjson writes 254 levels at most) inside history snapshots and export documents, a
# few levels deeper: this leaves room for that, and for any real request or schema.
MAX_BODY_DEPTH = 128
# The longest search text (``q``): SQLite refuses LIKE patterns past 50,000 bytes.
MAX_QUERY_TEXT = 1000


async def read_json(request: Request) -> Any:
    return json_body(await read_body(request))


def json_body(body: bytes) -> Any:
    """A request body parsed as JSON, at most `MAX_BODY_DEPTH` levels deep."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if nesting_depth(value, MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
        raise InvalidRequest(
            f"Request body nests more than {MAX_BODY_DEPTH} levels deep.",
            code="too_deeply_nested",
            param="body",
        )
    return value


def query_text(request: Request, name: str = "q") -> str | None:
    """A search text, at most `MAX_QUERY_TEXT` characters."""
    value = query_str(request, name)
    if value is not None and len(value) > MAX_QUERY_TEXT:
        raise InvalidRequest(
            f"{name} is longer than {MAX_QUERY_TEXT} characters ({len(value)}).", param=name
        )
    return value
