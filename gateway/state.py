"""The app's state: everything the lifespan opens, in one typed object.

Handlers reach it through `app_state(request)`; there are no module globals.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from gateway.api.events import Broadcaster
from gateway.capture.pricing import PriceTable
from gateway.config import Settings
from gateway.evaluation.service import EvaluationService
from gateway.experiments.service import ExperimentService
from gateway.http.upstream import UpstreamClient
from gateway.metrics import Metrics
from gateway.proxy.pipeline import ProxyPipeline
from gateway.proxy.providers import Router
from gateway.store.stores import Stores
from gateway.writer.span_writer import SpanWriter


@dataclass
class AppState:
    settings: Settings
    stores: Stores  # the database, and the span and experiment stores on it
    upstream: UpstreamClient
    router: Router
    metrics: Metrics
    prices: PriceTable
    writer: SpanWriter
    events: Broadcaster
    pipeline: ProxyPipeline
    experiments: ExperimentService
    evaluation: EvaluationService


def app_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.spanlab
    return state
