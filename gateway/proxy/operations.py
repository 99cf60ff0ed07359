"""The proxy's surface: the operations it serves (client path -> operation), which
need a model and which stream in which format, which headers are hop-by-hop, and
`ProxyRequest`, the call as the pipeline reads it (with `parse_body` for its body).

Split from gateway/proxy/pipeline.py: the endpoint, the app's routes and the
experiment runner need these facts without needing the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.types import Scope

from gateway.capture.span import SpanContext
from gateway.errors import InvalidJSON

# Client path -> operation name.
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/models": "models",
}
# GET /v1/models/{id} (a model's details) is the "models" operation too.
MODEL_PATH = "/v1/models/"
MODEL_REQUIRED = frozenset(
    {"chat", "completions", "embeddings", "responses", "messages", "count_tokens"}
)
STREAM_FORMATS = {
    "chat": "chat",
    "completions": "completions",
    "responses": "responses",
    "messages": "anthropic",
}
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Not forwarded upstream: hop-by-hop, what httpx sets itself, and the W3C parent
# (replaced by one naming this span).
DROP_REQUEST_HEADERS = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "traceparent"}
# Not forwarded to the client: the body is re-framed (and decoded) by this server, and
# the server writes its own Date (a response may carry only one).
DROP_RESPONSE_HEADERS = HOP_BY_HOP | {"content-length", "content-encoding", "date"}


@dataclass(slots=True)
class ProxyRequest:
    operation: str
    method: str
    path: str
    headers: list[tuple[str, str]]  # names lower case
    body: bytes = b""
    query: str = ""
    context: SpanContext | None = None
    payload: dict[str, Any] | None = None  # already parsed (in-process callers)
    capture: bool = True  # False: the gateway's own call (e.g. the UI's model list)
    charge: str | None = None  # the gateway key the call is counted for (quotas)


class QuotaGate(Protocol):
    """The quotas as the proxy sees them (`gateway.quotas.QuotaService`): who a
    request's calls are counted for, and the admission of one call (raises a
    `gateway.errors.QuotaExceeded`). No I/O: a dict lookup and compares."""

    def charge_of(self, scope: Scope) -> str | None: ...

    def admit(self, key_id: str, project_id: str | None, operation: str) -> None: ...


def connection_tokens(headers: list[tuple[str, str]]) -> set[str]:
    """Header names a ``Connection`` header declares hop-by-hop (RFC 9110 7.6.1)."""
    return {
        token.strip().lower()
        for name, value in headers
        if name == "connection"
        for token in value.split(",")
    }


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidJSON("Request body must be a JSON object.")
    return payload
