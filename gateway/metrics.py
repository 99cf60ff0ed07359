"""Prometheus metrics, in a registry owned by the app (no process globals), so two
apps in one process (tests) never share counters.

The workers of ``spanlab serve --workers`` share theirs through prometheus_client's
multiprocess mode (the supervisor sets `MULTIPROCESS_DIR_ENV` before they start): each
worker's values go to files there, and ``/metrics`` on any worker sums every worker's
counters and histograms, and its gauges as each says (calls in flight and queued spans
summed over the live workers, the writer's lag the largest). A gauge read from a
function is set from it every `SHARED_REFRESH_S` instead (the others' files cannot
call this process's functions).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

MAX_MODEL_LABELS = 200
MAX_CACHED_SERIES = 4096
MAX_EXPERIMENT_LABELS = 500
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
SHARED_REFRESH_S = 1.0

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROCESS_DIR_ENV",
    "Metrics",
    "PeerSnapshot",
    "forget_process",
]


# A registry's samples as plain data: (family name, type, help, unit, [(sample name,
# labels, value)]) per family.
PeerSnapshot = list[tuple[str, str, str, str, list[tuple[str, dict[str, str], float]]]]
# Gauges a sum over processes would misstate: the peers' largest value is shown.
MAX_GAUGES = frozenset({"spanlab_span_writer_lag_seconds"})


class _WithPeer:
    """A registry's families with a peer's samples added: counters, histograms and
    gauges summed by sample name and labels (a gauge in `MAX_GAUGES` the larger, a
    ``_created`` time the earlier); a series only the peer has is shown as it is."""

    def __init__(self, registry: CollectorRegistry, peer: PeerSnapshot) -> None:
        self.registry = registry
        self.peer = {name: (kind, doc, unit, samples) for name, kind, doc, unit, samples in peer}

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for family in self.registry.collect():
            seen.add(family.name)
            theirs = self.peer.get(family.name)
            if theirs is None:
                yield family
                continue
            values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            labels: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, str]] = {}
            for sample_name, sample_labels, value in [
                (s.name, s.labels, s.value) for s in family.samples
            ] + theirs[3]:
                key = (sample_name, tuple(sorted(sample_labels.items())))
                if key not in values:
                    values[key], labels[key] = value, sample_labels
                elif sample_name.endswith("_created"):
                    values[key] = min(values[key], value)
                elif family.name in MAX_GAUGES:
                    values[key] = max(values[key], value)
                else:
                    values[key] += value
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            for key, value in values.items():
                merged.add_sample(key[0], labels[key], value)
            yield merged
        for name, (kind, doc, unit, samples) in self.peer.items():
            if name not in seen:
                only = Metric(name, doc, kind, unit)
                for sample_name, sample_labels, value in samples:
                    only.add_sample(sample_name, sample_labels, value)
                yield only


def forget_process(pid: int) -> None:
    """A worker died: its live gauges (calls in flight...) no longer count."""
    path = os.environ.get(MULTIPROCESS_DIR_ENV)
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.shared_dir = os.environ.get(MULTIPROCESS_DIR_ENV) or None
        self._functions: list[tuple[Gauge, Callable[[], float]]] = []
        self._models: set[str] = set()
        self._call_series: dict[tuple[str, str | None, str], tuple[Any, Any, Any]] = {}
        # The latest samples of a peer process without shared files (`spanlab serve`'s
        # background process): added to this process's in ``/metrics``.
        self.peer_snapshot: PeerSnapshot = []
        r = self.registry
        self.requests = Counter(
            "spanlab_requests",
            "Calls through the proxy, by provider, model and span status.",
            ["provider", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "spanlab_request_duration_seconds",
            "Whole call duration as the client sees it.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "spanlab_time_to_first_token_seconds",
            "Time from request to the first stream event.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "spanlab_tokens",
            "Tokens reported by upstreams, by provider, model and kind (prompt/completion).",
            ["provider", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "spanlab_cost_usd",
            "Cost in USD of the calls with a known price.",
            ["provider", "model"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "spanlab_upstream_errors",
            "Upstream failures: HTTP error statuses and transport errors.",
            ["provider", "kind"],
            registry=r,
        )
        self.in_flight = Gauge(
            "spanlab_in_flight_requests",
            "Calls being proxied now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_depth = Gauge(
            "spanlab_span_queue_depth",
            "Spans captured and waiting for the writer.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.writer_lag = Gauge(
            "spanlab_span_writer_lag_seconds",
            "Seconds spans have waited for the writer with none stored (0 when none waits).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.spans_written = Counter(
            "spanlab_spans_written", "Spans stored by the background writer.", registry=r
        )
        self.write_errors = Counter(
            "spanlab_span_write_errors",
            "Failed attempts to store a batch (the batch is retried, not dropped).",
            registry=r,
        )
        # OTLP export (gateway/export/): counted where it runs (the writer process,
        # whose counts come back with its answers) and added here.
        self.otlp_exported = Counter(
            "spanlab_otlp_spans_exported", "Spans exported over OTLP.", registry=r
        )
        self.otlp_dropped = Counter(
            "spanlab_otlp_spans_dropped",
            "Spans left out of the OTLP export (stored all the same), by reason: queue_full"
            " (the receiver is behind), export_failed (it refused them or was unreachable).",
            ["reason"],
            registry=r,
        )
        for reason in ("queue_full", "export_failed"):  # at 0 from the start, for alerts
            self.otlp_dropped.labels(reason)
        self.experiment_runs = Counter(
            "spanlab_experiment_runs",
            "Experiment runs, by outcome (completed or failed).",
            ["status"],
            registry=r,
        )
        self.playground_requests = Counter(
            "spanlab_playground_requests",
            "Playground calls, by model (one per model of a side-by-side request).",
            ["model"],
            registry=r,
        )
        self.playground_latency = Histogram(
            "spanlab_playground_request_duration_seconds",
            "Playground call duration, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        # Experiment and variant ids are labels: a series per (experiment, variant,
        # status). Bounded by what users create (ids, not client-sent names), the
        # seed's grouping; `MAX_EXPERIMENT_LABELS` caps the experiments all the same.
        self.experiment_cells = Counter(
            "spanlab_experiment_cells",
            "Matrix cells ended, by experiment, variant and status"
            " (completed, failed, cancelled, interrupted).",
            ["experiment", "variant", "status"],
            registry=r,
        )
        self.experiment_cell_latency = Histogram(
            "spanlab_experiment_cell_duration_seconds",
            "Matrix cell duration (retries and their waits included), by experiment and variant.",
            ["experiment", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.experiment_cell_retries = Counter(
            "spanlab_experiment_cell_retries",
            "Upstream 429/503 answers retried by matrix cells, by experiment and variant.",
            ["experiment", "variant"],
            registry=r,
        )
        # Feedback and scores (the seed's experiment_feedback_thumbs_*_total and
        # score counters): by experiment and variant ids, "none" for a span's own.
        self.feedback = Counter(
            "spanlab_feedback",
            "Feedback given on runs and spans, by experiment, variant and the thumbs given"
            " (up, down; none: a note only, or the thumbs cleared).",
            ["experiment", "variant", "thumbs"],
            registry=r,
        )
        self.scores_created = Counter(
            "spanlab_scores_created",
            "Scores recorded (by people, the API and evaluators), by experiment and variant.",
            ["experiment", "variant"],
            registry=r,
        )
        # Quotas (gateway.quotas): requests refused for a limit, and matrix cells that
        # waited for a limit's window to free.
        self.quota_refusals = Counter(
            "spanlab_quota_refusals",
            "Requests refused with 429 because a key or project reached a limit, by limit"
            " (rpm, tokens_per_day, usd_per_day, usd_per_month).",
            ["limit"],
            registry=r,
        )
        self.matrix_quota_waits = Counter(
            "spanlab_matrix_quota_waits",
            "Times a matrix cell paused until a key's or project's limit window freed.",
            registry=r,
        )
        self._experiments: set[str] = set()

    def experiment_label(self, experiment_id: str) -> str:
        """The ``experiment`` label: the id, for the first `MAX_EXPERIMENT_LABELS`
        experiments seen by this process; ``other`` past that."""
        if experiment_id in self._experiments:
            return experiment_id
        if len(self._experiments) >= MAX_EXPERIMENT_LABELS:
            return "other"
        self._experiments.add(experiment_id)
        return experiment_id

    def observe_cell(
        self, experiment_id: str, variant_id: str, status: str, duration_s: float, retries: int
    ) -> None:
        """Count one ended matrix cell, its duration and its retries."""
        experiment = self.experiment_label(experiment_id)
        variant = variant_id if experiment != "other" else "other"
        self.experiment_cells.labels(experiment, variant, status).inc()
        self.experiment_cell_latency.labels(experiment, variant).observe(duration_s)
        retried = self.experiment_cell_retries.labels(experiment, variant)
        if retries:
            retried.inc(retries)

    def experiment_labels(
        self, experiment_id: str | None, variant_id: str | None
    ) -> tuple[str, str]:
        """The ``experiment`` and ``variant`` labels of something that may be in no
        experiment (a span's own feedback): ``none`` then."""
        if experiment_id is None:
            return "none", "none"
        experiment = self.experiment_label(experiment_id)
        if experiment == "other":
            return experiment, "other"
        return experiment, variant_id or "none"

    def observe_feedback(
        self, experiment_id: str | None, variant_id: str | None, thumbs_up: bool | None
    ) -> None:
        experiment, variant = self.experiment_labels(experiment_id, variant_id)
        thumbs = "none" if thumbs_up is None else ("up" if thumbs_up else "down")
        self.feedback.labels(experiment, variant, thumbs).inc()

    def observe_score(self, experiment_id: str | None, variant_id: str | None) -> None:
        self.scores_created.labels(*self.experiment_labels(experiment_id, variant_id)).inc()

    def model_label(self, model: str | None) -> str:
        """The ``model`` label value: the name as requested, while fewer than
        `MAX_MODEL_LABELS` distinct names have been seen; ``other`` past that. The
        model name comes from clients, and each new label value is a new series kept
        for the life of the process."""
        if model is None:
            return "none"
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODEL_LABELS:
            return "other"
        self._models.add(model)
        return model

    def observe_call(
        self,
        provider: str,
        model: str | None,
        status: str,
        duration_s: float | None,
        ttft_s: float | None,
    ) -> None:
        """Count one proxied call, and its duration and time to first token."""
        key = (provider, model, status)
        series = self._call_series.get(key)
        if series is None:
            # Looking the labelled series up costs more than the update itself; they
            # are kept per (provider, model, status), a bounded number of them.
            series = (
                self.requests.labels(provider, self.model_label(model), status),
                self.latency.labels(provider),
                self.ttft.labels(provider),
            )
            if len(self._call_series) < MAX_CACHED_SERIES:
                self._call_series[key] = series
        requests, latency, ttft = series
        requests.inc()
        if duration_s is not None:
            latency.observe(duration_s)
        if ttft_s is not None:
            ttft.observe(ttft_s)

    def observe_export(self, exported: int, dropped: int, failed: int) -> None:
        """Counts from the OTLP exporter since its last report."""
        if exported:
            self.otlp_exported.inc(exported)
        if dropped:
            self.otlp_dropped.labels("queue_full").inc(dropped)
        if failed:
            self.otlp_dropped.labels("export_failed").inc(failed)

    def bind_queue_depth(self, depth: Callable[[], int]) -> None:
        self._bind(self.queue_depth, depth)

    def bind_writer_lag(self, lag: Callable[[], float]) -> None:
        self._bind(self.writer_lag, lag)

    def _bind(self, gauge: Gauge, read: Callable[[], float]) -> None:
        if self.shared_dir is None:
            gauge.set_function(read)
        else:
            self._functions.append((gauge, read))

    def refresh(self) -> None:
        """Shared metrics: set the gauges read from functions (every `SHARED_REFRESH_S`)."""
        for gauge, read in self._functions:
            gauge.set(read())

    def snapshot(self) -> PeerSnapshot:
        """Every sample of this process's registry, for the process that answers
        ``/metrics`` (`spanlab serve`'s background process sends its own, see
        `peer_snapshot`)."""
        return [
            (family.name, family.type, family.documentation, family.unit, samples)
            for family in self.registry.collect()
            if (samples := [(s.name, s.labels, s.value) for s in family.samples])
        ]

    def render(self) -> bytes:
        if self.shared_dir is None:
            if self.peer_snapshot:
                return generate_latest(_WithPeer(self.registry, self.peer_snapshot))
            return generate_latest(self.registry)
        self.refresh()
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker, path=self.shared_dir)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)
