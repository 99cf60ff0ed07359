"""OTLP export (gateway/export/otlp.py): the bounded queue that never blocks the writer
and counts what it drops, the settings and OTEL_* variables that turn it on, and a
gateway exporting through its writer process to a real HTTP receiver
(pytest-httpserver), whose OTLP/protobuf requests are decoded here."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult
from pytest_httpserver import HTTPServer
from werkzeug import Response

from gateway.capture.pricing import PriceTable
from gateway.capture.span import Span, SpanContext, now_us
from gateway.capture.span_table import SPAN_COLUMNS
from gateway.config import Settings
from gateway.export import otlp
from gateway.export.otlp import ExportConfig, SpanExporter, export_config, traces_url
from gateway.metrics import Metrics
from gateway.store.stores import sqlite_stores
from gateway.writer.span_writer import SpanWriter
from tests.conftest import GatewayFactory

CONFIG = ExportConfig(
    endpoint="http://127.0.0.1:9/v1/traces",
    service_name="spanlab-test",
    capture_content=False,
    queue_max=10,
    provider_kinds={"openai": "openai"},
    version="0",
)


def fake_row(i: int) -> tuple[Any, ...]:
    values: dict[str, Any] = dict.fromkeys(SPAN_COLUMNS)
    values.update(
        span_id=f"{i + 1:016x}",
        trace_id=f"{i + 1:032x}",
        operation="chat",
        provider="openai",
        request_model="gpt-4o",
        status="ok",
        start_us=1_700_000_000_000_000,
        end_us=1_700_000_000_100_000,
        origin="app",
    )
    return tuple(values[c] for c in SPAN_COLUMNS)


class BlockedExporter:
    """An SDK exporter that holds every export until released."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.result = result
        self.spans: list[Any] = []

    def export(self, spans: list[Any]) -> SpanExportResult:
        self.started.set()
        self.release.wait(10)
        self.spans += spans
        return self.result

    def shutdown(self) -> None:
        pass


class Stats:
    def __init__(self) -> None:
        self.totals = [0, 0, 0]

    def __call__(self, exported: int, dropped: int, failed: int) -> None:
        for i, n in enumerate((exported, dropped, failed)):
            self.totals[i] += n


def test_a_full_queue_drops_and_counts_without_blocking_the_writer() -> None:
    backend = BlockedExporter()
    stats = Stats()
    exporter = SpanExporter(CONFIG, stats, exporter=backend)
    exporter.offer([fake_row(0)])
    assert backend.started.wait(5)  # the export thread is stuck sending that one
    started = time.perf_counter()
    for i in range(1, 26):  # queue_max is 10: the rest is dropped, nothing waits
        exporter.offer([fake_row(i)])
    assert time.perf_counter() - started < 0.5
    backend.release.set()
    exporter.close()
    assert exporter.counts == (11, 15, 0)
    assert stats.totals == [11, 15, 0]
    assert len(backend.spans) == 11


def test_spans_the_backend_refuses_are_counted_as_failed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = BlockedExporter(SpanExportResult.FAILURE)
    backend.release.set()
    stats = Stats()
    exporter = SpanExporter(CONFIG, stats, exporter=backend)
    with caplog.at_level(logging.WARNING, "gateway.export.otlp"):
        exporter.offer([fake_row(0), fake_row(1)])
        exporter.close()
    assert stats.totals == [0, 0, 2]
    assert "2 failed to export" in caplog.text


def test_close_exports_what_is_queued_and_spans_carry_their_ids() -> None:
    backend = BlockedExporter()
    backend.release.set()
    exporter = SpanExporter(CONFIG, Stats(), exporter=backend)
    exporter.offer([fake_row(i) for i in range(3)])
    exporter.close()
    assert sorted(s.context.span_id for s in backend.spans) == [1, 2, 3]
    assert {s.name for s in backend.spans} == {"chat gpt-4o"}
    assert backend.spans[0].resource.attributes["service.name"] == "spanlab-test"


