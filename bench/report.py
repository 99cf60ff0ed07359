"""The one table, and the targets (issue 16's, which tightened issue 3's) checked
against the figures."""

from __future__ import annotations

from typing import Any

MATRIX_TARGET = "c=1 added p50 beside the matrix minus alone, ms"
KEYS_TARGET = "keys+quotas on minus off, c=1 added p50 ms"
KEYS_ERRORS = "keys+quotas on: errors"
KEYS_UNCOUNTED = "keys+quotas on: calls not counted by the key"
PG_ERRORS = "PostgreSQL: errors"
PG_LOST = "PostgreSQL: spans lost"
FEATURES = {"keys_quotas": "keys+quotas on", "postgres": "PostgreSQL"}


def ratio_target(key: str) -> str:
    return f"throughput ratio c=64 ({FEATURES[key]})"


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p50_p99(figures: dict[str, Any], prefix: str) -> str:
    return f"{_f(figures[prefix + '_p50_ms'], 3)} / {_f(figures[prefix + '_p99_ms'], 3)} ms"


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: its figure, the limit, met or not, and by how much it is missed."""
    out: list[dict[str, Any]] = []

    def check(name: str, value: float | None, limit: float, kind: str) -> None:
        if value is None:
            return
        ok = value <= limit if kind == "max" else value >= limit
        miss = 0.0 if ok else (value - limit if kind == "max" else limit - value)
        out.append({"target": name, "value": value, "limit": limit, "kind": kind, "ok": ok,
                    "missed_by": miss})  # fmt: skip

    lat = r.get("added_latency")
    if lat:
        check("added latency p50 ms (c=1)", lat["added_p50_ms"], 0.2, "max")
        check("added latency p99 ms (c=1)", lat["added_p99_ms"], 1.0, "max")
    tp = r.get("throughput")
    if tp:
        for level, limit in (("64", 0.97), ("256", 0.95)):
            row = tp["levels"].get(level)
            if row:
                check(f"throughput ratio c={level}", row["ratio"], limit, "min")
                check(f"proxied errors c={level}", row["errors"]["proxied"], 0, "max")
    st = r.get("streaming")
    if st:
        for level, row in st["levels"].items():
            if level == "8":
                check("added TTFT p50 ms (8 streams)", row["added_ttft_p50_ms"], 1.0, "max")
            check(f"added inter-chunk gap p99 ms ({level} streams)", row["added_gap_p99_ms"],
                  0.2, "max")  # fmt: skip
            check(f"chunks lost ({level} streams)", row["chunks_sent"] - row["chunks_received"],
                  0, "max")  # fmt: skip
    ms = r.get("many_streams")
    if ms:
        check("1000 streams: incomplete", ms["streams"] - ms["complete"], 0, "max")
        check("1000 streams: errors", ms["errors"], 0, "max")
        check("RSS above idle MB per 1000 streams", ms["rss_above_idle_mb_per_1000"], 30, "max")
    cap = r.get("capture")
    if cap:
        check("capture on/off ratio (c=64, 50 ms)", cap["loaded"]["ratio_on_off"], 0.95, "min")
        check("capture on/off ratio (saturated)", cap["saturated"]["ratio_on_off"], 0.95, "min")
    wr = r.get("writer")
    if wr:
        check("writer spans/s (best batch size)", wr["best_spans_per_s"], 50000, "min")
        check("writer: spans not stored", 0 if wr["stored_all"] else 1, 0, "max")
    mx = r.get("matrix")
    if mx:
        check("matrix: cells failed", mx["failed"], 0, "max")
        check(MATRIX_TARGET,
              mx["added_p50_beside_minus_alone_ms"], 0.1, "max")  # fmt: skip
    kq = r.get("keys_quotas")
    if kq:
        check(KEYS_TARGET, kq["latency"]["on_minus_off_p50_ms"], 0.05, "max")
        check(KEYS_ERRORS, kq["latency"]["keys_on"]["errors"]
              + kq["throughput"]["keys_on"]["errors"], 0, "max")  # fmt: skip
        check(KEYS_UNCOUNTED,
              kq["key"]["requests_sent"] - kq["key"]["requests_counted"], 0, "max")  # fmt: skip
    pg = r.get("postgres")
    if pg and "skipped" not in pg:
        check(PG_ERRORS, pg["latency"]["postgresql"]["errors"]
              + pg["throughput"]["postgresql"]["errors"], 0, "max")  # fmt: skip
        check(PG_LOST, pg["requests_sent"] - pg["spans_stored"], 0, "max")
    # The c=64 throughput target holds for every configuration, the feature on.
    for key, section in (("keys_quotas", kq), ("postgres", pg)):
        if section and "skipped" not in section and section["throughput"]["concurrency"] == 64:
            check(ratio_target(key), section["throughput"][section["on"]]["ratio"], 0.97, "min")
    spans = r.get("spans")
    if spans:
        check("spans lost", spans["requests_sent"] - spans["spans_stored"], 0, "max")
    return out


LABELS = {"keys_off": "off", "keys_on": "on", "sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _feature_rows(
    section: dict[str, Any],
    key: str,
    number: int,
    rows: list[tuple[str, str, str]],
    nginx: dict[int, str],
    verdict: Any,
) -> None:
    """Sections 8 and 9 (bench.feature_rows): a gateway with a feature on beside the
    same build with it off, each side's figure in the same row."""
    title = {"keys_quotas": "keys + quotas", "postgres": "PostgreSQL store"}[key]
    if "skipped" in section:
        rows.append((f"{number} {title}: skipped", section["skipped"], ""))
        return
    off, on = section["off"], section["on"]
    lat, tp = section["latency"], section["throughput"]
    on_, off_ = LABELS.get(on, on), LABELS.get(off, off)
    rows.append((f"{number} {title}: c=1 added p50 / p99, {on_} ({off_})",
                 f"{_p50_p99(lat[on], 'added')} ({_p50_p99(lat[off], 'added')})",
                 ""))  # fmt: skip
    if "nginx_added_p50_ms" in lat:
        nginx[len(rows) - 1] = _p50_p99(lat, "nginx_added")
    rows.append((f"    {on_} minus {off_}, c=1 p50 / p99 (per-round medians)",
                 _p50_p99(lat, "on_minus_off"),
                 "p50 <=0.05 ms  " + verdict(KEYS_TARGET) if key == "keys_quotas"
                 else ""))  # fmt: skip
    level = tp["concurrency"]
    rows.append((f"    c={level} ratio to direct, {on_} ({off_}; errors {on_}/{off_})",
                 f"{_f(tp[on]['ratio'], 3)} ({_f(tp[off]['ratio'], 3)};"
                 f" {tp[on]['errors']}/{tp[off]['errors']})",
                 ">=0.97  " + verdict(ratio_target(key)) if level == 64 else ""))  # fmt: skip
    if "nginx_ratio" in tp:
        nginx[len(rows) - 1] = f"{_f(tp['nginx_ratio'], 3)} ({_f(tp['nginx_rps'], 0)})"
    rows.append((f"    CPU per call c=1 / c={level}, {on_} ({off_}): gateway, writer, store",
                 f"{_f(lat[on]['tree_cpu_us_per_request'], 0)} /"
                 f" {_f(tp[on]['tree_cpu_us_per_request'], 0)} us"
                 f" ({_f(lat[off]['tree_cpu_us_per_request'], 0)} /"
                 f" {_f(tp[off]['tree_cpu_us_per_request'], 0)})", ""))  # fmt: skip
    if key == "keys_quotas":
        k = section["key"]
        rows.append(("    calls counted by the key = sent (tokens, USD charged)",
                     f"{k['requests_counted']} = {k['requests_sent']}"
                     f" ({k['tokens_counted']}, {k['usd_counted']:.4f})",
                     "equal  " + verdict(KEYS_ERRORS, KEYS_UNCOUNTED)))  # fmt: skip
    else:
        rows.append(("    spans in PostgreSQL = calls sent (after a graceful stop)",
                     f"{section['spans_stored']} = {section['requests_sent']}",
                     "equal  " + verdict(PG_ERRORS, PG_LOST)))  # fmt: skip


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    pk = m["packages"]
    rows: list[tuple[str, str, str]] = []
    nginx: dict[int, str] = {}  # row -> nginx's figure, measured in the same rounds
    verdicts = {t["target"]: t for t in r.get("targets", [])}

    def verdict(*names: str) -> str:
        found = [verdicts[n] for n in names if n in verdicts]
        if not found:
            return ""
        if all(t["ok"] for t in found):
            return "ok"
        return "MISS " + ", ".join(f"by {t['missed_by']:.3g}" for t in found if not t["ok"])

    lat = r.get("added_latency")
    if lat:
        rows.append(("1 added latency, c=1, 0 ms upstream: p50 / p99",
                     f"{_f(lat['added_p50_ms'], 3)} / {_f(lat['added_p99_ms'], 3)} ms",
                     "<=0.2 / <=1 ms  " + verdict("added latency p50 ms (c=1)",
                                                  "added latency p99 ms (c=1)")))  # fmt: skip
        if "nginx_added_p50_ms" in lat:
            nginx[len(rows) - 1] = _p50_p99(lat, "nginx_added")
        rows.append(("    (direct p50 / p99; gateway CPU per request)",
                     f"{_f(lat['direct_p50_ms'], 3)} / {_f(lat['direct_p99_ms'], 3)} ms;"
                     f" {_f(lat['gateway_cpu_us_per_request'], 0)} us", ""))  # fmt: skip
    tp = r.get("throughput")
    if tp:
        rows.append((f"2 throughput proxied/direct, {tp['upstream_ms']:g} ms upstream", "", ""))
        for level, row in tp["levels"].items():
            target = {"64": ">=0.97, 0 errors  ", "256": ">=0.95, 0 errors  "}.get(level, "")
            names = (f"throughput ratio c={level}", f"proxied errors c={level}")
            rows.append((
                f"    c={level}: ratio (proxied / direct rps; errors p/d)",
                f"{_f(row['ratio'], 3)} ({_f(row['proxied_rps'], 0)} / {_f(row['direct_rps'], 0)};"
                f" {row['errors']['proxied']}/{row['errors']['direct']})",
                target + verdict(*names),
            ))  # fmt: skip
            if "nginx_ratio" in row:
                nginx[len(rows) - 1] = f"{_f(row['nginx_ratio'], 3)} ({_f(row['nginx_rps'], 0)})"
    st = r.get("streaming")
    if st:
        for level, row in st["levels"].items():
            ttft_target = (
                "p50 <=1 ms  " + verdict("added TTFT p50 ms (8 streams)") if level == "8" else ""
            )
            rows.append((f"3 streaming {row['chunks']} chunks x {row['interval_ms']:g} ms,"
                         f" {level} streams at once, staggered: added TTFT p50 / p99",
                         _p50_p99(row, "added_ttft"), ttft_target))  # fmt: skip
            if "nginx_added_ttft_p50_ms" in row:
                nginx[len(rows) - 1] = _p50_p99(row, "nginx_added_ttft")
            gap = f"added inter-chunk gap p99 ms ({level} streams)"
            rows.append(("    added inter-chunk gap p50 / p99",
                         f"{_f(row['added_gap_p50_ms'], 3)} / {_f(row['added_gap_p99_ms'], 3)} ms",
                         "p99 <=0.2 ms  " + verdict(gap)))  # fmt: skip
            if "nginx_added_gap_p50_ms" in row:
                nginx[len(rows) - 1] = _p50_p99(row, "nginx_added_gap")
            rows.append(("    chunks received / sent (streams complete)",
                         f"{row['chunks_received']} / {row['chunks_sent']}"
                         f" ({row['streams_complete']}/{row['streams_sent']})",
                         "equal  " + verdict(f"chunks lost ({level} streams)")))  # fmt: skip
            if "nginx_chunks_lost" in row:
                nginx[len(rows) - 1] = f"{row['nginx_chunks_lost']} lost"
    ms = r.get("many_streams")
    if ms:
        rows.append((f"4 {ms['streams']} concurrent streams ({ms['chunks']} x"
                     f" {ms['interval_ms']:g} ms): complete, errors",
                     f"{ms['complete']}/{ms['streams']}, {ms['errors']} errors"
                     f" (direct {ms['direct_complete']}, {ms['direct_errors']})",
                     "all, 0  " + verdict("1000 streams: incomplete",
                                          "1000 streams: errors")))  # fmt: skip
        if "nginx_complete" in ms:
            nginx[len(rows) - 1] = f"{ms['nginx_complete']}, {ms['nginx_errors']} errors"
        rows.append(("    RSS above idle per 1000 streams (idle, peak)",
                     f"{_f(ms['rss_above_idle_mb_per_1000'], 1)} MB ({_f(ms['idle_rss_mb'], 0)},"
                     f" {_f(ms['peak_rss_mb'], 0)} MB)",
                     "<=30 MB  " + verdict("RSS above idle MB per 1000 streams")))  # fmt: skip
        if "nginx_rss_above_idle_mb_per_1000" in ms:
            nginx[len(rows) - 1] = (
                f"{_f(ms['nginx_rss_above_idle_mb_per_1000'], 1)} MB"
                f" ({_f(ms['nginx_idle_rss_mb'], 0)}, {_f(ms['nginx_peak_rss_mb'], 0)} MB)"
            )
        rows.append(("    wall time proxied / direct",
                     f"{_f(ms['wall_s']['proxied'], 2)} / {_f(ms['wall_s']['direct'], 2)} s",
                     ""))  # fmt: skip
        if "nginx" in ms:
            nginx[len(rows) - 1] = f"{_f(ms['nginx']['wall_s'], 2)} s"
    cap = r.get("capture")
    if cap:
        for key, name in (("loaded", "capture on/off ratio (c=64, 50 ms)"),
                          ("saturated", "capture on/off ratio (saturated)")):  # fmt: skip
            c = cap[key]
            rows.append((
                f"5 capture on/off throughput, c={c['concurrency']}, {c['upstream_ms']:g} ms"
                if key == "loaded"
                else f"    capture on/off throughput, c={c['concurrency']},"
                f" {c['upstream_ms']:g} ms (saturated)",
                f"{_f(c['ratio_on_off'], 3)} ({_f(c['rps_on'], 0)} / {_f(c['rps_off'], 0)} rps;"
                f" CPU {_f(c['cpu_us_per_request_on'], 0)} / {_f(c['cpu_us_per_request_off'], 0)}"
                " us/req)",
                ">=0.95  " + verdict(name),
            ))  # fmt: skip
        cd = cap["commit_delay"]
        rows.append((f"    response end -> span committed, c={cd['concurrency']}: p50 / p99",
                     f"{_f(cd['p50_ms'], 2)} / {_f(cd['p99_ms'], 2)} ms"
                     f" ({cd['spans_not_seen']} not seen)", ""))  # fmt: skip
    wr = r.get("writer")
    if wr:
        writer = " / ".join(f"{w['spans_per_s']:.0f}" for w in wr["batches"])
        sizes = "/".join(str(w["batch_size"]) for w in wr["batches"])
        rows.append((f"6 writer alone (process, SQLite), spans/s at batch {sizes}", writer,
                     ">=50000  " + verdict("writer spans/s (best batch size)",
                                           "writer: spans not stored")))  # fmt: skip
    mx = r.get("matrix")
    if mx:
        alone, beside = mx["live_alone"], mx["live_beside_matrix"]
        rows.append((f"7 matrix {mx['cells']} cells beside c=1 traffic: cells/s (failed)",
                     f"{_f(mx['cells_per_s'], 0)} ({mx['failed']} failed)",
                     "0 failed  " + verdict("matrix: cells failed")))  # fmt: skip
        rows.append(("    c=1 added p50 alone / beside the matrix (beside - alone)",
                     f"{_f(alone['added_p50_ms'], 3)} / {_f(beside['added_p50_ms'], 3)} ms"
                     f" ({_f(mx['added_p50_beside_minus_alone_ms'], 3)} ms)",
                     "<=0.1 ms  " + verdict(MATRIX_TARGET)))  # fmt: skip
        if alone.get("nginx_added_p50_ms") is not None:
            nginx[len(rows) - 1] = (
                f"{_f(alone['nginx_added_p50_ms'], 3)} / {_f(beside['nginx_added_p50_ms'], 3)} ms"
            )
        rows.append(("    c=1 added p99 alone / beside the matrix",
                     f"{_f(alone['added_p99_ms'], 3)} / {_f(beside['added_p99_ms'], 3)} ms",
                     ""))  # fmt: skip
    for key, number in (("keys_quotas", 8), ("postgres", 9)):
        if r.get(key):
            _feature_rows(r[key], key, number, rows, nginx, verdict)
    spans = r.get("spans")
    if spans:
        rows.append(("  requests sent = spans stored (capture on; after shutdown)",
                     f"{spans['requests_sent']} = {spans['spans_stored']}"
                     f" (capture off stored {spans['spans_stored_capture_off']})",
                     "equal  " + verdict("spans lost")))  # fmt: skip

    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    wn = max((len(v) for v in nginx.values()), default=0)
    wn = max(wn, len("nginx")) if nginx else 0
    load = m.get("load_avg_start", [0])[0], (m.get("load_avg_end") or [0])[0]
    head = [
        f"Spanlab benchmark ({r['mode']}, {r['plan']['rounds']} measured rounds, medians;"
        f" direct, nginx and proxied interleaved in one run) {r['when']}",
        f"commit {m['commit']}; {m['cpu']} x{m['cores']}; Python {m['python']};"
        f" uvicorn {pk.get('uvicorn')}, starlette {pk.get('starlette')}, httpx {pk.get('httpx')},"
        f" uvloop {pk.get('uvloop')}, httptools {pk.get('httptools')};"
        f" load avg {load[0]:.2f} -> {load[1]:.2f}; loadgen CPU max"
        f" {_f(r.get('loadgen_cpu_util_max'), 2)} core",
        "",
        f"{r.get('nginx', '')}",
        "",
        f"{'figure':<{w0}}  {'measured':<{w1}}  " + (f"{'nginx':<{wn}}  " if wn else "") + "target",
        f"{'-' * w0}  {'-' * w1}  " + (f"{'-' * wn}  " if wn else "") + "------",
    ]
    body = [
        f"{a:<{w0}}  {b:<{w1}}  " + (f"{nginx.get(i, ''):<{wn}}  " if wn else "") + c
        for i, (a, b, c) in enumerate(rows)
    ]
    body = [line.rstrip() for line in body]
    return "\n".join(head + body)
