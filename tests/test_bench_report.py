"""The benchmark's table (bench/report.py): issue 16's rows and targets, with nginx's
column beside Spanlab's where nginx was measured."""

from __future__ import annotations

from typing import Any

from bench.report import render, targets


def _streams(level: int, ttft: float, gap_p99: float, lost: int = 0) -> dict[str, Any]:
    return {
        "chunks": 64,
        "interval_ms": 20.0,
        "concurrency": level,
        "streams_per_round": 2 * level,
        "added_ttft_p50_ms": ttft,
        "added_ttft_p99_ms": ttft * 3,
        "added_gap_p50_ms": 0.01,
        "added_gap_p99_ms": gap_p99,
        "chunks_sent": 64 * 2 * level,
        "chunks_received": 64 * 2 * level - lost,
        "streams_complete": 2 * level,
        "streams_sent": 2 * level,
        "nginx_added_ttft_p50_ms": 0.111,
        "nginx_added_ttft_p99_ms": 0.222,
        "nginx_added_gap_p50_ms": 0.001,
        "nginx_added_gap_p99_ms": 0.002,
        "nginx_chunks_lost": 0,
    }


def results() -> dict[str, Any]:
    level = {
        "ratio": 0.96,
        "proxied_rps": 4900.0,
        "direct_rps": 5100.0,
        "errors": {"proxied": 0, "direct": 0},
        "nginx_ratio": 0.987,
        "nginx_rps": 5033.0,
    }
    return {
        "mode": "quick",
        "when": "2026-12-02T07:00:00+00:00",
        "nginx": "nginx /usr/sbin/nginx",
        "plan": {"rounds": 2},
        "machine": {
            "commit": "abc",
            "cpu": "x",
            "cores": 2,
            "python": "3.11",
            "packages": {},
            "load_avg_start": [1.0],
            "load_avg_end": [1.0],
        },
        "added_latency": {
            "added_p50_ms": 0.15,
            "added_p99_ms": 1.5,
            "direct_p50_ms": 0.04,
            "direct_p99_ms": 0.1,
            "gateway_cpu_us_per_request": 130.0,
            "nginx_added_p50_ms": 0.07,
            "nginx_added_p99_ms": 0.12,
        },
        "throughput": {
            "upstream_ms": 50.0,
            "levels": {"64": {**level, "ratio": 0.98}, "256": level},
        },
        "streaming": {"levels": {"8": _streams(8, 0.5, 0.1), "64": _streams(64, 5.0, 0.3, 2)}},
        "many_streams": {
            "streams": 1000,
            "chunks": 32,
            "interval_ms": 100.0,
            "complete": 1000,
            "errors": 0,
            "direct_complete": 1000,
            "direct_errors": 0,
            "idle_rss_mb": 50.0,
            "peak_rss_mb": 85.0,
            "rss_above_idle_mb_per_1000": 35.0,
            "wall_s": {"proxied": 3.4, "direct": 3.3},
            "nginx": {"wall_s": 3.3},
            "nginx_complete": 1000,
            "nginx_errors": 0,
            "nginx_idle_rss_mb": 16.0,
            "nginx_peak_rss_mb": 31.0,
            "nginx_rss_above_idle_mb_per_1000": 15.0,
        },
        "writer": {
            "batches": [{"batch_size": 1000, "spans_per_s": 24000.0, "stored": 10, "spans": 10}],
            "best_spans_per_s": 24000.0,
            "stored_all": True,
        },
        "matrix": {
            "cells": 1000,
            "cells_per_s": 280.0,
            "failed": 0,
            "live_alone": {
                "added_p50_ms": 0.35,
                "added_p99_ms": 2.0,
                "nginx_added_p50_ms": 0.05,
                "nginx_added_p99_ms": 0.1,
            },
            "live_beside_matrix": {
                "added_p50_ms": 0.4,
                "added_p99_ms": 3.0,
                "nginx_added_p50_ms": 0.06,
                "nginx_added_p99_ms": 0.1,
            },
            "added_p50_beside_minus_alone_ms": 0.05,
        },
    }


def test_issue_16_targets_are_checked() -> None:
    verdicts = {t["target"]: t for t in targets(results())}
    # Latency: p50 met at 0.15 (<= 0.2), p99 missed at 1.5 (<= 1).
    assert verdicts["added latency p50 ms (c=1)"]["ok"]
    assert not verdicts["added latency p99 ms (c=1)"]["ok"]
    assert round(verdicts["added latency p99 ms (c=1)"]["missed_by"], 3) == 0.5
    # Throughput: 0.98 >= 0.97 at c=64; 0.96 >= 0.95 at c=256.
    assert verdicts["throughput ratio c=64"]["ok"]
    assert verdicts["throughput ratio c=256"]["ok"]
    assert verdicts["throughput ratio c=256"]["limit"] == 0.95
    # Streams: TTFT at 8 only; the gap within 0.2 ms and chunks at both levels.
    assert verdicts["added TTFT p50 ms (8 streams)"]["ok"]
    assert "added TTFT p50 ms (64 streams)" not in verdicts
    assert verdicts["added inter-chunk gap p99 ms (8 streams)"]["ok"]
    assert not verdicts["added inter-chunk gap p99 ms (64 streams)"]["ok"]
    assert not verdicts["chunks lost (64 streams)"]["ok"]
    assert verdicts["chunks lost (8 streams)"]["ok"]
    # Memory, writer, matrix.
    assert not verdicts["RSS above idle MB per 1000 streams"]["ok"]
    assert verdicts["RSS above idle MB per 1000 streams"]["limit"] == 30
    assert not verdicts["writer spans/s (best batch size)"]["ok"]
    assert verdicts["writer spans/s (best batch size)"]["limit"] == 50000
    assert verdicts["c=1 added p50 beside the matrix minus alone, ms"]["ok"]
    assert verdicts["matrix: cells failed"]["ok"]


