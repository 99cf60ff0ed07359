"""The OTLP exporter: committed span rows out to a tracing backend, off every hot path.

`SpanExporter.offer` is all the writer does per committed transaction: it appends the
rows (a reference to the list, no copy, no per-span work) to a bounded queue, or
counts them as dropped when the queue is full; it never blocks and never fails. A
thread of its own turns rows into OpenTelemetry spans (`gateway.export.genai`) and
sends them in batches with the SDK's OTLP/HTTP exporter (`OTLPSpanExporter`, which
retries with back-off within its timeout). Not the SDK's BatchSpanProcessor: it would
take spans one call at a time on the writer's thread and drops without counting; here
the queue is the bound, and every span is counted once: exported, dropped (queue full)
or failed (the backend refused it or could not be reached). The counts go to a
callback (`on_stats`) about once a second; drops are logged at most every
``LOG_EVERY_S``.

The SDK is imported in that thread, when it starts: the writer process starts in a few
tens of milliseconds without it, and a gateway without the ``otlp`` extra runs as ever
(`export_config` says at start-up that export cannot work, and it stays off).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config import Settings
from gateway.export.genai import GenAISpan, content_attributes, span_from_row

logger = logging.getLogger(__name__)

EXPORT_BATCH = 512  # spans per OTLP request
REPORT_EVERY_S = 1.0
LOG_EVERY_S = 10.0
CLOSE_WITHIN_S = 5.0
TRACES_PATH = "/v1/traces"
SCOPE = "spanlab"
SDK_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
# Stats: (exported, dropped because the queue was full, failed to export).
StatsCallback = Callable[[int, int, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class ExportConfig:
    """What the exporter needs, as JSON for the writer process's command line."""

    endpoint: str | None  # the traces URL; None: the SDK's, from OTEL_* variables
    service_name: str
    capture_content: bool
    queue_max: int
    provider_kinds: dict[str, str]
    version: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExportConfig:
        return cls(**json.loads(text))


def sdk_available() -> bool:
    try:
        return importlib.util.find_spec(SDK_MODULE) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def traces_url(endpoint: str) -> str:
    """A base URL (as OTEL_EXPORTER_OTLP_ENDPOINT) with the traces path added; a URL
    already ending with it is taken as it is."""
    endpoint = endpoint.strip()
    if endpoint.rstrip("/").endswith(TRACES_PATH):
        return endpoint
    return endpoint.rstrip("/") + TRACES_PATH


def export_config(settings: Settings, env: dict[str, str] | None = None) -> ExportConfig | None:
    """The export to run, or None: export is on when ``otlp_endpoint`` or one of the
    standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variables names a receiver. Logs
    where spans go, or, when the ``otlp`` extra is missing, that they cannot."""
    env = dict(os.environ) if env is None else env
    from_env = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not settings.otlp_endpoint and not from_env:
        return None
    if not sdk_available():
        logger.error(
            "OTLP export is configured (%s) but the OpenTelemetry SDK is not installed:"
            " spans are NOT exported. Install the extra: pip install 'spanlab[otlp]'",
            settings.otlp_endpoint or "OTEL_EXPORTER_OTLP_ENDPOINT",
        )
        return None
    from gateway import __version__

    config = ExportConfig(
        endpoint=traces_url(settings.otlp_endpoint) if settings.otlp_endpoint else None,
        service_name=settings.otlp_service_name,
        capture_content=settings.otlp_capture_content,
        queue_max=max(1, settings.otlp_queue_max),
        provider_kinds={name: p.kind for name, p in settings.providers.items()},
        version=__version__,
    )
    logger.info(
        "exporting spans over OTLP/HTTP to %s (message content %s)",
        config.endpoint or from_env,
        "included" if config.capture_content else "left out",
    )
    return config


