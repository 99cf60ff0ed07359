"""The benchmark's sections 8 and 9 (bench/feature_rows.py) on a tiny plan, through
real processes: the keys-on gateway refuses nothing and its key counts every call it
was sent; the PostgreSQL gateway stores a span for every call; the table shows both.
Figures are not checked (no timing assertions): only that the rows measure what they
say."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bench.feature_rows import keys_quotas, postgres
from bench.report import render, targets
from bench.runner import QUICK, Bench
from tests.postgres import require_postgres

pytestmark = pytest.mark.e2e

TINY = dataclasses.replace(
    QUICK,
    rounds=1,
    latency_requests=20,
    throughput_seconds=0.3,
    feature_concurrency=4,
    upstream_ms=5.0,
    nginx=False,  # the sections' own sides only: nginx is section 1's business
)


def _bench(tmp_path: Path) -> Bench:
    return Bench(dataclasses.replace(TINY), tmp_path, lambda message: None)


def _table(section: str, result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    r: dict[str, Any] = {
        "mode": "tiny",
        "when": "now",
        "nginx": "",
        "plan": {"rounds": TINY.rounds},
        "machine": {"commit": "x", "cpu": "x", "cores": 1, "python": "3", "packages": {}},
        section: result,
    }
    r["targets"] = targets(r)
    return render(r), {t["target"]: t for t in r["targets"]}


def test_keys_and_quotas_section_counts_every_call(tmp_path: Path) -> None:
    bench = _bench(tmp_path)
    try:
        result = keys_quotas(bench)
        accounting = bench.spans_accounting()
    finally:
        bench.close()
    lat, tp, key = result["latency"], result["throughput"], result["key"]
    # Both gateways answered every call; the key was sent both rounds of both jobs.
    assert lat["errors"] == {"direct": 0, "keys_off": 0, "keys_on": 0}
    assert tp["errors"] == {"direct": 0, "keys_off": 0, "keys_on": 0}
    assert key["requests_sent"] >= 2 * TINY.latency_requests + 2
    assert key["requests_counted"] == key["requests_sent"]
    assert key["tokens_counted"] > 0
    assert lat["on_minus_off_p50_ms"] is not None
    assert accounting["gateways"]["gateway-keys-on"]["spans_stored"] == key["requests_sent"]
    table, verdicts = _table("keys_quotas", result)
    assert verdicts["keys+quotas on: calls not counted by the key"]["ok"]
    assert verdicts["keys+quotas on: errors"]["ok"]
    assert "keys+quotas on minus off, c=1 added p50 ms" in verdicts
    assert f"{key['requests_sent']} = {key['requests_sent']}" in table


def test_postgres_section_stores_every_call(tmp_path: Path) -> None:
    require_postgres()
    bench = _bench(tmp_path)
    try:
        result = postgres(bench)
        accounting = bench.spans_accounting()  # the server is still up until close()
    finally:
        bench.close()
    assert result["latency"]["errors"] == {"direct": 0, "sqlite": 0, "postgresql": 0}
    assert result["throughput"]["errors"] == {"direct": 0, "sqlite": 0, "postgresql": 0}
    assert result["requests_sent"] >= 2 * TINY.latency_requests + 2
    assert result["spans_stored"] == result["requests_sent"]
    assert accounting["requests_sent"] == accounting["spans_stored"]
    assert accounting["gateways"]["gateway-postgresql"]["spans_stored"] == result["spans_stored"]
    table, verdicts = _table("postgres", result)
    assert verdicts["PostgreSQL: spans lost"]["ok"]
    assert "9 PostgreSQL store: c=1 added p50 / p99, PostgreSQL (SQLite)" in table