def test_export_is_off_unless_an_endpoint_is_set_or_in_the_otel_variables() -> None:
    assert export_config(Settings(), env={}) is None
    config = export_config(Settings(otlp_endpoint="http://collector:4318"), env={})
    assert config is not None and config.endpoint == "http://collector:4318/v1/traces"
    from_env = export_config(Settings(), env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert from_env is not None and from_env.endpoint is None  # the SDK reads the variable
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_export_configured_without_the_extra_says_so_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(otlp, "SDK_MODULE", "opentelemetry_not_installed.trace_exporter")
    with caplog.at_level(logging.ERROR, "gateway.export.otlp"):
        assert export_config(Settings(otlp_endpoint="http://collector:4318"), env={}) is None
    assert "spanlab[otlp]" in caplog.text and "NOT exported" in caplog.text


def test_service_name_comes_from_otel_variables_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def resource(service_name: str) -> Any:
        backend = BlockedExporter()
        backend.release.set()
        config = dataclasses.replace(CONFIG, service_name=service_name)
        exporter = SpanExporter(config, Stats(), exporter=backend)
        exporter.offer([fake_row(0)])
        exporter.close()
        return backend.spans[0].resource.attributes

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert resource("")["service.name"] == "spanlab"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    attrs = resource("")
    assert attrs["service.name"] == "from-env"
    assert attrs["deployment.environment"] == "test"
    assert resource("from-settings")["service.name"] == "from-settings"


# --- a gateway exporting through its writer process -----------------------------------


def received(httpserver: HTTPServer, count: int, timeout: float = 15.0) -> list[Any]:
    """The spans the receiver got, once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        spans = []
        for request, _ in httpserver.log:
            message = ExportTraceServiceRequest()
            message.ParseFromString(request.get_data())
            for rs in message.resource_spans:
                resource = {a.key: a.value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    spans += [(resource, span) for span in ss.spans]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
        else:
            out[kv.key] = getattr(value, kind)
    return out


@pytest.mark.parametrize("capture_content", [False, True])
async def test_a_gateway_exports_its_calls_to_an_otlp_receiver(
    make_gateway: GatewayFactory, httpserver: HTTPServer, capture_content: bool
) -> None:
    httpserver.expect_request("/v1/traces", method="POST").respond_with_response(
        Response(b"", status=200, content_type="application/x-protobuf")
    )
    gateway = await make_gateway(
        otlp_endpoint=httpserver.url_for("/"),
        otlp_capture_content=capture_content,
        otlp_service_name="gw-under-test",
    )
    trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    secret = "sk-client-" + "s" * 24
    r = await gateway.client.post(
        "/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "temperature": 0.5,
            "messages": [{"role": "user", "content": "What is OTLP?"}],
        },
        headers={"traceparent": f"00-{trace}-{parent}-01", "authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 200
    [(resource, span)] = received(httpserver, 1)
    assert resource["service.name"].string_value == "gw-under-test"
    assert span.trace_id.hex() == trace
    assert span.parent_span_id.hex() == parent
    assert span.span_id.hex() == r.headers["x-spanlab-span-id"]
    assert span.name == "chat gpt-4o-mini"
    a = attrs(span)
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.usage.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 3
    assert a["gen_ai.provider.name"] == "openai"
    raw = b"".join(request.get_data() for request, _ in httpserver.log)
    assert secret.encode() not in raw
    if capture_content:
        assert "What is OTLP?" in a["gen_ai.input.messages"]
        assert "Hello there!" in a["gen_ai.output.messages"]
    else:
        assert b"What is OTLP?" not in raw and b"Hello there!" not in raw
        assert not any(k.startswith(("gen_ai.input", "gen_ai.output")) for k in a)


async def test_a_writer_without_a_process_exports_through_the_export_process_too(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """The writer in the gateway's process (a store with no file for a writer process)
    hands its stored spans to the export process all the same."""
    httpserver.expect_request("/v1/traces", method="POST").respond_with_data(b"")
    stores = sqlite_stores(str(tmp_path / "local.db"))
    await stores.database.open()
    metrics = Metrics()
    config = dataclasses.replace(CONFIG, endpoint=httpserver.url_for("/v1/traces"))
    writer = SpanWriter(stores.spans, PriceTable(), metrics, process_db=None, export=config)
    writer.start()
    span = Span(SpanContext.from_headers({}), "chat", "POST", "/v1/chat/completions", now_us())
    span.provider, span.request_model, span.end_us = "openai", "gpt-4o", span.start_us + 1000
    try:
        writer.submit(span)
        await writer.flush(10)
    finally:
        await writer.close()
        await stores.database.close()
    [(_, exported)] = received(httpserver, 1)
    assert exported.span_id.hex() == span.context.span_id
    assert metrics.registry.get_sample_value("spanlab_otlp_spans_exported_total") == 1