class SpanExporter:
    """A bounded queue of committed rows and the thread that exports them."""

    def __init__(
        self,
        config: ExportConfig,
        on_stats: StatsCallback,
        *,
        exporter: Any = None,
    ) -> None:
        self.config = config
        self.on_stats = on_stats
        self._exporter = exporter  # the SDK's (built in the thread), or a test's
        self._queue: deque[Sequence[Sequence[Any]]] = deque()
        self._queued = 0  # spans in the queue
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._closing = False
        self._abandoned = False  # `close` gave up waiting: the thread counts no more
        self._exporting = 0  # spans in the export under way
        self._exported = 0
        self._dropped = 0
        self._failed = 0
        self._reported = (0, 0, 0)
        self._logged = (0, 0)  # dropped, failed when last logged
        self._last_log = 0.0
        self._report_lock = threading.Lock()  # the thread's reports, and `close`'s
        self._thread = threading.Thread(target=self._run, name="spanlab-otlp", daemon=True)
        self._thread.start()

    def offer(self, rows: Sequence[Sequence[Any]]) -> None:
        """Queue committed rows for export; what does not fit is dropped (counted).
        Never blocks beyond a lock held for a few list operations."""
        with self._lock:
            room = self.config.queue_max - self._queued
            if room < len(rows):
                self._dropped += len(rows) - max(room, 0)
                rows = rows[: max(room, 0)]
            if rows:
                self._queue.append(rows)
                self._queued += len(rows)
                if self._queued >= EXPORT_BATCH:
                    self._ready.notify()

    def close(self, within: float = CLOSE_WITHIN_S) -> None:
        """Export what is queued, for at most ``within`` seconds, then stop: what is
        still queued then is counted as dropped (and reported)."""
        with self._lock:
            self._closing = True
            self._ready.notify()
        self._thread.join(within)
        if self._thread.is_alive():  # the receiver is slow or gone: the rest is dropped
            with self._lock:
                self._abandoned = True
                self._dropped += self._queued + self._exporting
                self._queue.clear()
                self._queued = 0
            self._report()

    @property
    def counts(self) -> tuple[int, int, int]:
        return self._exported, self._dropped, self._failed

    # --- the thread ----------------------------------------------------------------------

    def _take(self) -> list[Sequence[Any]] | None:
        """Up to `EXPORT_BATCH` rows; waits up to `REPORT_EVERY_S` for a full batch."""
        with self._lock:
            if self._queued < EXPORT_BATCH and not self._closing:
                self._ready.wait(REPORT_EVERY_S)
            if not self._queue:
                return None if self._closing else []
            taken: list[Sequence[Any]] = []
            while self._queue and len(taken) < EXPORT_BATCH:
                rows = self._queue.popleft()
                want = EXPORT_BATCH - len(taken)
                if len(rows) > want:
                    self._queue.appendleft(rows[want:])
                    rows = rows[:want]
                taken.extend(rows)
            self._queued -= len(taken)
            return taken

    def _run(self) -> None:
        sdk: _Sdk | None = None
        try:
            sdk = _Sdk(self.config, self._exporter)
        except Exception:
            logger.exception("OTLP export could not start; spans are not exported")
        try:
            while (rows := self._take()) is not None:
                if rows:
                    self._export(sdk, rows)
                self._report()
        finally:
            self._report()
            if sdk is not None:
                sdk.shutdown()

    def _export(self, sdk: _Sdk | None, rows: list[Sequence[Any]]) -> None:
        self._exporting = len(rows)
        exported, failed = self._map_and_send(sdk, rows)
        with self._lock:
            self._exporting = 0
            if not self._abandoned:
                self._exported += exported
                self._failed += failed

    def _map_and_send(self, sdk: _Sdk | None, rows: list[Sequence[Any]]) -> tuple[int, int]:
        """(exported, failed) of a batch."""
        if sdk is None:
            return 0, len(rows)
        failed = 0
        spans = []
        for row in rows:
            try:
                spans.append(sdk.span(row))
            except Exception:  # one odd row must not stop the others
                logger.debug("span %s could not be exported", row[0], exc_info=True)
                failed += 1
        if spans and sdk.export(spans):
            return len(spans), failed
        return 0, failed + len(spans)

    def _report(self) -> None:
        with self._report_lock:
            self._report_counts()

    def _report_counts(self) -> None:
        counts = self.counts
        if counts != self._reported:
            old = self._reported
            self._reported = counts
            try:
                self.on_stats(*(new - before for new, before in zip(counts, old, strict=True)))
            except Exception:
                logger.debug("reporting export counts failed", exc_info=True)
        lost = (self._dropped, self._failed)
        now = time.monotonic()
        if lost != self._logged and (now - self._last_log >= LOG_EVERY_S or self._closing):
            logger.warning(
                "OTLP export: %d spans dropped (queue full) and %d failed to export since the"
                " last report; %d exported in all",
                lost[0] - self._logged[0],
                lost[1] - self._logged[1],
                self._exported,
            )
            self._logged = lost
            self._last_log = now


class _Sdk:
    """The OpenTelemetry SDK's part, imported in the export thread."""

    def __init__(self, config: ExportConfig, exporter: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.config = config
        attributes: dict[str, Any] = {SERVICE_VERSION: config.version}
        if config.service_name:
            attributes[SERVICE_NAME] = config.service_name
        # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are read by Resource.create.
        resource = Resource.create(attributes)
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "spanlab"}))
        self.resource = resource
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Endpoint, headers, timeout, compression, certificates: OTEL_* variables.
            exporter = OTLPSpanExporter(endpoint=config.endpoint)
        self.exporter = exporter
        self.scope = InstrumentationScope(SCOPE, config.version)
        self.trace = trace
        self.readable = ReadableSpan
        self.success = SpanExportResult.SUCCESS

    def context(self, trace_id: str, span_id: str, remote: bool) -> Any:
        trace = self.trace
        return trace.SpanContext(
            int(trace_id, 16),
            int(span_id, 16),
            is_remote=remote,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )

    def span(self, row: Sequence[Any]) -> Any:
        trace = self.trace
        mapped: GenAISpan = span_from_row(row, self.config.provider_kinds)
        attributes = mapped.attributes
        if self.config.capture_content:
            attributes.update(content_attributes(row))
        parent = None
        if mapped.parent_span_id:
            parent = self.context(mapped.trace_id, mapped.parent_span_id, True)
        links = [
            trace.Link(self.context(link.trace_id, link.span_id, True), link.attributes)
            for link in mapped.links
        ]
        if mapped.error is not None:
            status = trace.Status(trace.StatusCode.ERROR, mapped.error)
        else:
            status = trace.Status(trace.StatusCode.UNSET)
        return self.readable(
            name=mapped.name,
            context=self.context(mapped.trace_id, mapped.span_id, False),
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            links=links,
            kind=trace.SpanKind.CLIENT,
            status=status,
            start_time=mapped.start_ns,
            end_time=mapped.end_ns,
            instrumentation_scope=self.scope,
        )

    def export(self, spans: list[Any]) -> bool:
        try:
            return bool(self.exporter.export(spans) == self.success)
        except Exception:
            logger.debug("OTLP export failed", exc_info=True)
            return False

    def shutdown(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:
            logger.debug("OTLP exporter shutdown failed", exc_info=True)
