"""Sections 8 and 9 of ``python -m bench``: the proxy's figures with a feature on,
against the same gateway build with it off, direct and nginx in the same rounds.

8. ``keys_quotas``: two fresh `spanlab serve` processes of this build; one with keys
   off, one that requires a gateway key (``admin_key`` set) called with a proxy key
   made through ``POST /keys`` with every quota set (rpm, tokens per day, USD per day
   and per month), each high enough never to refuse, so every call is authenticated,
   admitted, counted and charged. Target (issue 16): the c=1 added p50 with keys and
   quotas on within 0.05 ms of off. Checked after: the key's requests counted today
   equal the requests sent with it.
9. ``postgres``: a fresh gateway storing in SQLite beside one storing in PostgreSQL (a
   throwaway cluster, `bench.postgres.PostgresServer`, with ``synchronous_commit =
   off``: the SQLite store's promise, synchronous = NORMAL in WAL mode). Checked after
   a graceful stop: the spans in PostgreSQL equal the requests sent. Skipped with a
   note where PostgreSQL is not installed.

A section's rounds are those of sections 1 and 2 (``plan.rounds + 1``, round 0 warms
up and is discarded): in each, the direct path, nginx (where installed) and the two
gateways run one after another in an order that rotates from round to round, first
``plan.latency_requests`` sequential calls each (c=1, instant upstream; in
``plan.feature_bursts`` passes over the sides, forwards then backwards, the round's
percentiles taken over all of a side's calls), then, in rounds of their own, a closed
loop at ``plan.feature_concurrency`` against a ``plan.upstream_ms`` upstream. A figure
is the median over the measured rounds of the per-round difference (a gateway's minus
direct's; the feature-on gateway's minus the feature-off one's) or ratio, so a load
that changes over the run weighs on every side alike. Each gateway's CPU per call is
kept beside (process CPU time, which the machine's load distorts less than wall time):
its process tree (the gateway, its span writer, its background process) and, for
PostgreSQL, the server's processes, so each store's work is counted where it is done.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.postgres import PostgresServer, pg_bin
from bench.procs import Gateway, MockUpstream, Nginx
from bench.runner import Bench
from bench.util import median, summary

# Every limit a key can carry, each far above what a run sends: never refused.
KEY_LIMITS = {"rpm": 10**9, "tokens_per_day": 10**12, "usd_per_day": 1e9, "usd_per_month": 1e9}
PG_SETTINGS = {"synchronous_commit": "off"}
PG_MISSING = "PostgreSQL not installed (apt-get install postgresql): section 9 skipped"


@dataclass
class Side:
    """One side of a comparison: where calls go, the headers they carry (a key), and
    for a gateway whose store is a server of its own, that server's CPU seconds."""

    name: str
    target: MockUpstream | Nginx | Gateway
    headers: dict[str, str] = field(default_factory=dict)
    store_cpu: Callable[[], float] | None = None


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000.0


def _med(measured: list[dict[str, dict[str, Any]]], side: str, key: str) -> float | None:
    return median([r[side][key] for r in measured])


def _rotate(items: list[Any], rnd: int) -> list[Any]:
    shift = rnd % len(items)
    return items[shift:] + items[:shift]


def _run(bench: Bench, kind: str, side: Side, **spec: Any) -> dict[str, Any]:
    """`Bench.job`, plus a gateway's CPU per call counting its whole process tree and
    its store's server if it has one: the SQLite store's work is in the gateway's span
    writer process, much of PostgreSQL's in the server's backends."""
    target = side.target

    def cpu() -> float:
        if not isinstance(target, Gateway):
            return 0.0
        return target.tree_cpu_seconds() + (side.store_cpu() if side.store_cpu else 0.0)

    cpu0 = cpu()
    result = bench.job(kind, target, **{"headers": side.headers, **spec})
    if isinstance(target, Gateway):
        used = cpu() - cpu0
        result["tree_cpu_us_per_request"] = used * 1e6 / result["sent"] if result["sent"] else None
    return result


