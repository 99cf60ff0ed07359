"""The merged model list: ``GET /v1/models`` without an ``x-spanlab-provider`` header.

Every configured provider is asked for its models at once, each within
``models_timeout``; the answer lists them all, in provider order, under ids that route
back to them:

* a model is listed under its bare name when a bare call with that name reaches that
  very provider and model (the default provider's models, a Claude model that rule 3
  sends to the Anthropic provider), else as ``provider/model``. So each model appears
  once, under the shortest id that routes to it, and a one-provider gateway lists
  exactly what its upstream lists;
* a provider that fails (an error status, a body that is no model list, no answer in
  time) is left out, with one log line naming the provider and what went wrong (a
  status and an error code: never a body, which may echo a key). When every provider
  fails, the home provider's error answer (else the first one's) is the answer, as a
  single-provider list gave it before; with no answer at all, 504 (all timed out) or
  502;
* a client's own credential goes only to its home provider, the one its bare calls go
  to (``default_provider``; for the Anthropic shape, the provider bare ``claude-*``
  names reach): listing models must not hand one provider's key to every upstream.
  The others are asked with their configured key (``api_key_env``, ``headers``, or a
  base_url's user:password) or with none.

Two shapes, chosen by the request the way the SDKs send it:

* OpenAI (``{"object": "list", "data": [{"id", "object", "created", "owned_by"}]}``)
  for the OpenAI SDK: every provider; an Anthropic provider's models are converted;
* Anthropic (``{"data": [{"type": "model", "id", "display_name", "created_at"}],
  "has_more", "first_id", "last_id"}``) when the request carries ``anthropic-version``
  (every Anthropic SDK call does): the Anthropic-kind providers only, since the others
  cannot serve ``/v1/messages``; paged with ``limit`` / ``after_id`` / ``before_id``
  as the Anthropic API pages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from gateway.capture.span import STATUS_ERROR, Span, now_us
from gateway.config import ProviderConfig
from gateway.errors import InvalidRequest, SpanlabError, UpstreamError, UpstreamTimeout
from gateway.proxy.providers import Router
from gateway.proxy.providers.base import CREDENTIAL_HEADERS
from gateway.proxy.sink import ListSink, ResponseSink

logger = logging.getLogger(__name__)

ANTHROPIC_VERSION_HEADER = "anthropic-version"
# The Anthropic API pages its model list (20 by default, at most 1000 a page).
ANTHROPIC_DEFAULT_LIMIT = 20
ANTHROPIC_MAX_LIMIT = 1000
UPSTREAM_PAGES_MAX = 10  # pages followed per Anthropic provider (10,000 models)
ATTRIBUTE = "spanlab.model_list"  # the span attribute naming what each provider answered

Headers = list[tuple[str, str]]


# (provider name, request headers, query string, sink): one provider's own model list,
# through the proxy pipeline (its routing, credentials, URL and error handling).
Fetch = Callable[[str, Headers, str, ListSink], Awaitable[None]]
# Not carried over from a provider's error answer: the sub-call's own span ids and
# framing (the merged answer has its own).
DROPPED_FAILURE_HEADERS = frozenset(
    {b"content-length", b"x-spanlab-trace-id", b"x-spanlab-span-id"}
)


@dataclass(slots=True)
class Listing:
    """What one provider answered."""

    provider: ProviderConfig
    models: list[dict[str, Any]] = field(default_factory=list)
    failure: ListSink | None = None  # its error answer, when it gave one
    error: str | None = None  # why it is left out (for the log and the span)
    timed_out: bool = False


@dataclass(slots=True)
class ModelListAnswer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]  # besides content-length
    providers: dict[str, dict[str, Any]]  # provider -> {"models": n} or {"error": ...}


def wants_anthropic(headers: Sequence[tuple[str, str]]) -> bool:
    return any(name == ANTHROPIC_VERSION_HEADER for name, _ in headers)


class ModelLists:
    def __init__(self, router: Router, timeout: float) -> None:
        self.router = router
        self.timeout = timeout

    def home(self, anthropic: bool) -> str | None:
        """The provider a client's bare calls go to: the one that may see its key."""
        default = self.router.providers.get(self.router.default or "")
        if not anthropic:
            return default.name if default is not None else None
        if default is not None and default.kind == "anthropic":
            return default.name
        return self.router.claude.name if self.router.claude is not None else None

    async def answer(self, headers: Headers, query: str, fetch: Fetch) -> ModelListAnswer:
        anthropic = wants_anthropic(headers)
        page = _anthropic_page(query) if anthropic else None
        providers = [
            p for p in self.router.providers.values() if not anthropic or p.kind == "anthropic"
        ]
        home = self.home(anthropic)
        others = [(k, v) for k, v in headers if k not in CREDENTIAL_HEADERS]
        listings = await asyncio.gather(
            *(self._list(fetch, p, headers if p.name == home else others) for p in providers)
        )
        report: dict[str, dict[str, Any]] = {}
        for listing in listings:
            if listing.error is not None:
                report[listing.provider.name] = {"error": listing.error}
                logger.warning(
                    "model list: provider %r left out: %s", listing.provider.name, listing.error
                )
            else:
                report[listing.provider.name] = {"models": len(listing.models)}
        failed = [item for item in listings if item.error is not None]
        if listings and len(failed) == len(listings):
            # The home provider's answer, else the first provider's that answered at all
            # (an upstream's own error passes through, as it would for any one call).
            answered = [item for item in failed if item.failure is not None]
            answered.sort(key=lambda item: item.provider.name != home)
            if not answered:
                reasons = "; ".join(f"{i.provider.name!r}: {i.error}" for i in failed)
                error = UpstreamTimeout if all(i.timed_out for i in failed) else UpstreamError
                raise error(f"No provider listed its models ({reasons}).")
            failure = answered[0].failure
            assert failure is not None
            kept = [(k, v) for k, v in failure.headers if k not in DROPPED_FAILURE_HEADERS]
            return ModelListAnswer(failure.status, bytes(failure.body), kept, report)
        entries = self._merge(listings, anthropic)
        if page is not None:
            body = _anthropic_body(entries, *page)
        else:
            body = {"object": "list", "data": entries}
        return ModelListAnswer(
            200, orjson.dumps(body), [(b"content-type", b"application/json")], report
        )

    async def respond(
        self, headers: Headers, query: str, fetch: Fetch, span: Span, sink: ResponseSink
    ) -> None:
        """Answer the client with the merged list; ``span`` records it, naming what each
        provider answered in its attributes."""
        answer = await self.answer(headers, query, fetch)
        span.context.attributes[ATTRIBUTE] = answer.providers
        span.http_status = answer.status
        if answer.status >= 400:
            span.status = STATUS_ERROR
        span.response_body = answer.body
        out = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
        out.append((b"x-spanlab-trace-id", span.context.trace_id.encode()))
        out.append((b"x-spanlab-span-id", span.context.span_id.encode()))
        await sink.start(answer.status, out)
        await sink.send(answer.body)
        await sink.end()
        span.end_us = now_us()

    async def _list(self, fetch: Fetch, provider: ProviderConfig, headers: Headers) -> Listing:
        listing = Listing(provider)
        try:
            async with asyncio.timeout(self.timeout):
                await self._pages(fetch, listing, headers)
        except TimeoutError:
            listing.error = f"no answer within models_timeout ({self.timeout:g}s)"
            listing.failure, listing.timed_out = None, True
        except Exception as exc:  # logged by the pipeline; one provider, not the list
            listing.error = f"internal error ({type(exc).__name__})"
            listing.failure = None
        return listing

    async def _pages(self, fetch: Fetch, listing: Listing, headers: Headers) -> None:
        provider = listing.provider
        params: dict[str, str] = {}
        if provider.kind == "anthropic":
            params["limit"] = str(ANTHROPIC_MAX_LIMIT)
        for _ in range(UPSTREAM_PAGES_MAX):
            sink = ListSink()
            await fetch(provider.name, headers, urlencode(params), sink)
            if sink.status != 200:
                listing.failure = sink
                listing.error = f"HTTP {sink.status}{_error_code(sink.body)}"
                return
            try:
                data = orjson.loads(sink.body)
            except orjson.JSONDecodeError:
                data = None
            items = data.get("data") if isinstance(data, dict) else data
            if not isinstance(items, list):
                listing.failure = sink
                listing.error = "the answer is not a model list"
                return
            listing.models += [m for m in items if isinstance(m, dict) and _id(m)]
            more = isinstance(data, dict) and data.get("has_more") is True
            last = data.get("last_id") if isinstance(data, dict) else None
            if not (provider.kind == "anthropic" and more and isinstance(last, str)):
                return
            params["after_id"] = last

    def _merge(self, listings: Sequence[Listing], anthropic: bool) -> list[dict[str, Any]]:
        seen: set[str] = set()
        entries: list[dict[str, Any]] = []
        for listing in listings:
            provider = listing.provider
            for model in listing.models:
                name = _id(model)
                routed = self.routed_id(provider, name)
                if routed in seen:
                    continue
                seen.add(routed)
                if anthropic:
                    entries.append({**model, "id": routed})
                elif provider.kind == "anthropic":
                    entries.append(_openai_entry(model, routed, provider.name))
                else:
                    entries.append({**model, "id": routed})
        return entries

    def routed_id(self, provider: ProviderConfig, model: str) -> str:
        """``model`` bare when a bare call with it reaches ``provider`` unchanged, else
        ``provider/model``."""
        try:
            route = self.router.resolve(model)
        except SpanlabError:
            route = None
        if route is not None and (route.provider.name, route.upstream_model) == (
            provider.name,
            model,
        ):
            return model
        return f"{provider.name}/{model}"


