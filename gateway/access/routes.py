"""Every route's scope, in one table.

``ROUTE_SCOPES`` maps ``"METHOD /path"`` (the path as the route declares it, with its
``{parameters}``) to what a request needs:

- ``open``: anyone (the UI's files, sign-in, ``/healthz``, which then says nothing
  private to a caller without ``read``);
- ``proxy``, ``read``, ``write``, ``admin``: a key with that scope (``write`` implies
  ``read``; ``admin`` implies all);
- ``metrics``: ``read``, or the ``metrics_token`` setting as a bearer token (what a
  Prometheus scraper sends).

HEAD is judged as GET. A route with no entry needs ``admin`` (fail closed), and
``tests/test_access_routes.py`` fails the suite for it, printing the line to add.
A path no route matches needs ``read`` (so a 404 is not told to a stranger).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.routing import BaseRoute, Route

OPEN = "open"
METRICS = "metrics"
UNLISTED = "admin"
UNMATCHED = "read"
REQUIREMENTS = (OPEN, "proxy", "read", "write", "admin", METRICS)

ROUTE_SCOPES: dict[str, str] = {
    # The proxy (OpenAI- and Anthropic-compatible)
    "POST /v1/chat/completions": "proxy",
    "POST /v1/completions": "proxy",
    "POST /v1/embeddings": "proxy",
    "POST /v1/responses": "proxy",
    "POST /v1/messages": "proxy",
    "POST /v1/messages/count_tokens": "proxy",
    "GET /v1/models": "proxy",
    "GET /v1/models/{model_id:path}": "proxy",
    # Spans and the system
    "GET /spans": "read",
    "GET /spans/facets": "read",
    "GET /spans/{span_id}": "read",
    "GET /traces/{trace_id}": "read",
    "GET /threads": "read",
    "GET /stats": "read",
    "GET /events": "read",
    "GET /healthz": OPEN,
    "GET /models": "read",
    "GET /metrics": METRICS,
    # Experiments
    "GET /experiments": "read",
    "POST /experiments": "write",
    "GET /experiments/export": "read",
    "POST /experiments/import": "write",
    "GET /experiments/by-span/{span_id}": "read",
    "GET /experiments/{experiment_id}": "read",
    "PUT /experiments/{experiment_id}": "write",
    "PATCH /experiments/{experiment_id}": "write",
    "DELETE /experiments/{experiment_id}": "write",
    "POST /experiments/{experiment_id}/run": "write",
    "GET /experiments/{experiment_id}/variants": "read",
    "POST /experiments/{experiment_id}/variants": "write",
    "PUT /experiments/{experiment_id}/variants/{variant_id}": "write",
    "PATCH /experiments/{experiment_id}/variants/{variant_id}": "write",
    "DELETE /experiments/{experiment_id}/variants/{variant_id}": "write",
    "GET /experiments/{experiment_id}/inputs": "read",
    "POST /experiments/{experiment_id}/inputs": "write",
    "DELETE /experiments/{experiment_id}/inputs/{input_id}": "write",
    "GET /experiments/{experiment_id}/progress": "read",
    "GET /experiments/{experiment_id}/progress/events": "read",
    "POST /experiments/{experiment_id}/cancel": "write",
    "POST /experiments/{experiment_id}/estimate": "read",
    "GET /experiments/{experiment_id}/runs": "read",
    "GET /experiments/{experiment_id}/runs/{run_id}": "read",
    "GET /experiments/{experiment_id}/compare": "read",
    "POST /experiments/{experiment_id}/duplicate": "write",
    "GET /experiments/{experiment_id}/export": "read",
    "GET /experiments/{experiment_id}/history": "read",
    "POST /experiments/{experiment_id}/history/{version}/restore": "write",
    # Datasets
    "GET /datasets": "read",
    "POST /datasets": "write",
    "GET /datasets/{dataset_id}": "read",
    "PUT /datasets/{dataset_id}": "write",
    "PATCH /datasets/{dataset_id}": "write",
    "DELETE /datasets/{dataset_id}": "write",
    "GET /datasets/{dataset_id}/items": "read",
    "POST /datasets/{dataset_id}/items": "write",
    "POST /datasets/{dataset_id}/items/from-spans": "write",
    "GET /datasets/{dataset_id}/items/{item_id}": "read",
    "PUT /datasets/{dataset_id}/items/{item_id}": "write",
    "PATCH /datasets/{dataset_id}/items/{item_id}": "write",
    "DELETE /datasets/{dataset_id}/items/{item_id}": "write",
    "POST /datasets/{dataset_id}/import": "write",
    "GET /datasets/{dataset_id}/export": "read",
    "GET /datasets/{dataset_id}/versions": "read",
    # The playground (its calls spend provider money: write, not read)
    "POST /playground/complete": "write",
    "GET /playground/sessions": "read",
    "GET /playground/sessions/{session_id}": "read",
    "DELETE /playground/sessions/{session_id}": "write",
    "POST /playground/sessions/{session_id}/experiment": "write",
    # Evaluation: feedback and scores (an app sends its users' feedback on a span with
    # a key that has write), metric definitions, results
    "POST /experiments/runs/{run_id}/feedback": "write",
    "GET /experiments/runs/{run_id}/feedback": "read",
    "POST /experiments/runs/{run_id}/scores": "write",
    "GET /experiments/runs/{run_id}/scores": "read",
    "POST /spans/{span_id}/feedback": "write",
    "GET /spans/{span_id}/feedback": "read",
    "POST /spans/{span_id}/scores": "write",
    "GET /spans/{span_id}/scores": "read",
    "GET /spans/{span_id}/evaluation": "read",
    "GET /experiments/{experiment_id}/scores": "read",
    "GET /experiments/{experiment_id}/feedback": "read",
    "DELETE /scores/{score_id}": "write",
    "GET /metric-definitions": "read",
    "POST /metric-definitions": "write",
    "GET /metric-definitions/{key}": "read",
    "PATCH /metric-definitions/{key}": "write",
    "PUT /metric-definitions/{key}": "write",
    "DELETE /metric-definitions/{key}": "write",
    "GET /experiments/{experiment_id}/results": "read",
    # Evaluators (a re-run may call a judge model: write, like a run)
    "GET /evaluators/types": "read",
    "GET /experiments/{experiment_id}/evaluators": "read",
    "POST /experiments/{experiment_id}/evaluators": "write",
    "GET /experiments/{experiment_id}/evaluators/{evaluator_id}": "read",
    "PATCH /experiments/{experiment_id}/evaluators/{evaluator_id}": "write",
    "PUT /experiments/{experiment_id}/evaluators/{evaluator_id}": "write",
    "DELETE /experiments/{experiment_id}/evaluators/{evaluator_id}": "write",
    "POST /experiments/{experiment_id}/evaluate": "write",
    "GET /experiments/{experiment_id}/evaluate": "read",
    "GET /experiments/{experiment_id}/evaluation/cells": "read",
    "POST /experiments/{experiment_id}/evaluation/scores": "write",
    # Access: the session of the web UI, keys and projects
    "GET /session": OPEN,
    "POST /session": OPEN,
    "DELETE /session": OPEN,
    "GET /keys": "admin",
    "POST /keys": "admin",
    "PATCH /keys/{key_id}": "admin",
    "DELETE /keys/{key_id}": "admin",
    "GET /projects": "read",
    "POST /projects": "admin",
    "PATCH /projects/{project_id}": "admin",
    "GET /audit": "admin",
    "GET /settings": "admin",
    # The web UI's files (no data in them)
    "GET /": OPEN,
    "GET /ui": OPEN,
    "GET /ui/{path:path}": OPEN,
}


def route_methods(route: BaseRoute) -> list[tuple[str, str]]:
    """(method, path) of each method a route answers (HEAD only when it has no GET)."""
    if not isinstance(route, Route):
        return [("*", getattr(route, "path", repr(route)))]
    methods = set(route.methods or ("GET",))
    if "GET" in methods:
        methods.discard("HEAD")
    return [(method, route.path) for method in sorted(methods)]


def missing_entries(routes: Iterable[BaseRoute], table: Mapping[str, str]) -> list[str]:
    return [
        f"{method} {path}"
        for route in routes
        for method, path in route_methods(route)
        if f"{method} {path}" not in table
    ]


@dataclass(frozen=True, slots=True)
class RouteScopes:
    """The table compiled against an app's routes: a dict for fixed paths, the routes'
    own patterns for the others."""

    exact: dict[tuple[str, str], str]
    patterns: tuple[tuple[re.Pattern[str], dict[str, str]], ...]

    @classmethod
    def compile(
        cls, routes: Iterable[BaseRoute], table: Mapping[str, str] = ROUTE_SCOPES
    ) -> RouteScopes:
        exact: dict[tuple[str, str], str] = {}
        patterns: list[tuple[re.Pattern[str], dict[str, str]]] = []
        for route in routes:
            if not isinstance(route, Route):
                continue
            needs = {
                method: table.get(f"{method} {path}", UNLISTED)
                for method, path in route_methods(route)
            }
            if "GET" in needs:
                needs["HEAD"] = needs["GET"]
            if "{" in route.path:
                patterns.append((route.path_regex, needs))
            else:
                for method, need in needs.items():
                    exact.setdefault((method, route.path), need)
        return cls(exact, tuple(patterns))

    def required(self, method: str, path: str) -> str:
        need = self.exact.get((method, path))
        if need is not None:
            return need
        for regex, needs in self.patterns:
            if regex.match(path):
                found = needs.get(method)
                if found is not None:
                    return found
        return UNMATCHED
