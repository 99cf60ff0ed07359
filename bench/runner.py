"""The benchmark's sections: every figure proxied against direct, interleaved.

Each section runs ``rounds + 1`` rounds; round 0 warms up (connections, pools, caches)
and is discarded. Within a round the direct run (load generator -> mock), the run
through nginx (load generator -> nginx -> mock; where nginx is installed) and the
proxied run (load generator -> gateway -> mock) follow each other, in an order that
rotates from round to round, so a noisy neighbour hits every side alike. A figure is
the median over the measured rounds of the per-round difference (or ratio).

nginx is the physical reference: a C reverse proxy that captures nothing (one worker
like the gateway's one event loop, keep-alive upstream, ``proxy_buffering off``; the
config is `bench.procs.NGINX_CONF`). Sections 1-3 show its added figures beside the
gateway's.
"""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.matrix_bench import matrix_section
from bench.procs import Gateway, LoadGenerator, MockUpstream, Nginx, RSSSampler, nginx_binary
from bench.util import HEADERS, median
from bench.writer_bench import REQUEST, run_writer_bench

MB = 1024 * 1024


@dataclass
class Plan:
    rounds: int = 5
    latency_requests: int = 2000
    throughput_levels: tuple[int, ...] = (1, 16, 64, 256)
    throughput_seconds: float = 4.0
    upstream_ms: float = 50.0
    stream_chunks: int = 64
    stream_interval_ms: float = 20.0
    stream_levels: tuple[int, ...] = (8, 64)  # concurrent streams, one figure each
    streams_per_round: int = 32  # at least twice the concurrency at each level
    many_streams: int = 1000
    many_chunks: int = 32
    many_interval_ms: float = 100.0
    capture_concurrency: int = 64
    saturated_concurrency: int = 16
    commit_seconds: float = 4.0
    commit_concurrency: int = 16
    writer_counts: dict[int, int] = field(
        default_factory=lambda: {1: 3000, 100: 30000, 1000: 30000}
    )
    matrix_variants: int = 4
    matrix_inputs: int = 250  # 4 x 250 = 1,000 cells
    matrix_concurrency: int = 32
    matrix_bursts: int = 6  # c=1 burst pairs without the matrix
    matrix_burst_s: float = 0.5
    feature_concurrency: int = 64  # sections 8-9's throughput level (bench.feature_rows)
    feature_bursts: int = 4  # sections 8-9: each round's c=1 calls in this many passes
    sections: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9)
    nginx: bool = True  # measure nginx beside direct and the gateway, if installed


QUICK = Plan(
    rounds=2,
    latency_requests=500,
    throughput_seconds=2.0,
    streams_per_round=16,
    commit_seconds=2.0,
    writer_counts={1: 1000, 100: 10000, 1000: 10000},
)


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


