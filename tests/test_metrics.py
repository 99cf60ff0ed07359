"""Every metric on ``/metrics`` moves when what it counts happens: each test reads
``/metrics`` before and after a call, an error, a stream, a stalled writer, a failed
write or an experiment run. `COVERED` lists the metrics these tests move; a metric
declared without a test here (or one removed) fails the first test."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer

from gateway.metrics import Metrics
from gateway.store.database import SQLiteDatabase
from tests.conftest import Gateway, GatewayFactory
from tests.experiments_helpers import CHAT, capture, create
from tests.fakes import FakeUpstream, chat_chunks, chat_completion, sse, stream_response
from tests.writer_helpers import (
    disk_full_for_writer_process,
    fill,
    make_room,
    stopped,
    writer_process_pid,
)

COVERED = {
    "spanlab_requests",
    "spanlab_request_duration_seconds",
    "spanlab_time_to_first_token_seconds",
    "spanlab_tokens",
    "spanlab_cost_usd",
    "spanlab_upstream_errors",
    "spanlab_in_flight_requests",
    "spanlab_span_queue_depth",
    "spanlab_span_writer_lag_seconds",
    "spanlab_spans_written",
    "spanlab_span_write_errors",
    "spanlab_experiment_runs",
    "spanlab_playground_requests",
    "spanlab_playground_request_duration_seconds",
    "spanlab_experiment_cells",
    "spanlab_experiment_cell_duration_seconds",
    "spanlab_experiment_cell_retries",
    "spanlab_feedback",
    "spanlab_scores_created",
    "spanlab_otlp_spans_exported",
    "spanlab_otlp_spans_dropped",
    "spanlab_quota_refusals",
    # moved by a matrix run waiting on a limit: tests/test_quotas_runs.py
    "spanlab_matrix_quota_waits",
}
OPENAI = {"provider": "openai"}
MINI = {"provider": "openai", "model": "gpt-4o-mini"}


async def scrape(gateway: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await gateway.client.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """A sample's value (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_every_declared_metric_has_a_test_here() -> None:
    declared = {
        family.name
        for family in Metrics().registry.collect()
        # prometheus_client's own families (none in an app registry) would start python_.
        if family.name.startswith("spanlab_")
    }
    assert declared == COVERED


async def test_a_call_moves_requests_duration_tokens_cost_and_spans_written(
    gateway: Gateway,
) -> None:
    before = await scrape(gateway)
    r = await gateway.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    await gateway.flush()
    after = await scrape(gateway)
    ok = {**MINI, "status": "ok"}
    assert (
        value(after, "spanlab_requests_total", **ok)
        == value(before, "spanlab_requests_total", **ok) + 1
    )
    assert (
        value(after, "spanlab_request_duration_seconds_count", **OPENAI)
        == value(before, "spanlab_request_duration_seconds_count", **OPENAI) + 1
    )
    for kind, tokens in (("prompt", 12), ("completion", 3)):
        name = "spanlab_tokens_total"
        assert value(after, name, **MINI, kind=kind) == value(before, name, **MINI, kind=kind) + (
            tokens
        )
    assert value(after, "spanlab_cost_usd_total", **MINI) > value(
        before, "spanlab_cost_usd_total", **MINI
    )
    assert (
        value(after, "spanlab_spans_written_total")
        == value(before, "spanlab_spans_written_total") + 1
    )
    # A non-stream call has no first token.
    assert value(after, "spanlab_time_to_first_token_seconds_count", **OPENAI) == value(
        before, "spanlab_time_to_first_token_seconds_count", **OPENAI
    )


async def test_a_stream_moves_time_to_first_token(gateway: Gateway) -> None:
    before = await scrape(gateway)
    r = await gateway.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert b"[DONE]" in r.content
    after = await scrape(gateway)
    name = "spanlab_time_to_first_token_seconds_count"
    assert value(after, name, **OPENAI) == value(before, name, **OPENAI) + 1


async def test_in_flight_counts_a_call_while_it_runs(make_gateway: GatewayFactory) -> None:
    upstream = FakeUpstream(
        handler=lambda _: stream_response(sse(chat_chunks(["a", "b", "c", "d"])), delay=0.3)
    )
    gateway: Gateway = await make_gateway(upstream)
    name = "spanlab_in_flight_requests"
    assert value(await scrape(gateway), name) == 0
    call = asyncio.create_task(
        gateway.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    )
    seen = 0.0
    async with asyncio.timeout(10):
        while seen == 0 and not call.done():
            seen = value(await scrape(gateway), name)
            await asyncio.sleep(0.02)
    assert seen == 1
    assert (await call).status_code == 200
    assert value(await scrape(gateway), name) == 0


