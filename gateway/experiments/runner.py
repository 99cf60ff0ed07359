"""One run of an experiment through the proxy pipeline: where it may go, and the
request the pipeline gets (the in-process sink that collects or relays the response
is `gateway.proxy.sink.CollectingSink`).

The result span is a new trace in the original's thread, labelled ``experiment``; its
attributes name the experiment, the run and the original span, and it carries an
OpenTelemetry span link to the original (when the original's ids are W3C ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.capture.span import SpanContext, new_span_id, new_trace_id
from gateway.errors import InvalidRequest
from gateway.proxy.operations import OPERATIONS, ProxyRequest
from gateway.proxy.pipeline import ProxyPipeline
from gateway.proxy.providers import PROVIDER_HEADER
from gateway.proxy.providers.base import CREDENTIAL_HEADERS

LABEL = "experiment"
ATTR_EXPERIMENT = "spanlab.experiment.id"
ATTR_RUN = "spanlab.experiment.run.id"
ATTR_ORIGINAL_SPAN = "spanlab.original_span.id"
ATTR_ORIGINAL_TRACE = "spanlab.original_trace.id"
LINK_TYPE = "spanlab.link.type"

OPERATION_PATHS = {operation: path for path, operation in OPERATIONS.items()}


def check_route(
    pipeline: ProxyPipeline,
    experiment: Mapping[str, Any],
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    credentials: Sequence[tuple[str, str]],
    original: Mapping[str, Any] | None,
) -> str:
    """Where the run goes (a configured provider: routing never takes a URL), and
    whether it has a credential to go with it."""
    route = pipeline.router.resolve(payload["model"], headers.get(PROVIDER_HEADER))
    provider = route.provider
    # The pipeline's own rule (an OpenAI chat call may go to an Anthropic provider,
    # translated; a Messages call only to one), so a run is refused before it starts.
    pipeline.check_dialect(experiment["operation"], route)
    if provider.api_key() or credentials:
        return provider.name
    if provider.api_key_env:
        raise InvalidRequest(
            f"Provider {provider.name!r} takes its key from ${provider.api_key_env}, which"
            " is not set where the gateway runs, and this run request carries no"
            " credential. Set the variable, or send your own Authorization header with"
            " the run (`spanlab replay --api-key`).",
            code="missing_credential",
        )
    original_headers = (original or {}).get("request_headers") or {}
    used = sorted(k for k in original_headers if k in CREDENTIAL_HEADERS)
    if used:
        raise InvalidRequest(
            f"The original call authenticated with its own {used[0]} header, which"
            f" Spanlab never stores, and provider {provider.name!r} has no configured"
            " key (api_key_env). Send your Authorization header with the run"
            " (`spanlab replay --api-key`), or configure a key for the provider.",
            code="missing_credential",
        )
    return provider.name


def proxy_request(
    experiment: Mapping[str, Any],
    run: Mapping[str, Any],
    payload: dict[str, Any],
    headers: Mapping[str, str],
    credentials: Sequence[tuple[str, str]],
    original: Mapping[str, Any] | None,
) -> ProxyRequest:
    original_span = experiment["original_span_id"]
    original_trace = experiment["original_trace_id"]
    links = span_links(original_trace, original_span, experiment["id"])
    context = SpanContext(
        trace_id=new_trace_id(),
        span_id=new_span_id(),
        project_id=experiment.get("project_id") or (original or {}).get("project_id"),
        thread_id=(original or {}).get("thread_id"),
        label=LABEL,
        attributes={
            ATTR_EXPERIMENT: experiment["id"],
            ATTR_RUN: run["id"],
            ATTR_ORIGINAL_SPAN: original_span,
            ATTR_ORIGINAL_TRACE: original_trace,
        },
        links=links,
    )
    return build_request(experiment["operation"], context, payload, headers, credentials)


def span_links(trace_id: Any, span_id: Any, experiment_id: str) -> list[dict[str, Any]]:
    """An OpenTelemetry link to the call replayed (when its ids are W3C ids)."""
    if not (_is_hex(trace_id, 32) and _is_hex(span_id, 16)):
        return []
    return [
        {
            "trace_id": trace_id,
            "span_id": span_id,
            "attributes": {LINK_TYPE: "replay_of", ATTR_EXPERIMENT: experiment_id},
        }
    ]


def build_request(
    operation: str,
    context: SpanContext,
    payload: dict[str, Any],
    headers: Mapping[str, str],
    credentials: Sequence[tuple[str, str]],
) -> ProxyRequest:
    """The in-process request the pipeline takes for one experiment call (a seed-1 run
    or a matrix cell), its span described by ``context``."""
    accept = "text/event-stream" if payload.get("stream") else "application/json"
    request_headers = [("content-type", "application/json"), ("accept", accept)]
    request_headers += [(k, v) for k, v in headers.items() if k not in ("content-type",)]
    request_headers += list(credentials)
    return ProxyRequest(
        operation=operation,
        method="POST",
        path=OPERATION_PATHS[operation],
        headers=request_headers,
        context=context,
        payload=payload,
    )


def _is_hex(value: Any, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and all(c in "0123456789abcdef" for c in value)
    )