class Bench:
    def __init__(self, plan: Plan, workdir: Path, log: Any) -> None:
        self.plan = plan
        self.workdir = workdir
        self.log = log
        self.mock = MockUpstream()
        self.loadgen = LoadGenerator()
        self.gateway = Gateway(workdir, "gateway", self.mock, capture=True)
        self.gateways = [self.gateway]
        self.services: list[Any] = []  # other processes to stop last (a PostgreSQL server)
        self.loadgen_cpu: list[float] = []
        binary = nginx_binary() if plan.nginx else None
        self.nginx = Nginx(workdir, self.mock, binary) if binary else None
        self.nginx_note = (
            f"nginx {binary}"
            if binary
            else "nginx left out (--no-nginx)"
            if not plan.nginx
            else "nginx not installed (apt-get install nginx-light): its column is empty"
        )

    def close(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for gw in self.gateways:
            gw.stop()
        for service in self.services:
            service.stop()
        self.loadgen.stop()
        self.mock.stop()

    # --- plumbing ---------------------------------------------------------------------

    def job(self, kind: str, target: MockUpstream | Gateway | Nginx, **spec: Any) -> dict[str, Any]:
        spec.setdefault("path", "/v1/chat/completions")
        spec.setdefault("body", REQUEST)
        headers = dict(HEADERS)
        headers.update(spec.pop("headers", {}))
        job = {"kind": kind, "host": "127.0.0.1", "port": target.port, "headers": headers, **spec}
        gc.collect()
        proxy = isinstance(target, Gateway | Nginx)
        cpu0 = target.cpu_seconds() if proxy else 0.0
        result = self.loadgen.run(job)
        if result.get("cpu_util") is not None:
            self.loadgen_cpu.append(result["cpu_util"])
        if isinstance(target, Gateway | Nginx):
            target.requests_sent += result["sent"]
            cpu = target.cpu_seconds() - cpu0
            result["gateway_cpu_util"] = cpu / result["wall_s"] if result["wall_s"] else None
            result["gateway_cpu_us_per_request"] = (
                cpu * 1e6 / result["sent"] if result["sent"] else None
            )
        return result

    def pair(
        self, rnd: int, kind: str, proxied: Gateway | None = None, **spec: Any
    ) -> dict[str, dict[str, Any]]:
        """One direct, one nginx (if installed) and one proxied run, in an order that
        rotates by round."""
        sides: list[tuple[str, MockUpstream | Gateway | Nginx]] = [
            ("direct", self.mock),
            ("proxied", proxied or self.gateway),
        ]
        if self.nginx is not None:
            sides.insert(1, ("nginx", self.nginx))
        shift = rnd % len(sides)
        sides = sides[shift:] + sides[:shift]
        return {name: self.job(kind, target, **spec) for name, target in sides}

    def rounds(self) -> range:
        return range(self.plan.rounds + 1)

    # --- 1. added latency -------------------------------------------------------------

    def added_latency(self) -> dict[str, Any]:
        runs = []
        for rnd in self.rounds():
            runs.append(self.pair(rnd, "latency", n=self.plan.latency_requests))
            self.log(f"  latency round {rnd}: " + _brief(runs[-1], "latency_us"))
        measured = runs[1:]

        def pick(side: str, p: str) -> list[float | None]:
            return [r[side]["latency_us"][p] for r in measured]

        return {
            "requests_per_round": self.plan.latency_requests,
            "direct_p50_ms": _ms(median(pick("direct", "p50"))),
            "direct_p99_ms": _ms(median(pick("direct", "p99"))),
            "proxied_p50_ms": _ms(median(pick("proxied", "p50"))),
            "proxied_p99_ms": _ms(median(pick("proxied", "p99"))),
            "added_p50_ms": _ms(
                median(
                    [
                        _diff(r["proxied"]["latency_us"]["p50"], r["direct"]["latency_us"]["p50"])
                        for r in measured
                    ]
                )
            ),
            "added_p99_ms": _ms(
                median(
                    [
                        _diff(r["proxied"]["latency_us"]["p99"], r["direct"]["latency_us"]["p99"])
                        for r in measured
                    ]
                )
            ),
            "errors": sum(r[s]["errors"] for r in runs for s in r),
            "gateway_cpu_us_per_request": median(
                [r["proxied"]["gateway_cpu_us_per_request"] for r in measured]
            ),
            **_nginx_added(measured, "latency_us", "added"),
            "rounds": runs,
        }

    # --- 2. throughput ----------------------------------------------------------------

    def throughput(self) -> dict[str, Any]:
        levels: dict[str, Any] = {}
        for concurrency in self.plan.throughput_levels:
            runs = []
            for rnd in self.rounds():
                runs.append(
                    self.pair(
                        rnd,
                        "throughput",
                        concurrency=concurrency,
                        duration=self.plan.throughput_seconds,
                        headers={"x-mock-latency-ms": str(self.plan.upstream_ms)},
                    )
                )
                self.log(f"  c={concurrency} round {rnd}: " + _brief_rps(runs[-1]))
            levels[str(concurrency)] = _throughput_summary(runs, concurrency, self.plan)
        return {"upstream_ms": self.plan.upstream_ms, "levels": levels}

    # --- 3. streaming -----------------------------------------------------------------

    def streaming(self) -> dict[str, Any]:
        return {
            "levels": {str(c): self.streaming_level(c) for c in self.plan.stream_levels},
        }

    def streaming_level(self, concurrency: int) -> dict[str, Any]:
        plan = self.plan
        total = max(plan.streams_per_round, 2 * concurrency)
        spec = {
            "body": {**REQUEST, "stream": True},
            "headers": {
                "x-mock-chunks": str(plan.stream_chunks),
                "x-mock-interval-ms": str(plan.stream_interval_ms),
            },
            "concurrency": concurrency,
            "total": total,
            "expected_events": plan.stream_chunks,
            # Streams start spread over one interval (as independent clients would),
            # not in lockstep, so their events do not all land on the same instant.
            "stagger_s": plan.stream_interval_ms / 1000.0 / concurrency,
        }
        runs = []
        for rnd in self.rounds():
            runs.append(self.pair(rnd, "streams", **spec))
            self.log(f"  {concurrency} streams round {rnd}: " + _brief(runs[-1], "ttft_us"))
        measured = runs[1:]

        def added(metric: str, p: str) -> float | None:
            return _ms(
                median([_diff(r["proxied"][metric][p], r["direct"][metric][p]) for r in measured])
            )

        def lost(side: str) -> int:
            return sum(r[side]["events_expected"] - r[side]["events_received"] for r in runs)

        return {
            "chunks": plan.stream_chunks,
            "interval_ms": plan.stream_interval_ms,
            "concurrency": concurrency,
            "streams_per_round": total,
            "added_ttft_p50_ms": added("ttft_us", "p50"),
            "added_ttft_p99_ms": added("ttft_us", "p99"),
            "added_gap_p50_ms": added("gap_us", "p50"),
            "added_gap_p99_ms": added("gap_us", "p99"),
            "direct_ttft_p50_ms": _ms(median([r["direct"]["ttft_us"]["p50"] for r in measured])),
            "proxied_ttft_p50_ms": _ms(median([r["proxied"]["ttft_us"]["p50"] for r in measured])),
            "direct_gap_p99_ms": _ms(median([r["direct"]["gap_us"]["p99"] for r in measured])),
            "chunks_sent": sum(r["proxied"]["events_expected"] for r in runs),
            "chunks_received": sum(r["proxied"]["events_received"] for r in runs),
            "streams_complete": sum(r["proxied"]["complete"] for r in runs),
            "streams_sent": sum(r["proxied"]["sent"] for r in runs),
            "errors": {s: sum(r[s]["errors"] for r in runs) for s in runs[0]},
            **({"nginx_chunks_lost": lost("nginx")} if "nginx" in runs[0] else {}),
            **_nginx_added(measured, "ttft_us", "added_ttft"),
            **_nginx_added(measured, "gap_us", "added_gap"),
            "rounds": runs,
        }

    # --- 4. many concurrent streams ---------------------------------------------------

    def many_streams(self) -> dict[str, Any]:
        """On a fresh gateway, so its idle RSS is not inflated by the earlier sections."""
        plan = self.plan
        fresh = Gateway(self.workdir, "gateway-streams", self.mock, capture=True)
        self.gateways.append(fresh)
        spec = {
            "body": {**REQUEST, "stream": True},
            "headers": {
                "x-mock-chunks": str(plan.many_chunks),
                "x-mock-interval-ms": str(plan.many_interval_ms),
            },
            "expected_events": plan.many_chunks,
            "timeout": 120.0,
        }
        # Warm up: pools, imports, caches; then idle RSS.
        self.job("streams", fresh, concurrency=8, total=32, **spec)
        self.job("throughput", fresh, concurrency=8, duration=0.5)
        time.sleep(0.5)
        idle = median([_sample(fresh) for _ in range(5)]) or 0
        direct = self.job(
            "streams", self.mock, concurrency=plan.many_streams, total=plan.many_streams, **spec
        )
        self.log("  1000 streams direct: " + _brief_streams(direct))
        nginx: dict[str, Any] = {}
        if self.nginx is not None:
            # nginx's own figure beside the gateway's: its master's and worker's RSS.
            self.job("streams", self.nginx, concurrency=8, total=8, **spec)  # one wave
            nginx_idle = median([_sample(self.nginx) for _ in range(5)]) or 0
            with RSSSampler(self.nginx) as nginx_sampler:
                through_nginx = self.job(
                    "streams",
                    self.nginx,
                    concurrency=plan.many_streams,
                    total=plan.many_streams,
                    **spec,
                )
            self.log("  1000 streams nginx: " + _brief_streams(through_nginx))
            nginx = {
                "nginx": through_nginx,
                "nginx_complete": through_nginx["complete"],
                "nginx_errors": through_nginx["errors"],
                "nginx_idle_rss_mb": nginx_idle / MB,
                "nginx_peak_rss_mb": nginx_sampler.peak / MB,
                "nginx_rss_above_idle_mb_per_1000": (nginx_sampler.peak - nginx_idle)
                / MB
                * 1000.0
                / plan.many_streams,
            }
        with RSSSampler(fresh) as sampler:
            proxied = self.job(
                "streams", fresh, concurrency=plan.many_streams, total=plan.many_streams, **spec
            )
        self.log("  1000 streams proxied: " + _brief_streams(proxied))
        time.sleep(1.0)
        after = fresh.rss()
        per_1000 = (sampler.peak - idle) / MB * 1000.0 / plan.many_streams
        return {
            "streams": plan.many_streams,
            "chunks": plan.many_chunks,
            "interval_ms": plan.many_interval_ms,
            "direct": direct,
            "proxied": proxied,
            "complete": proxied["complete"],
            "errors": proxied["errors"],
            "direct_complete": direct["complete"],
            "direct_errors": direct["errors"],
            "idle_rss_mb": idle / MB,
            "peak_rss_mb": sampler.peak / MB,
            "rss_after_mb": after / MB,
            "rss_above_idle_mb_per_1000": per_1000,
            "wall_s": {"direct": direct["wall_s"], "proxied": proxied["wall_s"]},
            **nginx,
        }

    # --- 5. capture cost --------------------------------------------------------------

    def capture_cost(self) -> dict[str, Any]:
        plan = self.plan
        off = Gateway(self.workdir, "gateway-nocapture", self.mock, capture=False)
        self.gateways.append(off)
        out: dict[str, Any] = {}
        for label, concurrency, latency in (
            ("loaded", plan.capture_concurrency, plan.upstream_ms),
            ("saturated", plan.saturated_concurrency, 0.0),
        ):
            runs = []
            for rnd in self.rounds():
                spec = {
                    "concurrency": concurrency,
                    "duration": plan.throughput_seconds,
                    "headers": {"x-mock-latency-ms": str(latency)},
                }
                sides = [("on", self.gateway), ("off", off)]
                if rnd % 2:
                    sides.reverse()
                runs.append({name: self.job("throughput", gw, **spec) for name, gw in sides})
                self.log(
                    f"  capture {label} round {rnd}: on {runs[-1]['on']['rps']:.0f} rps,"
                    f" off {runs[-1]['off']['rps']:.0f} rps"
                )
            measured = runs[1:]
            out[label] = {
                "concurrency": concurrency,
                "upstream_ms": latency,
                "ratio_on_off": median([r["on"]["rps"] / r["off"]["rps"] for r in measured]),
                "rps_on": median([r["on"]["rps"] for r in measured]),
                "rps_off": median([r["off"]["rps"] for r in measured]),
                "cpu_us_per_request_on": median(
                    [r["on"]["gateway_cpu_us_per_request"] for r in measured]
                ),
                "cpu_us_per_request_off": median(
                    [r["off"]["gateway_cpu_us_per_request"] for r in measured]
                ),
                "errors": {s: sum(r[s]["errors"] for r in runs) for s in ("on", "off")},
                "rounds": runs,
            }
        delay = self.job(
            "commit_delay",
            self.gateway,
            events_path="/events",
            concurrency=plan.commit_concurrency,
            duration=plan.commit_seconds,
            headers={"x-mock-latency-ms": str(plan.upstream_ms)},
        )
        self.log(f"  commit delay: {delay['commit_delay_us']}")
        out["commit_delay"] = {
            "concurrency": plan.commit_concurrency,
            "upstream_ms": plan.upstream_ms,
            "p50_ms": _ms(delay["commit_delay_us"]["p50"]),
            "p99_ms": _ms(delay["commit_delay_us"]["p99"]),
            "max_ms": _ms(delay["commit_delay_us"]["max"]),
            "spans_tracked": delay["spans_tracked"],
            "spans_not_seen": delay["spans_not_seen"],
            "lagged_events": delay["lagged_events"],
        }
        return out

    # --- 6. the writer alone ----------------------------------------------------------

    def writer(self) -> dict[str, Any]:
        """Spans/s through the writer process into SQLite, no HTTP (bench.writer_bench)."""
        results = run_writer_bench(self.plan.writer_counts)
        for result in results:
            self.log(f"  writer batch {result['batch_size']}: {result['spans_per_s']:.0f} spans/s")
        return {
            "batches": results,
            "best_spans_per_s": max(w["spans_per_s"] for w in results),
            "stored_all": all(w["stored"] == w["spans"] for w in results),
        }

    # --- 7. a matrix beside live traffic ----------------------------------------------

    def matrix(self) -> dict[str, Any]:
        """A 1,000-cell matrix in a fresh gateway, with c=1 proxied bursts (each paired
        with a direct one, and one through nginx) before and while it runs
        (bench.matrix_bench)."""
        fresh = Gateway(self.workdir, "gateway-matrix", self.mock, capture=True)
        self.gateways.append(fresh)
        plan = self.plan
        result = matrix_section(
            self.mock,
            fresh,
            self.loadgen,
            self.nginx,
            variants=plan.matrix_variants,
            inputs=plan.matrix_inputs,
            concurrency=plan.matrix_concurrency,
            bursts=plan.matrix_bursts,
            burst_s=plan.matrix_burst_s,
        )
        # The matrix's cells are spans of this gateway too (accounted at the end).
        fresh.requests_sent += result["cells"] + result["live_requests_proxied"]
        self.log(
            f"  matrix: {result['cells']} cells, {result['cells_per_s']} cells/s;"
            f" c=1 added p50 alone {result['live_alone']['added_p50_ms']} ms,"
            f" beside {result['live_beside_matrix']['added_p50_ms']} ms"
        )
        return result

    def spans_accounting(self) -> dict[str, Any]:
        """After a graceful stop of every gateway: requests sent against spans stored."""
        for gw in self.gateways:
            gw.stop()
        per = {
            gw.name: {
                "capture": gw.capture,
                "requests_sent": gw.requests_sent,
                "spans_stored": gw.spans_stored(),
            }
            for gw in self.gateways
        }
        captured = [v for v in per.values() if v["capture"]]
        return {
            "gateways": per,
            "requests_sent": sum(v["requests_sent"] for v in captured),
            "spans_stored": sum(v["spans_stored"] for v in captured),
            "spans_stored_capture_off": sum(
                v["spans_stored"] for v in per.values() if not v["capture"]
            ),
        }

    def plan_dict(self) -> dict[str, Any]:
        return asdict(self.plan)


def _sample(gw: Gateway | Nginx) -> float:
    rss = gw.rss()
    time.sleep(0.1)
    return float(rss)


def _throughput_summary(
    runs: list[dict[str, dict[str, Any]]], concurrency: int, plan: Plan
) -> dict[str, Any]:
    measured = runs[1:]
    ideal = concurrency / (plan.upstream_ms / 1000.0)
    direct = median([r["direct"]["rps"] for r in measured])
    nginx = {}
    if "nginx" in measured[0]:
        nginx = {
            "nginx_ratio": median([r["nginx"]["rps"] / r["direct"]["rps"] for r in measured]),
            "nginx_rps": median([r["nginx"]["rps"] for r in measured]),
            "nginx_p99_ms": _ms(median([r["nginx"]["latency_us"]["p99"] for r in measured])),
        }
    return {
        **nginx,
        "ratio": median([r["proxied"]["rps"] / r["direct"]["rps"] for r in measured]),
        "direct_rps": direct,
        "proxied_rps": median([r["proxied"]["rps"] for r in measured]),
        "ideal_rps": ideal,
        "direct_vs_ideal": (direct or 0) / ideal,
        "errors": {s: sum(r[s]["errors"] for r in runs) for s in runs[0]},
        "proxied_p50_ms": _ms(median([r["proxied"]["latency_us"]["p50"] for r in measured])),
        "proxied_p99_ms": _ms(median([r["proxied"]["latency_us"]["p99"] for r in measured])),
        "direct_p99_ms": _ms(median([r["direct"]["latency_us"]["p99"] for r in measured])),
        "gateway_cpu_util": median([r["proxied"]["gateway_cpu_util"] for r in measured]),
        "gateway_cpu_us_per_request": median(
            [r["proxied"]["gateway_cpu_us_per_request"] for r in measured]
        ),
        "rounds": runs,
    }


def _nginx_added(
    measured: list[dict[str, dict[str, Any]]], metric: str, name: str
) -> dict[str, float | None]:
    """nginx's added p50/p99 of ``metric`` (its figure minus direct's, per round), or
    nothing when nginx was not measured."""
    if not measured or "nginx" not in measured[0]:
        return {}
    return {
        f"nginx_{name}_{p}_ms": _ms(
            median([_diff(r["nginx"][metric][p], r["direct"][metric][p]) for r in measured])
        )
        for p in ("p50", "p99")
    }


def _brief(pair: dict[str, dict[str, Any]], metric: str) -> str:
    return ", ".join(
        f"{side} p50 {_ms(r[metric]['p50']) or 0:.3f} ms p99 {_ms(r[metric]['p99']) or 0:.3f} ms"
        for side, r in pair.items()
    )


def _brief_rps(pair: dict[str, dict[str, Any]]) -> str:
    return ", ".join(
        f"{side} {r['rps']:.0f} rps ({r['errors']} errors)" for side, r in pair.items()
    )


def _brief_streams(result: dict[str, Any]) -> str:
    return (
        f"{result['complete']}/{result['sent']} complete, {result['errors']} errors,"
        f" {result['wall_s']:.1f} s, ttft p50 {_ms(result['ttft_us']['p50']) or 0:.1f} ms"
    )