def failing(exc: Exception | None, status: int = 500) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if exc is not None:
            raise exc
        return httpx.Response(status, json={"error": {"message": "boom", "type": "server_error"}})

    return handler


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (None, "500"),
        (httpx.ConnectError("refused"), "unreachable"),
        (httpx.ReadTimeout("slow"), "timeout"),
    ],
)
async def test_an_upstream_failure_moves_upstream_errors_by_kind(
    make_gateway: GatewayFactory, exc: Exception | None, kind: str
) -> None:
    gateway: Gateway = await make_gateway(FakeUpstream(handler=failing(exc)))
    before = await scrape(gateway)
    r = await gateway.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code >= 500
    after = await scrape(gateway)
    name = "spanlab_upstream_errors_total"
    assert value(after, name, **OPENAI, kind=kind) == value(before, name, **OPENAI, kind=kind) + 1


@pytest.mark.slow
async def test_queue_depth_and_writer_lag_count_what_a_stalled_writer_has_not_stored(
    gateway: Gateway,
) -> None:
    name, lag = "spanlab_span_queue_depth", "spanlab_span_writer_lag_seconds"
    await gateway.flush()
    assert value(await scrape(gateway), name) == 0
    assert value(await scrape(gateway), lag) == 0
    with stopped(await writer_process_pid(gateway.state.writer)):
        for _ in range(3):
            r = await gateway.client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200
        assert value(await scrape(gateway), name) == 3
        first = value(await scrape(gateway), lag)
        await asyncio.sleep(0.3)
        later = value(await scrape(gateway), lag)
        assert 0 < first < later and later >= 0.3
    await asyncio.wait_for(gateway.flush(), 20)
    assert value(await scrape(gateway), name) == 0
    assert value(await scrape(gateway), lag) == 0


@pytest.mark.slow
async def test_a_failed_write_moves_span_write_errors(
    make_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway's database, made and then filled so that its writer process (started
    # with a page limit at the file's size) cannot store a span: a full disk.
    db = tmp_path / "spanlab.db"
    database = SQLiteDatabase(str(db))
    await database.open()
    await database.close()
    disk_full_for_writer_process(monkeypatch, tmp_path, fill(db, 2))
    gateway: Gateway = await make_gateway()
    name = "spanlab_span_write_errors_total"
    assert value(await scrape(gateway), name) == 0
    r = await gateway.client.post("/v1/chat/completions", json={**CHAT, "user": "x" * 20_000})
    assert r.status_code == 200

    async def errors() -> float:
        return value(await scrape(gateway), name)

    async with asyncio.timeout(20):
        while await errors() == 0:  # noqa: ASYNC110  (counted in another process)
            await asyncio.sleep(0.05)
    make_room(db)
    await asyncio.wait_for(gateway.flush(), 20)
    assert await errors() >= 1


async def test_an_experiment_run_moves_experiment_runs_by_outcome(gateway: Gateway) -> None:
    original = await capture(gateway)
    exp = await create(gateway, original_span_id=original["span_id"])
    name = "spanlab_experiment_runs_total"
    before = await scrape(gateway)
    r = await gateway.client.post(f"/experiments/{exp['id']}/run")
    assert r.json()["status"] == "completed"
    gateway.upstream.handler = failing(None)
    r = await gateway.client.post(f"/experiments/{exp['id']}/run")
    assert r.json()["status"] == "failed"
    after = await scrape(gateway)
    for status in ("completed", "failed"):
        assert value(after, name, status=status) == value(before, name, status=status) + 1


async def test_a_playground_call_moves_playground_requests_and_duration_by_model(
    gateway: Gateway,
) -> None:
    before = await scrape(gateway)
    body = {"models": ["gpt-4o-mini", "local/llama3"], "prompt": "hi"}
    r = await gateway.client.post("/playground/complete", json=body)
    assert r.status_code == 200, r.text
    after = await scrape(gateway)
    for model in ("gpt-4o-mini", "local/llama3"):
        for name in (
            "spanlab_playground_requests_total",
            "spanlab_playground_request_duration_seconds_count",
        ):
            assert value(after, name, model=model) - value(before, name, model=model) == 1
        assert value(after, "spanlab_playground_request_duration_seconds_sum", model=model) > 0


async def test_matrix_cells_move_cells_duration_and_retries_by_experiment_and_variant(
    gateway: Gateway,
) -> None:
    """Two variants x two inputs: the first call is a 429 (retried), the variant "bad"
    names a model the upstream refuses (failed cells)."""
    calls = {"n": 0}

    def storm(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"retry-after": "0"}, json={"error": {}})
        if b"gpt-bad" in request.content:
            return httpx.Response(400, json={"error": {"message": "no such model"}})
        return httpx.Response(200, json=chat_completion())

    gateway.upstream.handler = storm
    exp = (await create(gateway, name="m"))["id"]
    variants = {}
    for name, model in (("good", "gpt-4o-mini"), ("bad", "gpt-bad")):
        r = await gateway.client.post(
            f"/experiments/{exp}/variants", json={"name": name, "config": {"model": model}}
        )
        variants[name] = r.json()["variant"]["id"]
    await gateway.client.post(f"/experiments/{exp}/inputs", json={"inputs": ["x", "y"]})
    before = await scrape(gateway)
    r = await gateway.client.post(f"/experiments/{exp}/run", json={"concurrency": 1})
    assert r.status_code == 202, r.text
    await asyncio.wait_for(gateway.state.experiments.matrix.wait(exp), 10)
    after = await scrape(gateway)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    good, bad = variants["good"], variants["bad"]
    cells = "spanlab_experiment_cells_total"
    assert moved(cells, experiment=exp, variant=good, status="completed") == 2
    assert moved(cells, experiment=exp, variant=bad, status="failed") == 2
    assert moved(cells, experiment=exp, variant=good, status="failed") == 0
    duration = "spanlab_experiment_cell_duration_seconds_count"
    assert moved(duration, experiment=exp, variant=good) == 2
    assert moved(duration, experiment=exp, variant=bad) == 2
    retries = "spanlab_experiment_cell_retries_total"
    assert moved(retries, experiment=exp, variant=good) == 1  # the good variant runs first
    assert moved(retries, experiment=exp, variant=bad) == 0


