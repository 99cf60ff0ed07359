"""The audit log over HTTP: `audited` (the one hook: it wraps the handlers of the
routes `gateway.access.audit.AUDITED` names) and ``GET /audit`` (admin)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.access.audit import (
    AUDITED,
    AuditFilter,
    AuditLog,
    AuditRule,
    actor_of,
    audit_entry,
    iso_from_us,
    sql_database,
)
from gateway.access.guard import principal_of
from gateway.access.routes import route_methods
from gateway.api import json_response, query_int, query_str, query_time_us
from gateway.errors import ServiceUnavailable
from gateway.state import app_state

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def _audited_handler(handler: Handler, rules: dict[str, AuditRule]) -> Handler:
    async def endpoint(request: Request) -> Response:
        rule = rules.get(request.method)
        if rule is None:
            return await handler(request)
        before = principal_of(request.scope)  # sign-out takes it off the request
        response = await handler(request)
        if 200 <= response.status_code < 300:
            answer = None
            body = getattr(response, "body", None)
            if isinstance(body, bytes) and body[:1] in (b"{", b"["):
                try:
                    answer = orjson.loads(body)
                except orjson.JSONDecodeError:
                    answer = None
            actor = actor_of(request.scope, principal_of(request.scope) or before)
            entry = audit_entry(rule, request.scope, actor, request.path_params, answer)
            try:
                await app_state(request).stores.events.append(entry)
            except Exception:  # the action is done; a log failure must not hide it
                logger.exception("could not store the %s audit entry", rule.type)
        return response

    return endpoint


def audited(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with the handlers of the audited ones wrapped (the rest as given)."""
    out: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route) and inspect.iscoroutinefunction(route.endpoint):
            rules = {
                method: AUDITED[f"{method} {path}"]
                for method, path in route_methods(route)
                if f"{method} {path}" in AUDITED
            }
            if rules:
                route = Route(
                    route.path,
                    _audited_handler(route.endpoint, rules),
                    methods=sorted(route.methods or ()),
                    name=route.name,
                )
        out.append(route)
    return out


async def list_audit(request: Request) -> Response:
    """Entries newest first: ``type`` (exact, or a prefix ending in ``.`` or ``*``),
    ``subject``, ``actor``, ``since``/``until`` (ISO 8601 or Unix seconds),
    ``limit``, ``cursor``."""
    database = sql_database(app_state(request).stores.database)
    if database is None:
        raise ServiceUnavailable("The audit log needs a SQL database.", code="audit_unavailable")
    since, until = query_time_us(request, "since"), query_time_us(request, "until")
    filters = AuditFilter(
        type=query_str(request, "type"),
        subject_id=query_str(request, "subject"),
        actor=query_str(request, "actor"),
        since=iso_from_us(since) if since is not None else None,
        until=iso_from_us(until) if until is not None else None,
    )
    page = await AuditLog(database).list(
        filters,
        limit=query_int(request, "limit", 100, low=1, high=1000),
        cursor=query_str(request, "cursor"),
    )
    return json_response({"data": page.items, "next_cursor": page.next_cursor})


def routes() -> list[BaseRoute]:
    return [Route("/audit", list_audit, methods=["GET"])]
