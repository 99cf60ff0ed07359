"""The shipped Grafana dashboard against a real Prometheus (Debian's ``prometheus``
package): Prometheus scrapes a real ``spanlab serve`` under a little traffic of every
kind the panels show (calls, a stream, an unreachable provider, a playground call, a
replay, a matrix run, feedback and a score on one of its cells), then every panel's
PromQL is evaluated through Prometheus's HTTP API and must return data. ``promtool check
metrics`` passes on ``/metrics``.

On a developer machine without Prometheus the tests skip; under CI they fail.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess, StartGateway, free_port, sdk

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "spanlab-dashboard.json"
# Grafana's variables, as Grafana would fill them for a short range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m"}


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (Debian package `prometheus`)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows included."""
    board = json.loads(DASHBOARD.read_text())
    panels: list[dict[str, Any]] = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    queries = []
    for panel in panels:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


@pytest.fixture
def served(start_gateway: StartGateway) -> GatewayProcess:
    return start_gateway()


@pytest.fixture
def prometheus(tmp_path: Path, served: GatewayProcess) -> Iterator[str]:
    port = free_port()
    target = httpx.URL(served.base_url)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: spanlab\n"
        "    static_configs:\n"
        f"      - targets: ['{target.host}:{target.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not get ready in 30 s"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def matrix_experiment(gateway: GatewayProcess) -> str:
    """A matrix of one variant and two inputs (run once per round of traffic: its
    series are per experiment)."""
    http = gateway.client
    r = http.post(f"{gateway.base_url}/experiments", json={"name": "dashboard matrix"})
    assert r.status_code == 201, r.text
    matrix = r.json()["id"]
    r = http.post(
        f"{gateway.base_url}/experiments/{matrix}/variants",
        json={"name": "mini", "config": {"model": "gpt-4o-mini"}},
    )
    assert r.status_code == 201, r.text
    r = http.post(
        f"{gateway.base_url}/experiments/{matrix}/inputs",
        json={"inputs": [{"key": "a", "content": "one"}, {"key": "b", "content": "two"}]},
    )
    assert r.status_code == 201, r.text
    return str(matrix)


def traffic(gateway: GatewayProcess, matrix: str) -> None:
    """A little of everything the panels show."""
    client = sdk(gateway)
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "dashboard"}]
        )
    for _ in client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "stream"}], stream=True
    ):
        pass
    http = gateway.client
    r = http.post(
        f"{gateway.base_url}/v1/chat/completions",
        json={"model": "dead/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 502, r.text
    r = http.post(
        f"{gateway.base_url}/playground/complete",
        json={"models": ["gpt-4o-mini"], "prompt": "playground"},
    )
    assert r.status_code == 200, r.text

    gateway.wait_idle()
    span_id = gateway.spans(model="gpt-4o-mini", status="ok")[0]["span_id"]
    r = http.post(f"{gateway.base_url}/experiments", json={"original_span_id": span_id})
    assert r.status_code == 201, r.text
    r = http.post(f"{gateway.base_url}/experiments/{r.json()['id']}/run")
    assert r.status_code in (200, 201), r.text

    r = http.post(f"{gateway.base_url}/experiments/{matrix}/run")
    assert r.status_code in (200, 201, 202), r.text
    deadline = time.monotonic() + 30
    while (
        http.get(f"{gateway.base_url}/experiments/{matrix}/progress").json()["status"] == "running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # A person rates a cell and a script scores it (the feedback and score panels).
    runs = http.get(f"{gateway.base_url}/experiments/{matrix}/runs").json()["data"]
    cell = next(run for run in runs if run.get("variant_id"))
    r = http.post(
        f"{gateway.base_url}/experiments/runs/{cell['id']}/feedback",
        json={"thumbsUp": True, "note": "fine"},
    )
    assert r.status_code == 200, r.text
    r = http.post(
        f"{gateway.base_url}/experiments/runs/{cell['id']}/scores",
        json={"metricKey": "dashboard_quality", "value": 0.5},
    )
    assert r.status_code == 201, r.text


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, (expr, r.text)
    body = r.json()
    assert body["status"] == "success", (expr, body)
    assert body["data"]["resultType"] == "vector", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_every_dashboard_panel_returns_data_from_a_real_prometheus(
    served: GatewayProcess, prometheus: str
) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    # Prometheus has the gateway as a healthy target before the traffic starts, so the
    # counters' rates see them move.
    deadline = time.monotonic() + 20
    while not query(prometheus, 'up{job="spanlab"} == 1'):
        assert time.monotonic() < deadline, "Prometheus never scraped the gateway"
        time.sleep(0.2)
    # Twice, with scrapes between: a series' first sample already holds the first
    # round's counts, and a rate needs to see a counter move.
    matrix = matrix_experiment(served)
    for _ in range(2):
        traffic(served, matrix)
        served.wait_idle()
        time.sleep(2.5)

    empty = []
    for title, expr in queries:
        values = [float(sample["value"][1]) for sample in query(prometheus, expr)]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{title}: {expr} -> {values}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # And the figures are the traffic's, not just present: twice 4 calls answered
    # (and the playground's and the runs' calls), 1 failed, 2 matrix cells.
    ok = query(prometheus, 'sum(spanlab_requests_total{status="ok"})')
    failed = query(prometheus, 'sum(spanlab_requests_total{status="error"})')
    assert float(ok[0]["value"][1]) >= 8 and float(failed[0]["value"][1]) == 2
    cells = query(prometheus, 'sum(spanlab_experiment_cells_total{status="completed"})')
    assert float(cells[0]["value"][1]) == 4


def test_promtool_accepts_the_metrics_page(served: GatewayProcess) -> None:
    sdk(served).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "promtool"}]
    )
    page = served.client.get(f"{served.base_url}/metrics")
    assert page.status_code == 200
    assert "spanlab_requests_total" in page.text
    checked = subprocess.run(
        [binary("promtool"), "check", "metrics"],
        input=page.text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