def _id(model: Mapping[str, Any]) -> str:
    value = model.get("id")
    return value if isinstance(value, str) else ""


def _error_code(body: bytes | bytearray) -> str:
    """`` (code)`` of an error body, for the log line: the code only, never the
    message (an upstream may repeat the key it was sent there)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    code = error.get("code") or error.get("type")
    return f" ({code})" if isinstance(code, str) and len(code) <= 64 else ""


def _openai_entry(model: Mapping[str, Any], routed: str, owner: str) -> dict[str, Any]:
    """An Anthropic model entry in the OpenAI list's shape."""
    created = 0
    stamp = model.get("created_at")
    if isinstance(stamp, str):
        try:
            created = int(datetime.fromisoformat(stamp).timestamp())
        except ValueError:
            created = 0
    entry: dict[str, Any] = {"id": routed, "object": "model", "created": created, "owned_by": owner}
    if isinstance(model.get("display_name"), str):
        entry["display_name"] = model["display_name"]
    return entry


def _anthropic_page(query: str) -> tuple[int, str | None, str | None]:
    """(limit, after_id, before_id) of an Anthropic-style list request."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    raw = params.get("limit")
    limit = ANTHROPIC_DEFAULT_LIMIT
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= ANTHROPIC_MAX_LIMIT:
            raise InvalidRequest(
                f"limit must be an integer from 1 to {ANTHROPIC_MAX_LIMIT}.", param="limit"
            )
    return limit, params.get("after_id") or None, params.get("before_id") or None


def _anthropic_body(
    entries: list[dict[str, Any]], limit: int, after: str | None, before: str | None
) -> dict[str, Any]:
    ids = [entry["id"] for entry in entries]
    if before is not None:
        end = ids.index(before) if before in ids else 0
        start = max(0, end - limit)
        page, has_more = entries[start:end], start > 0
    else:
        start = ids.index(after) + 1 if after is not None and after in ids else 0
        if after is not None and after not in ids:
            start = len(entries)  # an unknown cursor: past the end, as an empty page
        page, has_more = entries[start : start + limit], start + limit < len(entries)
    return {
        "data": page,
        "has_more": has_more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
