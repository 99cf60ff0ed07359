"""The app's state: everything the lifespan opens, in one typed object.

Handlers reach it through `app_state(request)`; there are no module globals.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from gateway.config import Settings
from gateway.events import Broadcaster
from gateway.experiments import ExperimentService
from gateway.metrics import Metrics
from gateway.pricing import PriceTable
from gateway.providers import Router
from gateway.proxy import ProxyPipeline
from gateway.store import Store
from gateway.upstream import UpstreamClient
from gateway.writer import SpanWriter


@dataclass
class AppState:
    settings: Settings
    store: Store
    upstream: UpstreamClient
    router: Router
    metrics: Metrics
    prices: PriceTable
    writer: SpanWriter
    events: Broadcaster
    pipeline: ProxyPipeline
    experiments: ExperimentService


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.spanlab
    return state