def compare(bench: Bench, off: Side, on: Side) -> dict[str, Any]:
    """Direct, nginx, ``off`` and ``on`` in interleaved rounds: c=1 latency, then the
    closed loop at ``plan.feature_concurrency``."""
    plan = bench.plan
    sides = [Side("direct", bench.mock), off, on]
    if bench.nginx is not None:
        sides.insert(1, Side("nginx", bench.nginx))
    latency: list[dict[str, dict[str, Any]]] = []
    bursts = max(1, plan.feature_bursts)
    per_burst = max(1, plan.latency_requests // bursts)
    for rnd in bench.rounds():
        # The round's calls in passes over every side, forwards then backwards (ABBA),
        # so a load that drifts within the round weighs on each side alike: the
        # difference on - off is a few hundredths of a millisecond.
        order = _rotate(sides, rnd)
        runs: dict[str, list[dict[str, Any]]] = {side.name: [] for side in order}
        for burst in range(bursts):
            for side in order if burst % 2 == 0 else order[::-1]:
                runs[side.name].append(_run(bench, "latency", side, n=per_burst, raw=True))
        latency.append({name: merge_latency(parts) for name, parts in runs.items()})
        bench.log(f"  c=1 round {rnd}: " + _brief_latency(latency[-1]))
    upstream = {"x-mock-latency-ms": str(plan.upstream_ms)}
    throughput: list[dict[str, dict[str, Any]]] = []
    for rnd in bench.rounds():
        throughput.append(
            {
                side.name: _run(
                    bench,
                    "throughput",
                    side,
                    concurrency=plan.feature_concurrency,
                    duration=plan.throughput_seconds,
                    headers={**side.headers, **upstream},
                )
                for side in _rotate(sides, rnd)
            }
        )
        bench.log(f"  c={plan.feature_concurrency} round {rnd}: " + _brief_rps(throughput[-1]))
    return {
        "off": off.name,
        "on": on.name,
        "latency": latency_summary(latency, off.name, on.name),
        "throughput": {
            "concurrency": plan.feature_concurrency,
            "upstream_ms": plan.upstream_ms,
            **throughput_summary(throughput, off.name, on.name),
        },
    }


def merge_latency(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's latency jobs of a round as one: percentiles over all their calls, CPU
    per call over all of them (the raw samples are not kept)."""
    samples = [us for part in parts for us in part.pop("raw_us") or ()]
    sent = sum(part["sent"] for part in parts)
    merged: dict[str, Any] = {
        "latency_us": summary(samples),
        "errors": sum(part["errors"] for part in parts),
        "error_samples": [e for part in parts for e in part["error_samples"]][:5],
        "sent": sent,
        "jobs": len(parts),
    }
    for key in ("gateway_cpu_us_per_request", "tree_cpu_us_per_request"):
        if key in parts[0]:
            total = sum((part[key] or 0.0) * part["sent"] for part in parts)
            merged[key] = total / sent if sent else None
    return merged


def latency_summary(runs: list[dict[str, dict[str, Any]]], off: str, on: str) -> dict[str, Any]:
    """Each side's added p50/p99 (its figure minus direct's in the same round), the
    difference on - off, medians over the measured rounds (round 0 is a warm-up)."""
    measured = runs[1:]

    def figure(side: str, p: str) -> float | None:
        return _ms(median([r[side]["latency_us"][p] for r in measured]))

    def between(a: str, b: str, p: str) -> float | None:
        return _ms(
            median(
                [
                    r[a]["latency_us"][p] - r[b]["latency_us"][p]
                    for r in measured
                    if r[a]["latency_us"][p] is not None and r[b]["latency_us"][p] is not None
                ]
            )
        )

    def gateway(side: str) -> dict[str, Any]:
        return {
            "p50_ms": figure(side, "p50"),
            "p99_ms": figure(side, "p99"),
            "added_p50_ms": between(side, "direct", "p50"),
            "added_p99_ms": between(side, "direct", "p99"),
            "cpu_us_per_request": _med(measured, side, "gateway_cpu_us_per_request"),
            "tree_cpu_us_per_request": _med(measured, side, "tree_cpu_us_per_request"),
            "errors": sum(r[side]["errors"] for r in runs),
        }

    nginx = {}
    if measured and "nginx" in measured[0]:
        nginx = {
            "nginx_added_p50_ms": between("nginx", "direct", "p50"),
            "nginx_added_p99_ms": between("nginx", "direct", "p99"),
        }
    return {
        "direct_p50_ms": figure("direct", "p50"),
        "direct_p99_ms": figure("direct", "p99"),
        **nginx,
        off: gateway(off),
        on: gateway(on),
        "on_minus_off_p50_ms": between(on, off, "p50"),
        "on_minus_off_p99_ms": between(on, off, "p99"),
        "errors": {side: sum(r[side]["errors"] for r in runs) for side in runs[0]},
        "rounds": runs,
    }


def throughput_summary(runs: list[dict[str, dict[str, Any]]], off: str, on: str) -> dict[str, Any]:
    """Each side's req/s over direct's in the same round, and on's over off's."""
    measured = runs[1:]

    def ratio(a: str, b: str) -> float | None:
        return median([r[a]["rps"] / r[b]["rps"] for r in measured if r[b]["rps"]])

    def gateway(side: str) -> dict[str, Any]:
        return {
            "ratio": ratio(side, "direct"),
            "rps": median([r[side]["rps"] for r in measured]),
            "p99_ms": _ms(median([r[side]["latency_us"]["p99"] for r in measured])),
            "cpu_us_per_request": _med(measured, side, "gateway_cpu_us_per_request"),
            "tree_cpu_us_per_request": _med(measured, side, "tree_cpu_us_per_request"),
            "errors": sum(r[side]["errors"] for r in runs),
        }

    nginx = {}
    if measured and "nginx" in measured[0]:
        nginx = {
            "nginx_ratio": ratio("nginx", "direct"),
            "nginx_rps": median([r["nginx"]["rps"] for r in measured]),
        }
    return {
        "direct_rps": median([r["direct"]["rps"] for r in measured]),
        **nginx,
        off: gateway(off),
        on: gateway(on),
        "ratio_on_off": ratio(on, off),
        "errors": {side: sum(r[side]["errors"] for r in runs) for side in runs[0]},
        "rounds": runs,
    }


# --- 8. keys and quotas on --------------------------------------------------------------


def make_key(gateway: Gateway, admin_key: str) -> dict[str, Any]:
    """A proxy key with every limit set, made through the management API."""
    response = httpx.post(
        f"http://127.0.0.1:{gateway.port}/keys",
        json={"name": "bench", "scopes": ["proxy"], **KEY_LIMITS},
        headers={"x-spanlab-key": admin_key},
        timeout=30.0,
    )
    response.raise_for_status()
    made: dict[str, Any] = response.json()
    return made


def key_usage(gateway: Gateway, admin_key: str, key_id: str) -> dict[str, Any]:
    """The key's usage in the current windows, as ``GET /keys`` reports it."""
    response = httpx.get(
        f"http://127.0.0.1:{gateway.port}/keys",
        headers={"x-spanlab-key": admin_key},
        timeout=30.0,
    )
    response.raise_for_status()
    for key in response.json()["data"]:
        if key["id"] == key_id:
            usage: dict[str, Any] = key["usage"]
            return usage
    raise RuntimeError(f"key {key_id} not listed by GET /keys")


def keys_quotas(bench: Bench) -> dict[str, Any]:
    """Section 8: keys and quotas on against off, through real gateways."""
    admin_key = "bench-admin-" + secrets.token_hex(16)
    off = Gateway(bench.workdir, "gateway-keys-off", bench.mock, capture=True)
    bench.gateways.append(off)
    on = Gateway(
        bench.workdir,
        "gateway-keys-on",
        bench.mock,
        capture=True,
        settings=f'admin_key = "{admin_key}"',
    )
    bench.gateways.append(on)
    key = make_key(on, admin_key)
    sent_before = on.requests_sent
    result = compare(
        bench,
        Side("keys_off", off),
        Side("keys_on", on, {"x-spanlab-key": key["key"]}),
    )
    usage = key_usage(on, admin_key, key["id"])
    result["key"] = {
        "limits": KEY_LIMITS,
        "requests_sent": on.requests_sent - sent_before,
        "requests_counted": usage["requests_today"],
        "tokens_counted": usage["tokens_today"],
        "usd_counted": usage["usd_today"],
    }
    lat = result["latency"]
    bench.log(
        f"  keys on - off, c=1 p50 {_f(lat['on_minus_off_p50_ms'])} ms;"
        f" key counted {usage['requests_today']} of {result['key']['requests_sent']} calls"
    )
    return result


# --- 9. PostgreSQL as the store -----------------------------------------------------------


def postgres(bench: Bench) -> dict[str, Any]:
    """Section 9: a gateway on PostgreSQL against one on SQLite, through real gateways."""
    if pg_bin() is None:
        bench.log(f"  {PG_MISSING}")
        return {"skipped": PG_MISSING}
    server = PostgresServer(PG_SETTINGS)
    bench.services.append(server)  # stopped after the run's span accounting
    server.start()
    sqlite = Gateway(bench.workdir, "gateway-sqlite", bench.mock, capture=True)
    bench.gateways.append(sqlite)
    pg = Gateway(
        bench.workdir,
        "gateway-postgresql",
        bench.mock,
        capture=True,
        db=server.create_database("spanlab_bench"),
    )
    bench.gateways.append(pg)
    result = compare(
        bench, Side("sqlite", sqlite), Side("postgresql", pg, store_cpu=server.cpu_seconds)
    )
    pg.stop()  # graceful: its writer stores what is queued before it exits
    result["postgres_version"] = server.version()
    result["postgres_settings"] = PG_SETTINGS
    result["requests_sent"] = pg.requests_sent
    result["spans_stored"] = pg.spans_stored()
    lat = result["latency"]
    bench.log(
        f"  PostgreSQL - SQLite, c=1 p50 {_f(lat['on_minus_off_p50_ms'])} ms;"
        f" spans stored {result['spans_stored']} of {result['requests_sent']} calls"
    )
    return result


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _brief_latency(pair: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{side} p50 {_f(_ms(r['latency_us']['p50']))} ms" for side, r in pair.items())


def _brief_rps(pair: dict[str, dict[str, Any]]) -> str:
    return ", ".join(
        f"{side} {r['rps']:.0f} rps ({r['errors']} errors)" for side, r in pair.items()
    )