def test_the_table_shows_nginx_beside_each_new_row() -> None:
    r = results()
    r["targets"] = targets(r)
    table = render(r)

    def row(start: str) -> str:
        return next(line for line in table.splitlines() if line.strip().startswith(start))

    assert "0.987 (5033)" in row("c=256: ratio")
    assert ">=0.95" in row("c=256: ratio")
    assert "0.111 / 0.222 ms" in row("3 streaming 64 chunks x 20 ms, 64 streams at once")
    assert "0.111 / 0.222 ms" in row("3 streaming 64 chunks x 20 ms, 8 streams at once")
    assert "15.0 MB (16, 31 MB)" in row("RSS above idle per 1000 streams")
    assert "24000" in row("6 writer alone")
    assert "0.050 / 0.060 ms" in row("c=1 added p50 alone / beside the matrix")
    assert "MISS" in row("RSS above idle per 1000 streams")


def test_the_table_without_nginx_leaves_its_column_out() -> None:
    r = results()
    for section in ("added_latency", "many_streams"):
        r[section] = {k: v for k, v in r[section].items() if not k.startswith("nginx")}
    for level in r["throughput"]["levels"].values():
        for key in [k for k in level if k.startswith("nginx")]:
            del level[key]
    for level in r["streaming"]["levels"].values():
        for key in [k for k in level if k.startswith("nginx")]:
            del level[key]
    for key in ("live_alone", "live_beside_matrix"):
        r["matrix"][key]["nginx_added_p50_ms"] = None
    r["targets"] = targets(r)
    table = render(r)
    header = next(line for line in table.splitlines() if line.startswith("figure"))
    assert "nginx" not in header
    assert "RSS above idle per 1000 streams" in table


def _feature(off: str, on: str, on_minus_off: float, ratio: float) -> dict[str, Any]:
    """A section 8 or 9 result (bench.feature_rows) with made-up figures."""

    def side(added: float, cpu: float) -> dict[str, Any]:
        return {
            "added_p50_ms": added,
            "added_p99_ms": added * 2,
            "tree_cpu_us_per_request": cpu,
            "errors": 0,
        }

    return {
        "off": off,
        "on": on,
        "latency": {
            off: side(0.3, 400.0),
            on: side(0.3 + on_minus_off, 420.0),
            "on_minus_off_p50_ms": on_minus_off,
            "on_minus_off_p99_ms": 0.2,
            "nginx_added_p50_ms": 0.044,
            "nginx_added_p99_ms": 0.055,
        },
        "throughput": {
            "concurrency": 64,
            off: {"ratio": 0.98, "errors": 0, "tree_cpu_us_per_request": 500.0},
            on: {"ratio": ratio, "errors": 0, "tree_cpu_us_per_request": 510.0},
            "nginx_ratio": 0.991,
            "nginx_rps": 1210.0,
        },
    }


def test_keys_and_postgres_rows_and_their_targets() -> None:
    r = results()
    r["keys_quotas"] = {
        **_feature("keys_off", "keys_on", 0.07, 0.97),  # the ratio just met
        "key": {
            "requests_sent": 900,
            "requests_counted": 899,
            "tokens_counted": 64728,
            "usd_counted": 0.0216,
        },
    }
    r["postgres"] = {
        **_feature("sqlite", "postgresql", 0.1, 0.975),
        "requests_sent": 800,
        "spans_stored": 800,
    }
    r["targets"] = targets(r)
    verdicts = {t["target"]: t for t in r["targets"]}
    # Keys: on - off p50 0.07 > 0.05 (missed by 0.02); one call the key did not count.
    keys = verdicts["keys+quotas on minus off, c=1 added p50 ms"]
    assert not keys["ok"] and round(keys["missed_by"], 3) == 0.02
    assert not verdicts["keys+quotas on: calls not counted by the key"]["ok"]
    assert verdicts["keys+quotas on: errors"]["ok"]
    # PostgreSQL: its c=64 ratio against 0.97, spans stored = sent.
    assert verdicts["throughput ratio c=64 (PostgreSQL)"]["ok"]
    assert verdicts["throughput ratio c=64 (keys+quotas on)"]["ok"]
    assert verdicts["PostgreSQL: spans lost"]["ok"]
    table = render(r)

    def row(start: str) -> str:
        return next(line for line in table.splitlines() if line.strip().startswith(start))

    assert "0.370 / 0.740 ms (0.300 / 0.600 ms)" in row("8 keys + quotas: c=1 added")
    assert "0.044 / 0.055 ms" in row("8 keys + quotas: c=1 added")  # nginx's column
    assert "MISS by 0.02" in row("on minus off, c=1 p50 / p99")
    assert "899 = 900" in row("calls counted by the key")
    assert "MISS" in row("calls counted by the key")
    assert "0.975 (0.980; 0/0)" in row("c=64 ratio to direct, PostgreSQL")
    assert "0.991 (1210)" in row("c=64 ratio to direct, PostgreSQL")
    assert "420 / 510 us (400 / 500)" in row("CPU per call c=1 / c=64, PostgreSQL")
    assert "800 = 800" in row("spans in PostgreSQL")
    assert "ok" in row("spans in PostgreSQL")


def test_a_skipped_postgres_section_says_why() -> None:
    r = results()
    r["postgres"] = {"skipped": "PostgreSQL not installed (apt-get install postgresql)"}
    r["targets"] = targets(r)
    assert not [t for t in r["targets"] if "PostgreSQL" in t["target"]]
    table = render(r)
    assert "9 PostgreSQL store: skipped" in table
    assert "apt-get install postgresql" in table
