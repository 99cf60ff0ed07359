"""The application factory: `create_app(settings)` builds the ASGI app.

The route table is written out below in one place. The lifespan opens what the app
holds (store, HTTP client, span writer) into one `AppState`, and on shutdown closes
them in order: the writer drains its queue before the store closes, so a graceful
stop loses no span. The drain has a deadline (``shutdown_drain_s``; a second SIGTERM or
SIGINT ends it at once): what is not stored by then is saved to a spill file beside
the database, which the next start stores first.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from types import FrameType
from typing import Any, Protocol

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.access.guard import AccessGuard
from gateway.access.policy import AccessPolicy
from gateway.access.routes import RouteScopes
from gateway.api import access as access_api
from gateway.api import audit as audit_api
from gateway.api import datasets as datasets_api
from gateway.api import evaluators as evaluators_api
from gateway.api import experiments as experiments_api
from gateway.api import json_response, spans, system
from gateway.api import playground as playground_api
from gateway.api import results as results_api
from gateway.api import scores as scores_api
from gateway.api import settings as settings_api
from gateway.api.audit import audited
from gateway.api.events import Broadcaster, named_event
from gateway.api.project_scope import fenced
from gateway.api.ui import ui_routes
from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span
from gateway.capture.span_table import SPAN_COLUMNS, SUMMARY_COLUMNS
from gateway.config import Settings
from gateway.errors import InvalidRequest, MethodNotAllowed, NotFound, SpanlabError
from gateway.evaluation.judge import Judge
from gateway.evaluation.scoring import ScoringService
from gateway.evaluation.service import PENDING_SIGNAL, EvaluationService
from gateway.experiments.matrix_shared import MATRIX_SIGNAL
from gateway.experiments.service import ExperimentService
from gateway.export.otlp import export_config
from gateway.fanout.postgres import PostgresRelay
from gateway.fanout.relay import SPAN_REF, Relay
from gateway.fanout.unix import UnixRelay, WorkerRole
from gateway.http.client import ConnectionPool
from gateway.http.guard import AllowedHosts, HostOriginGuard, allowed_hosts
from gateway.http.httpx_transport import build_httpx_transport
from gateway.http.network import Network
from gateway.http.upstream import HttpxUpstream, UpstreamClient
from gateway.metrics import SHARED_REFRESH_S, Metrics
from gateway.proxy.endpoint import ProxyEndpoint, ProxyRoutes
from gateway.proxy.operations import MODEL_PATH, OPERATIONS
from gateway.proxy.pipeline import ProxyPipeline
from gateway.proxy.providers import Router
from gateway.quotas.service import QuotaService
from gateway.state import AppState
from gateway.store.database import Database
from gateway.store.postgres import PostgresDatabase
from gateway.store.spans import SpanStore, span_from_row
from gateway.store.stores import Stores, stores_for
from gateway.writer.span_writer import SpanWriter
from gateway.writer.spill import (
    replay_spill,
    spill_path_for,
    spill_paths_for,
    worker_spill_path,
)

logger = logging.getLogger(__name__)


def _pipeline(scope: Scope) -> ProxyPipeline:
    state: AppState = scope["app"].state.spanlab
    return state.pipeline


def proxy_routes() -> list[Route]:
    routes: list[Route] = []
    for path, operation in OPERATIONS.items():
        methods = ["GET"] if operation == "models" else ["POST"]
        routes.append(Route(path, ProxyEndpoint(operation, _pipeline), methods=methods))
    # One model's details; the id may hold a "/" (openai/gpt-4o). Not a hot path, so
    # Starlette's router matches it rather than `ProxyRoutes`' exact-path table.
    model = ProxyEndpoint("models", _pipeline)
    routes.append(Route(MODEL_PATH + "{model_id:path}", model, methods=["GET"]))
    return routes


def proxy_endpoints(routes: Sequence[Route]) -> dict[str, tuple[frozenset[str], ASGIApp]]:
    """Path -> (methods, endpoint) of the proxy routes with a fixed path, for `ProxyRoutes`."""
    return {
        route.path: (frozenset(route.methods or ()), route.app)
        for route in routes
        if "{" not in route.path
    }


def management_routes() -> list[BaseRoute]:
    # The audited routes' handlers are wrapped here, once (gateway.access.audit).
    # Then every handler is fenced to a project key's project (gateway.api.project_scope).
    return fenced(
        audited(
            [
                Route("/spans", spans.list_spans, methods=["GET"]),
                Route("/spans/facets", spans.span_facets, methods=["GET"]),  # before {span_id}
                Route("/spans/{span_id}", spans.get_span, methods=["GET"]),
                Route("/traces/{trace_id}", spans.get_trace, methods=["GET"]),
                Route("/threads", spans.list_threads, methods=["GET"]),
                Route("/stats", spans.stats, methods=["GET"]),
                Route("/events", system.events, methods=["GET"]),
                Route("/healthz", system.healthz, methods=["GET"]),
                Route("/models", system.models, methods=["GET"]),
                Route("/metrics", system.metrics, methods=["GET"]),
                *scores_api.routes(),  # before the experiments': /experiments/runs/... is not one
                *experiments_api.routes(),
                *datasets_api.routes(),
                *playground_api.routes(),
                *results_api.routes(),
                *access_api.routes(),
                *evaluators_api.routes(),
                *audit_api.routes(),
                *settings_api.routes(),
                Route("/", lambda request: RedirectResponse("/ui/"), methods=["GET"]),
            ]
        )
    )


# Libraries whose logs would carry what must not be logged: httpx and httpcore log
# every upstream URL (query string included, and a client's ?api_key= goes upstream in
# it); aiosqlite logs every SQL statement with its parameters (whole prompts).
NOISY_LOGGERS = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "aiosqlite": logging.INFO}
# What a span has beyond its summary (the live list's shape): left out of a relayed one.
DETAIL_ONLY = tuple(c for c in SPAN_COLUMNS if c not in SUMMARY_COLUMNS)
# Reads of spans relayed by reference, held until done.
_RELAY_READS: set[asyncio.Task[None]] = set()


def quiet_library_loggers() -> None:
    """Raise the level of `NOISY_LOGGERS`, unless someone configured them on purpose."""
    for name, level in NOISY_LOGGERS.items():
        library_logger = logging.getLogger(name)
        if library_logger.level == logging.NOTSET:
            library_logger.setLevel(level)


def build_upstream(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> UpstreamClient:
    """The client for upstream calls: the gateway's own pool, httpx's transport
    (``upstream_client = "httpx"``), or (tests) a transport given."""
    quiet_library_loggers()
    if transport is not None:
        return HttpxUpstream(transport)
    if settings.upstream_client == "httpx":
        return HttpxUpstream(build_httpx_transport(settings.max_connections, keepalive_expiry=30.0))
    return ConnectionPool(
        max_connections=settings.max_connections,
        keepalive_expiry=30.0,
        network=Network.from_settings(settings),
        retry_stale_connection=settings.upstream_retry_stale_connection,
    )


class Gateway(Starlette):
    """The ASGI app: every HTTP request passes the Host/Origin guard first, then the
    key check (`gateway.access.guard`, with ``access``); a proxied path then goes
    straight to its endpoint, anything else to Starlette's stack.

    Why not as Starlette middleware: Starlette puts its ServerErrorMiddleware outside
    all middleware, wrapping every message sent, and the proxy's own error handling
    answers every call on its paths already (see `ProxyRoutes`)."""

    def __init__(
        self,
        endpoints: dict[str, tuple[frozenset[str], ASGIApp]],
        allowed: AllowedHosts,
        access: AccessPolicy,
        check_keys: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.state.access = access
        inner: ASGIApp = ProxyRoutes(self._starlette, endpoints)
        if check_keys:
            inner = AccessGuard(inner, access, RouteScopes.compile(self.routes))
        self._front = HostOriginGuard(inner, allowed)

    async def _starlette(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self
            await self._front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class Background(Protocol):
    """What the app needs of `spanlab serve`'s background process, which runs matrix
    cells off this process's event loop (`gateway.background.process`)."""

    gateway_role: WorkerRole | None  # this app's relay place, when it has no worker role

    def available(self) -> bool: ...

    def start(self, metrics: Metrics) -> None: ...

    async def stop(self) -> None: ...


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    stores: Stores | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    check_keys: bool = True,
    worker: WorkerRole | None = None,
    background: Background | None = None,
    headless: bool = False,
) -> Gateway:
    """Build the gateway. ``transport`` replaces the network for upstream calls (tests
    inject a fake upstream here); ``stores`` replaces the SQLite database at
    ``settings.db`` and its stores. ``check_keys=False``: no key check (the CLI's
    gateway in process, on a database file its user can open anyway). ``worker``: this
    app's number among ``spanlab serve --workers`` (its own spill file).
    ``background``: a process this app starts to run matrix cells in (`spanlab serve`);
    without it they run in this process. ``headless``: the background process's own
    app (no HTTP server): it leaves the recovery of what a stopped gateway left running
    to the gateway, which did it before starting it (the runs it just started, with no
    cell claimed yet, are not a dead process's)."""
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_stores = stores or stores_for(settings.database, settings.database_pool_size)
        await the_stores.open()
        db_path = the_stores.database.file_path
        metrics = Metrics()
        prices = PriceTable(settings.prices)
        events = Broadcaster()
        shared_metrics = _refresh_shared(metrics) if metrics.shared_dir is not None else None
        relay_role = worker or (background.gateway_role if background is not None else None)
        events.relay = _relay_for(the_stores.database, relay_role)
        if events.relay is not None:
            await events.relay.start(lambda event: _relayed(events, the_stores.spans, event))
        spill = settings.spill_file or spill_path_for(db_path, the_stores.database.dialect)
        # Spans a shutdown could not store: a worker stores its own file (the supervisor
        # stored every one before it started the workers); one process, all of them.
        if spill is not None and worker is not None:
            spill = worker_spill_path(spill, worker.index)
        for path in [spill] if worker is not None else spill_paths_for(spill):
            await replay_spill(the_stores.spans, path)
        writer = SpanWriter(
            the_stores.spans,
            prices,
            metrics,
            batch_size=settings.write_batch_size,
            queue_max=settings.write_queue_max,
            queue_max_bytes=settings.write_queue_max_bytes,
            on_written=lambda batch, records: _announce(metrics, events, batch, records, quotas),
            process_db=db_path,
            spill_path=spill,
            stall_s=settings.flush_timeout_s,
            export=export_config(settings),
        )
        upstream = build_upstream(settings, transport)
        router = Router(settings)
        pipeline = ProxyPipeline(settings, upstream, router, metrics, writer)
        pipeline.quotas = quotas
        experiments = ExperimentService(
            settings, the_stores.spans, the_stores.experiments, pipeline, writer, prices, router
        )
        relay = events.relay
        experiments.matrix.attach(
            metrics,
            the_stores.events,
            lambda name, data: events.publish(named_event(name, data)),
            relay.signal if relay is not None else None,
        )
        if relay is not None:  # a matrix run's start, cancel and cells, from the peers
            relay.on_signal(MATRIX_SIGNAL, experiments.matrix.signalled)
        evaluation = EvaluationService(
            settings,
            the_stores.evaluation,
            experiments.matrix.store,
            the_stores.spans,
            Judge(settings, pipeline, prices),
        )
        experiments.matrix.on_cell_done = evaluation.after_cell  # scores each finished cell
        if relay is not None:  # cells being scored in other processes count in progress
            evaluation.signal = relay.signal
            relay.on_signal(PENDING_SIGNAL, evaluation.signalled)

        async def flush_spans() -> None:
            await writer.flush(settings.flush_timeout_s)

        # Evaluators' scores are scores like any other: counted and announced.
        evaluation.write_scores = ScoringService(
            store=the_stores.evaluation,
            experiments=the_stores.experiments,
            spans=the_stores.spans,
            metrics=metrics,
            events=the_stores.events,
            publish=lambda kind, data: events.publish(named_event(kind, data)),
            flush=flush_spans,
        ).record_scores
        app.state.spanlab = AppState(
            settings=settings,
            stores=the_stores,
            upstream=upstream,
            router=router,
            metrics=metrics,
            prices=prices,
            writer=writer,
            events=events,
            pipeline=pipeline,
            experiments=experiments,
            evaluation=evaluation,
        )
        writer.start()
        await access.open(the_stores.database)
        await quotas.open(the_stores.database, metrics)
        if not headless:
            await experiments.recover()
        # Runs other gateway processes on this database share: join them, take over
        # the cells of a process that died.
        experiments.matrix.watch(the_stores.experiments.get_experiment)
        if background is not None:  # it runs the shared runs' cells while it is up
            experiments.matrix.runs_elsewhere = background.available
            background.start(metrics)
        # Set by a second SIGTERM/SIGINT during the shutdown, or when the shutdown is
        # forced: what the writer has not stored goes to the spill file at once.
        hurry = asyncio.Event()
        try:
            yield
        except asyncio.CancelledError:
            hurry.set()  # the server gave up on a graceful shutdown
            raise
        finally:
            events.close()  # live /events streams end (`spanlab serve` does it sooner)
            if events.relay is not None:
                await events.relay.close()
            if shared_metrics is not None:
                shared_metrics.cancel()
            with _signals_set(hurry):
                await experiments.close()  # runs in flight end (and are recorded) first
                if background is not None:
                    await background.stop()
                # Cells already run are scored if it can be soon (an in-process CLI
                # gateway stops right after its run); a second signal stops it at once.
                await _until(evaluation.wait(), settings.shutdown_drain_s, hurry)
                await evaluation.close()
                await _until(pipeline.wait_idle(), 5.0, hurry)
                if pipeline.in_flight:
                    logger.error("%d call(s) still running at shutdown", pipeline.in_flight)
                await writer.close(settings.shutdown_drain_s, hurry)
            await upstream.aclose()
            await quotas.close()  # counts still in memory (the writer has charged all)
            await access.close()  # last-used times and refusals still in memory
            await the_stores.close()
            logger.info("stopped; %d spans written", writer.written)

    proxied = proxy_routes()
    access = AccessPolicy(settings)
    quotas = QuotaService(settings)
    app = Gateway(
        proxy_endpoints(proxied),
        allowed_hosts(settings.host, settings.allowed_hosts),
        access,
        check_keys,
        routes=[*proxied, *management_routes(), *ui_routes(), *extra_routes],
        lifespan=lifespan,
        exception_handlers={
            SpanlabError: _spanlab_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
    app.state.quotas = quotas
    return app


@contextmanager
def _signals_set(event: asyncio.Event) -> Iterator[None]:
    """While shutting down: SIGTERM or SIGINT (the second: the first began the shutdown)
    sets ``event`` instead of being ignored. The server's handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()

    def received(signum: int) -> None:
        if not event.is_set():
            logger.warning(
                "%s during the shutdown: saving what is not stored yet to disk now",
                signal.Signals(signum).name,
            )
        event.set()

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(received, signum)

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


async def _until(work: Coroutine[Any, Any, None], seconds: float, stop: asyncio.Event) -> None:
    """Run ``work`` for at most ``seconds``, or until ``stop`` is set."""
    tasks = {asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _announce(
    metrics: Metrics,
    events: Broadcaster,
    batch: Sequence[Span],
    records: Sequence[Mapping[str, Any]],
    quotas: QuotaService | None = None,
) -> None:
    """After a batch is stored: count its tokens and cost (in the metrics, and against
    the keys' and projects' budgets), tell the live listeners."""
    if quotas is not None:
        quotas.charge_spans(batch)
    # Summed per label set: one metric update per batch, not per span.
    totals: dict[tuple[str, str | None], list[float]] = {}
    for span in batch:
        prompt, completion, cost = span.prompt_tokens, span.completion_tokens, span.cost_usd
        if prompt or completion or cost:
            key = (span.provider or "none", span.request_model)
            total = totals.get(key)
            if total is None:
                total = totals[key] = [0, 0, 0.0]
            total[0] += prompt or 0
            total[1] += completion or 0
            total[2] += cost or 0.0
    if events.wanted:  # records are decoded only then
        for record in records:
            events.publish(span_from_row({c: record.get(c) for c in SUMMARY_COLUMNS}))
    for (provider, request_model), (prompt_sum, completion_sum, cost_sum) in totals.items():
        model = metrics.model_label(request_model)
        if prompt_sum:
            metrics.tokens.labels(provider, model, "prompt").inc(prompt_sum)
        if completion_sum:
            metrics.tokens.labels(provider, model, "completion").inc(completion_sum)
        if cost_sum:
            metrics.cost.labels(provider, model).inc(cost_sum)


def _relay_for(database: Database, worker: WorkerRole | None) -> Relay | None:
    """How live events reach this process's peers: every process on one PostgreSQL
    database (LISTEN/NOTIFY, which covers the workers of one machine too); else the
    workers of one ``spanlab serve --workers``; else none (one process)."""
    if isinstance(database, PostgresDatabase):
        return PostgresRelay(database.url)
    if worker is not None and worker.count > 1:
        return UnixRelay(worker)
    return None


def _refresh_shared(metrics: Metrics) -> asyncio.Task[None]:
    """Workers' shared metrics: this process's gauges read from functions, kept fresh
    for whichever worker answers ``/metrics``."""

    async def keep() -> None:
        while True:
            await asyncio.sleep(SHARED_REFRESH_S)
            metrics.refresh()

    return asyncio.get_running_loop().create_task(keep())


def _relayed(events: Broadcaster, spans: SpanStore, event: dict[str, Any]) -> None:
    """An event another gateway process relayed: to this process's listeners. A span
    too large to relay came as its id: it is read from the database first."""
    span_id = event.get(SPAN_REF)
    if span_id is None:
        events.deliver(event)
        return

    async def read() -> None:
        span = await spans.get_span(str(span_id))
        if span is not None:
            for column in DETAIL_ONLY:
                span.pop(column, None)
            events.deliver(span)

    task = asyncio.get_running_loop().create_task(read())
    _RELAY_READS.add(task)
    task.add_done_callback(_RELAY_READS.discard)


async def _spanlab_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpanlabError)
    response = json_response(exc.to_dict(), status_code=exc.status_code)
    response.headers.update(exc.headers)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: SpanlabError
    if exc.status_code == 404:
        error = NotFound(f"No route for {request.method} {request.url.path}.")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
    else:
        error = InvalidRequest(str(exc.detail), code=f"http_{exc.status_code}")
    response = json_response(error.to_dict(), status_code=exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    error = SpanlabError(f"Internal error ({type(exc).__name__}); see the gateway log.")
    return json_response(error.to_dict(), status_code=500)