async def test_feedback_and_scores_on_an_app_span_count_under_experiment_none(
    gateway: Gateway,
) -> None:
    """By experiment and variant: ``none`` for a span of no experiment (tests of runs'
    labels: tests/test_scores_api.py)."""
    span = await capture(gateway, CHAT)
    before = await scrape(gateway)
    url = f"/spans/{span['span_id']}"
    assert (await gateway.client.post(f"{url}/feedback", json={"thumbsUp": True})).is_success
    assert (await gateway.client.post(f"{url}/feedback", json={"note": "x"})).is_success
    r = await gateway.client.post(f"{url}/scores", json={"metricKey": "m", "value": 1})
    assert r.status_code == 201
    after = await scrape(gateway)
    none = {"experiment": "none", "variant": "none"}
    for thumbs in ("up", "none"):
        name = "spanlab_feedback_total"
        assert value(after, name, **none, thumbs=thumbs) == (
            value(before, name, **none, thumbs=thumbs) + 1
        )
    name = "spanlab_scores_created_total"
    assert value(after, name, **none) == value(before, name, **none) + 1


async def _until_counted(gateway: Gateway, name: str, **labels: str) -> float:
    """Wait for a count the writer process reports (about once a second)."""
    async with asyncio.timeout(20):
        while not (count := value(await scrape(gateway), name, **labels)):  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # (counted in another process)
    return count


async def test_an_exported_span_moves_otlp_spans_exported(
    make_gateway: GatewayFactory, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v1/traces", method="POST").respond_with_data(b"")
    gateway: Gateway = await make_gateway(otlp_endpoint=httpserver.url_for("/"))
    name = "spanlab_otlp_spans_exported_total"
    assert value(await scrape(gateway), name) == 0
    r = await gateway.client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    assert await _until_counted(gateway, name) == 1
    assert (
        value(await scrape(gateway), "spanlab_otlp_spans_dropped_total", reason="queue_full") == 0
    )


@pytest.mark.slow
async def test_a_span_the_receiver_cannot_take_moves_otlp_spans_dropped(
    make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # read by the writer process
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        gateway: Gateway = await make_gateway(otlp_endpoint=f"http://127.0.0.1:{port}")
        name = "spanlab_otlp_spans_dropped_total"
        assert value(await scrape(gateway), name, reason="export_failed") == 0
        r = await gateway.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200  # the call is not held up by the export
        assert await _until_counted(gateway, name, reason="export_failed") == 1
        assert value(await scrape(gateway), "spanlab_otlp_spans_exported_total") == 0
        assert value(await scrape(gateway), "spanlab_spans_written_total") == 1


async def test_a_call_past_a_keys_limit_moves_quota_refusals(make_gateway: GatewayFactory) -> None:
    admin = {"x-spanlab-key": "metrics-admin-key-" + "0" * 24}
    gateway: Gateway = await make_gateway(admin_key=admin["x-spanlab-key"])
    made = await gateway.client.post(
        "/keys", json={"name": "m", "scopes": ["proxy"], "rpm": 1}, headers=admin
    )
    key = {"x-spanlab-key": made.json()["key"]}
    gateway.app.state.quotas.clock = lambda: 1_764_669_630.0  # one minute throughout
    name = "spanlab_quota_refusals_total"
    assert value(await _scrape_as(gateway, admin), name, limit="rpm") == 0
    statuses = [
        (await gateway.client.post("/v1/chat/completions", json=CHAT, headers=key)).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 429, 429]
    assert value(await _scrape_as(gateway, admin), name, limit="rpm") == 2


async def _scrape_as(
    gateway: Gateway, headers: dict[str, str]
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = await gateway.client.get("/metrics", headers=headers)
    assert r.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
