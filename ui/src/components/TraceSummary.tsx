// The summary strip above the Traces table: totals for the current filter (one
// /stats?group_by=total query) and three small charts over time (one
// /stats?group_by=minute|hour|day query, the bucket picked from the time range).
// Charts are SVG of our own (no chart library on the first page); each carries its
// figures as text (title and aria-label) for screen readers and tooltips.

import { useEffect, useMemo, useRef } from "react";
import useSWR from "swr";
import { query } from "../lib/api";
import {
  barRects,
  bucketLabel,
  describeSeries,
  fillBuckets,
  linePath,
  pickBucket,
  type Bucket,
  type Point,
  type StatsRow,
} from "../lib/charts";
import { fmtCost, fmtInt, fmtMs, fmtPercent } from "../lib/format";
import "../styles/traces.css";

export interface StatsAnswer {
  group_by: string;
  data: StatsRow[];
  /** True when answered from the writer's rollup: p50/p95 within percentile_error. */
  approximate_percentiles?: boolean;
  percentile_error?: number;
}

const WIDTH = 220;
const REFRESH_MS = 3000;
const HEIGHT = 44;

function Figure({ label, value, title, tone }: { label: string; value: string; title?: string; tone?: string }) {
  return (
    <div className={`summary-figure ${tone ?? ""}`} title={title}>
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}

export interface ChartSeries {
  name: string;
  values: (number | null)[];
  className: string;
  format: (n: number) => string;
  total?: boolean;
}

/** A small chart: bars for the first series (and any after it marked as bars), or
 * lines; its figures in words as its accessible name. */
export function MiniChart({
  title,
  kind,
  points,
  series,
  bucket,
  testId,
}: {
  title: string;
  kind: "bars" | "lines";
  points: Point[];
  series: ChartSeries[];
  bucket: Bucket;
  testId?: string;
}) {
  const max = Math.max(0, ...series.flatMap((s) => s.values.map((v) => v ?? 0)));
  const words = series.map((s) => describeSeries(s.name, points, s.values, s.format, bucket, { total: s.total ?? true }));
  const first = points[0];
  const last = points[points.length - 1];
  const span =
    first && last ? `, ${points.length} ${bucket}${points.length === 1 ? "" : "s"} from ${bucketLabel(first.startMs, bucket)} to ${bucketLabel(last.startMs, bucket)}` : "";
  const label = `${title}${span}: ${words.join("; ")}`;
  return (
    <figure className="mini-chart" data-testid={testId}>
      <figcaption>{title}</figcaption>
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        width={WIDTH}
        height={HEIGHT}
        role="img"
        aria-label={label}
        preserveAspectRatio="none"
        tabIndex={0}
      >
        <title>{label}</title>
        <line x1={0} y1={HEIGHT - 0.5} x2={WIDTH} y2={HEIGHT - 0.5} className="axis" />
        {series.map((s) =>
          kind === "bars" ? (
            <g key={s.name} className={s.className}>
              {barRects(s.values, WIDTH, HEIGHT, max).map((r, i) => (
                <rect key={i} x={r.x} y={r.y} width={r.width} height={r.height} />
              ))}
            </g>
          ) : (
            <path key={s.name} className={s.className} d={linePath(s.values, WIDTH, HEIGHT, max)} />
          ),
        )}
      </svg>
    </figure>
  );
}

/** The latency figure's note when /stats answered from the rollup (approximate p50/p95). */
export function latencyNote(answer: StatsAnswer | undefined): string | undefined {
  if (!answer?.approximate_percentiles) return undefined;
  return `From the rollup: within ${fmtPercent(answer.percentile_error ?? null)} of the exact percentiles`;
}

/** What the strip shows, from the two answers: pure, for tests. */
export function summaryFigures(total: StatsRow | undefined) {
  const calls = total?.calls ?? 0;
  const errors = total?.errors ?? 0;
  return {
    calls: fmtInt(calls),
    errors: calls ? `${fmtInt(errors)} (${fmtPercent(errors / calls, errors && errors < calls / 100 ? 2 : 1)})` : fmtInt(errors),
    tokens: fmtInt(total?.total_tokens ?? 0),
    cost: total && total.cost_usd !== null ? fmtCost(total.cost_usd) : fmtCost(calls ? null : 0),
    latency: calls ? `${fmtMs(total?.latency_p50_ms)} / ${fmtMs(total?.latency_p95_ms)}` : "\u2013",
  };
}

export function TraceSummary({
  params,
  sinceUs,
  untilUs,
  ready,
  nowMs,
  revision = 0,
}: {
  /** The /stats filter parameters of the current view (spanList.filterParams). */
  params: Record<string, string | null | undefined>;
  sinceUs: number | null;
  untilUs: number | null;
  /** False until the table's first page is in: the strip's queries wait behind it. */
  ready: boolean;
  nowMs: number;
  /** How many live calls the table has taken in: the strip refreshes after them, at
   * most every REFRESH_MS (a busy gateway must not rerun /stats per call). */
  revision?: number;
}) {
  const base = query(params);
  const sep = base ? "&" : "?";
  const totals = useSWR<StatsAnswer>(ready ? `/stats${base}${sep}group_by=total` : null, { shouldRetryOnError: false });
  const total = totals.data?.data[0];

  // The chart's range: the filter's, else the data's own (all time).
  const fromMs = sinceUs !== null ? sinceUs / 1000 : total?.first_time ? Date.parse(total.first_time) : null;
  const toMs = untilUs !== null ? untilUs / 1000 : sinceUs !== null ? nowMs : total?.last_time ? Date.parse(total.last_time) : null;
  const bucket = fromMs !== null && toMs !== null ? pickBucket(fromMs, toMs) : null;
  const overTime = useSWR<StatsAnswer>(ready && bucket && total ? `/stats${base}${sep}group_by=${bucket}` : null, {
    shouldRetryOnError: false,
  });

  const lastRefresh = useRef(0);
  const { mutate: refreshTotals } = totals;
  const { mutate: refreshOverTime } = overTime;
  useEffect(() => {
    if (!revision) return;
    const wait = Math.max(0, lastRefresh.current + REFRESH_MS - Date.now());
    const timer = window.setTimeout(() => {
      lastRefresh.current = Date.now();
      void refreshTotals();
      void refreshOverTime();
    }, wait);
    return () => window.clearTimeout(timer);
  }, [revision, refreshTotals, refreshOverTime]);

  const points = useMemo(
    () => (bucket && overTime.data && fromMs !== null && toMs !== null ? fillBuckets(overTime.data.data, bucket, fromMs, toMs) : []),
    [bucket, overTime.data, fromMs, toMs],
  );
  const figures = summaryFigures(total);
  const failed = totals.error ?? overTime.error;
  const value = (pick: (r: StatsRow) => number | null) => points.map((p) => (p.row ? pick(p.row) : null));
  const zero = (pick: (r: StatsRow) => number | null) => points.map((p) => (p.row ? (pick(p.row) ?? 0) : 0));

  return (
    <section className="trace-summary" aria-label="Summary of the calls shown" data-testid="trace-summary" aria-busy={!totals.data}>
      <dl className="summary-figures">
        <Figure label="Calls" value={totals.data ? figures.calls : "\u2026"} />
        <Figure label="Errors" value={totals.data ? figures.errors : "\u2026"} tone={total?.errors ? "has-errors" : ""} />
        <Figure label="Tokens" value={totals.data ? figures.tokens : "\u2026"} />
        <Figure label="Cost" value={totals.data ? figures.cost : "\u2026"} />
        <Figure
          label="Latency p50 / p95"
          value={totals.data ? figures.latency : "\u2026"}
          title={latencyNote(totals.data)}
        />
      </dl>
      {failed ? (
        <p className="muted small" role="status">
          Summary unavailable: {failed instanceof Error ? failed.message : String(failed)}
        </p>
      ) : null}
      {bucket && points.length > 0 && (
        <div className="summary-charts">
          <MiniChart
            title="Calls and errors"
            kind="bars"
            points={points}
            bucket={bucket}
            testId="chart-calls"
            series={[
              { name: "calls", values: zero((r) => r.calls), className: "series-calls", format: fmtInt },
              { name: "errors", values: zero((r) => r.errors), className: "series-errors", format: fmtInt },
            ]}
          />
          <MiniChart
            title="Latency p50 / p95"
            kind="lines"
            points={points}
            bucket={bucket}
            testId="chart-latency"
            series={[
              { name: "p95", values: value((r) => r.latency_p95_ms), className: "series-p95", format: fmtMs, total: false },
              { name: "p50", values: value((r) => r.latency_p50_ms), className: "series-p50", format: fmtMs, total: false },
            ]}
          />
          <MiniChart
            title="Cost"
            kind="bars"
            points={points}
            bucket={bucket}
            testId="chart-cost"
            series={[{ name: "cost", values: zero((r) => r.cost_usd), className: "series-cost", format: fmtCost }]}
          />
        </div>
      )}
    </section>
  );
}
