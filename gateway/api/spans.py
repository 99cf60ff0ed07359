"""Read API for captured calls: spans, traces, threads, stats, facets.

Every span list and `/stats` takes ``origin`` (any of a comma-separated list of
origins, `gateway.capture.origin`: ``origin=app`` is the app's own calls) and
``exclude_origin`` (none of them: ``exclude_origin=experiment`` hides the replays).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api import json_response, query_int, query_str, query_text, query_time_us
from gateway.capture.origin import ORIGIN_NAME
from gateway.capture.otel import genai_attributes
from gateway.capture.rollup import PERCENTILE_ERROR
from gateway.capture.span import SPAN_STATUSES
from gateway.errors import InvalidRequest, NotFound
from gateway.state import app_state
from gateway.store.spans import SpanFilter


def query_origins(request: Request, name: str) -> tuple[str, ...] | None:
    """A comma-separated list of origins (``app,experiment``), each a short word."""
    raw = query_str(request, name)
    if raw is None:
        return None
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    bad = [v for v in values if not ORIGIN_NAME.match(v)]
    if bad or not values:
        raise InvalidRequest(
            f"{name} must be origins separated by commas (e.g. app,experiment), got {raw!r}",
            param=name,
        )
    return values


def span_filter(request: Request) -> SpanFilter:
    status = query_str(request, "status")
    if status is not None and status not in SPAN_STATUSES:
        raise InvalidRequest(
            f"status must be one of {', '.join(SPAN_STATUSES)}, got {status!r}", param="status"
        )
    return SpanFilter(
        project=query_str(request, "project"),
        thread=query_str(request, "thread"),
        run=query_str(request, "run"),
        trace=query_str(request, "trace"),
        model=query_str(request, "model"),
        provider=query_str(request, "provider"),
        status=status,
        label=query_str(request, "label"),
        operation=query_str(request, "operation"),
        text=query_text(request),
        since_us=query_time_us(request, "since"),
        until_us=query_time_us(request, "until"),
        origins=query_origins(request, "origin"),
        exclude_origins=query_origins(request, "exclude_origin"),
    )


async def list_spans(request: Request) -> Response:
    store = app_state(request).stores.spans
    page = await store.list_spans(
        span_filter(request),
        limit=query_int(request, "limit", 50, low=1, high=1000),
        cursor=query_str(request, "cursor"),
    )
    return json_response({"data": page.items, "next_cursor": page.next_cursor})


async def span_facets(request: Request) -> Response:
    """The values the filters can take, for dropdowns: ``{"models": [...],
    "providers": [...], "labels": [...], "operations": [...], "origins": [...]}``
    (``project``: one project's)."""
    facets = await app_state(request).stores.spans.facets(
        limit=query_int(request, "limit", 1000, low=1, high=10_000),
        project=query_str(request, "project"),
    )
    return json_response({f"{kind}s": values for kind, values in facets.items()})


async def get_span(request: Request) -> Response:
    state = app_state(request)
    span_id = request.path_params["span_id"]
    span = await state.stores.spans.get_span(span_id)
    if span is None:
        raise NotFound(f"No span with id {span_id!r}.", param="span_id")
    provider = state.settings.providers.get(span.get("provider") or "")
    span["otel_attributes"] = genai_attributes(span, provider.kind if provider else None)
    return json_response(span)


async def get_trace(request: Request) -> Response:
    trace_id = request.path_params["trace_id"]
    spans = await app_state(request).stores.spans.get_trace(trace_id)
    if not spans:
        raise NotFound(f"No trace with id {trace_id!r}.", param="trace_id")
    return json_response({"trace_id": trace_id, "spans": spans})


async def list_threads(request: Request) -> Response:
    threads = await app_state(request).stores.spans.list_threads(
        project=query_str(request, "project"),
        limit=query_int(request, "limit", 50, low=1, high=1000),
        offset=query_int(request, "offset", 0, low=0, high=10_000_000),
    )
    return json_response({"data": threads})


async def stats(request: Request) -> Response:
    """Totals per group. Large ranges are answered from the rollup the writer keeps
    (exact sums and counts, p50/p95 within ``percentile_error``); ``exact=true``
    forces the scan of the spans."""
    group_by = query_str(request, "group_by") or "model"
    exact = query_str(request, "exact")
    if exact not in (None, "true", "false"):
        raise InvalidRequest(f"exact must be true or false, got {exact!r}", param="exact")
    answer = await app_state(request).stores.spans.stats_answer(
        group_by, span_filter(request), exact=exact == "true"
    )
    return json_response(
        {
            "group_by": group_by,
            "data": answer.rows,
            "approximate_percentiles": answer.approximate,
            "percentile_error": PERCENTILE_ERROR if answer.approximate else 0.0,
        }
    )
