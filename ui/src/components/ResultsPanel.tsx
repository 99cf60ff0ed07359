// The results panel of a matrix experiment: per variant its cells, errors (apart),
// latency, cost (the judge's apart), thumbs-up rate and each metric with its 95%
// interval drawn as a bar; the comparison with a chosen baseline in sentences; the
// inputs that flipped (a click scrolls the grid to the input's row, found by the
// data-input-id the grid puts on it); cost against quality; CSV download.

import { useEffect, useMemo, useRef, useState } from "react";
import useSWR from "swr";
import { ErrorNote } from "./common";
import { fmtCost, fmtInt, fmtMs, fmtPercent, fmtScore } from "../lib/format";
import {
  ciBar,
  costQualityScatter,
  gridRowSelector,
  metricScale,
  resultsPath,
  type ComparisonResult,
  type ExperimentResults,
  type MetricFigure,
  type VariantResult,
} from "../lib/results";
import "../styles/results.css";

const BAR_W = 120;
const BAR_H = 14;

function figureText(f: MetricFigure | undefined): string {
  if (!f || f.value === null) return "\u2013";
  return f.kind === "boolean" ? fmtPercent(f.value, 0) : fmtScore(f.value);
}

function intervalText(f: MetricFigure): string {
  if (f.ci_low === null || f.ci_high === null) return "no interval (one input)";
  const show = (x: number) => (f.kind === "boolean" ? fmtPercent(x, 0) : fmtScore(x));
  return `95% CI ${show(f.ci_low)} to ${show(f.ci_high)}`;
}

function CiBarSvg({ figure, scale, label }: { figure: MetricFigure; scale: [number, number]; label: string }) {
  const bar = ciBar(figure, scale, BAR_W);
  if (!bar) return null;
  const mid = BAR_H / 2;
  return (
    <svg className="results-ci" width={BAR_W} height={BAR_H} viewBox={`0 0 ${BAR_W} ${BAR_H}`} role="img" aria-label={label}>
      <line className="results-ci-track" x1={0} x2={BAR_W} y1={mid} y2={mid} />
      {bar.x1 !== null && bar.x2 !== null && <rect className="results-ci-range" x={bar.x1} y={mid - 3} width={Math.max(1, bar.x2 - bar.x1)} height={6} rx={2} />}
      <circle className="results-ci-point" cx={bar.x} cy={mid} r={3.5} />
    </svg>
  );
}

function scrollToInput(inputId: string, variantId: string) {
  const row = document.querySelector<HTMLElement>(gridRowSelector(inputId));
  if (!row) return;
  window.history.replaceState(null, "", `#input-${encodeURIComponent(inputId)}`);
  row.scrollIntoView({ block: "center" });
  const cell = row.querySelector<HTMLElement>(`td[data-variant-id="${CSS.escape(variantId)}"]`) ?? row;
  cell.classList.add("results-flash");
  window.setTimeout(() => cell.classList.remove("results-flash"), 2000);
  // focus the first focusable thing in the cell (a span link), else the row's header
  const target = cell.querySelector<HTMLElement>("a, button, [tabindex]") ?? row.querySelector<HTMLElement>("th");
  if (target) {
    if (!target.hasAttribute("tabindex") && target.tagName === "TH") target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
}

function Flips({ comparison }: { comparison: ComparisonResult }) {
  if (!comparison.flips.length) return null;
  return (
    <ul className="results-flips" data-testid="results-flips">
      {comparison.flips.map((f) => (
        <li key={f.input}>
          <a
            href={`#input-${encodeURIComponent(f.input)}`}
            data-testid="results-flip"
            data-input-id={f.input}
            className={f.change === "pass_to_fail" ? "results-flip-bad" : "results-flip-good"}
            onClick={(e) => {
              e.preventDefault();
              scrollToInput(f.input, comparison.variant);
            }}
          >
            {f.input_key ?? f.input}: {f.change === "pass_to_fail" ? "pass \u2192 fail" : "fail \u2192 pass"}
          </a>
        </li>
      ))}
    </ul>
  );
}

function CostQualityChart({ results, metric }: { results: ExperimentResults; metric: string }) {
  const W = 360;
  const H = 200;
  const scatter = useMemo(() => costQualityScatter(results.variants, metric, W, H), [results, metric]);
  if (!scatter.points.length) return <p className="muted small">No variant has both a cost and a score on {metric}.</p>;
  const cq = results.cost_quality;
  const info = results.metrics.find((m) => m.key === metric);
  const description = scatter.points
    .map((p) => `${p.variant.name}: ${fmtCost(p.variant.cost_per_cell_usd)} per cell, ${metric} ${figureText(p.variant.metrics[metric])}`)
    .join("; ");
  return (
    <figure className="results-scatter" data-testid="results-scatter">
      <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Cost per cell against ${metric}. ${description}`}>
        <line className="results-axis" x1={24} y1={H - 24} x2={W - 24} y2={H - 24} />
        <line className="results-axis" x1={24} y1={24} x2={24} y2={H - 24} />
        <text className="results-axis-label" x={W - 24} y={H - 8} textAnchor="end">
          cost per cell (max {fmtCost(scatter.xMax)})
        </text>
        <text className="results-axis-label" x={28} y={16}>
          {metric} {info?.direction === "lower" ? "(lower is better)" : ""}
        </text>
        {scatter.points.map((p) => {
          const cheapest = cq?.cheapest_not_worse === p.variant.id;
          return (
            <g key={p.variant.id} className={cheapest ? "results-dot results-dot-pick" : "results-dot"} data-testid="results-dot" data-variant-id={p.variant.id}>
              {p.y1 !== null && p.y2 !== null && <line className="results-dot-ci" x1={p.x} x2={p.x} y1={p.y1} y2={p.y2} />}
              <circle cx={p.x} cy={p.y} r={cheapest ? 6 : 4.5} />
              <text x={p.x + 8} y={p.y - 6}>
                {p.variant.name}
              </text>
            </g>
          );
        })}
      </svg>
      {cq?.verdict && (
        <figcaption className="small" data-testid="results-cost-verdict">
          {cq.verdict}
        </figcaption>
      )}
    </figure>
  );
}

export function ResultsPanel({ experimentId, runId, running }: { experimentId: string; runId: string | null; running: boolean }) {
  const [baseline, setBaseline] = useState<string | null>(null);
  const [metric, setMetric] = useState<string | null>(null);
  const path = runId ? resultsPath(experimentId, { run: runId, baseline, metric }) : null;
  const { data, error, mutate, isLoading } = useSWR<ExperimentResults>(path, { refreshInterval: running ? 3000 : 0, keepPreviousData: true });
  // A run that ends reads its final figures once.
  const wasRunning = useRef(running);
  useEffect(() => {
    if (wasRunning.current && !running) void mutate();
    wasRunning.current = running;
  }, [running, mutate]);
  if (!runId) return null;
  const names = new Map((data?.variants ?? []).map((v) => [v.id, v.name]));
  const metricKeys = (data?.metrics ?? []).map((m) => m.key);
  const primary = data?.primary_metric ?? null;
  const csvHref = resultsPath(experimentId, { run: runId, baseline, metric }, "csv");
  return (
    <section className="section results-panel" aria-labelledby="results-title" data-testid="results-panel">
      <header className="section-head">
        <h3 id="results-title">Results by variant</h3>
        <div className="results-controls">
          {data && data.variants.length > 1 && (
            <label>
              <span>Baseline</span>
              <select data-testid="results-baseline" value={data.baseline ?? ""} onChange={(e) => setBaseline(e.target.value)}>
                {data.variants.map((v) => (
                  <option key={v.id} value={v.id}>
                    {v.name}
                  </option>
                ))}
              </select>
            </label>
          )}
          {metricKeys.length > 1 && (
            <label>
              <span>Primary metric</span>
              <select data-testid="results-metric" value={primary ?? ""} onChange={(e) => setMetric(e.target.value)}>
                {metricKeys.map((k) => (
                  <option key={k} value={k}>
                    {k}
                  </option>
                ))}
              </select>
            </label>
          )}
          <button type="button" className="btn btn-small" onClick={() => void mutate()}>
            Refresh
          </button>
          <a className="btn btn-small" href={csvHref} download data-testid="results-csv">
            Download CSV
          </a>
        </div>
      </header>
      <ErrorNote error={error} onRetry={() => void mutate()} />
      {!data && isLoading && <p className="muted">Loading results…</p>}
      {data && (
        <>
          {data.message && (
            <p className="muted" data-testid="results-message">
              {data.message}
            </p>
          )}
          <VariantTable results={data} />
          {data.comparisons.length > 0 && (
            <div className="results-comparisons" data-testid="results-comparisons">
              <h4>Against {names.get(data.baseline ?? "") ?? "the baseline"}</h4>
              <ul>
                {data.comparisons.map((c) => (
                  <li key={`${c.variant}:${c.metric}`} data-testid="results-verdict" data-outcome={c.outcome} data-variant-id={c.variant} data-metric={c.metric}>
                    <span className={`results-outcome results-outcome-${c.outcome}`}>{c.outcome.replace(/_/g, " ")}</span> {c.verdict}
                    <Flips comparison={c} />
                  </li>
                ))}
              </ul>
              {data.corrections && <p className="muted small">{data.corrections}</p>}
            </div>
          )}
          {primary && (
            <div className="results-cost">
              <h4>Cost against {primary}</h4>
              <CostQualityChart results={data} metric={primary} />
            </div>
          )}
        </>
      )}
    </section>
  );
}

function VariantTable({ results }: { results: ExperimentResults }) {
  const scales = useMemo(() => new Map(results.metrics.map((m) => [m.key, metricScale(results.variants, m.key)])), [results]);
  if (!results.variants.length) return null;
  return (
    <div className="results-table-wrap">
      <table className="results-table" data-testid="results-table">
        <thead>
          <tr>
            <th scope="col">Variant</th>
            <th scope="col">Cells</th>
            <th scope="col">Errors</th>
            <th scope="col">Latency p50 / p95</th>
            <th scope="col">TTFT p50</th>
            <th scope="col">Tokens / cell</th>
            <th scope="col">Cost (per cell)</th>
            <th scope="col">Judge cost</th>
            <th scope="col">Thumbs up</th>
            {results.metrics.map((m) => (
              <th scope="col" key={m.key} title={m.direction === "lower" ? "lower is better" : "higher is better"}>
                {m.name} {m.direction === "lower" ? "\u2193" : "\u2191"}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {results.variants.map((v) => (
            <VariantRow key={v.id} variant={v} results={results} scales={scales} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function VariantRow({ variant: v, results, scales }: { variant: VariantResult; results: ExperimentResults; scales: Map<string, [number, number]> }) {
  return (
    <tr data-testid="results-row" data-variant-id={v.id}>
      <th scope="row">
        {v.name}
        {results.baseline === v.id && <span className="results-badge">baseline</span>}
      </th>
      <td>{fmtInt(v.cells)}</td>
      <td data-testid="results-errors" className={v.errors ? "warn-text" : undefined}>
        {fmtInt(v.errors)}
        {v.not_run > 0 && <span className="muted small"> +{fmtInt(v.not_run)} not run</span>}
      </td>
      <td>
        {fmtMs(v.latency_p50_ms)} / {fmtMs(v.latency_p95_ms)}
      </td>
      <td>{fmtMs(v.ttft_p50_ms)}</td>
      <td>{fmtScore(v.tokens_per_cell)}</td>
      <td data-testid="results-cost">
        {fmtCost(v.cost_total_usd)} <span className="muted small">({fmtCost(v.cost_per_cell_usd)})</span>
      </td>
      <td>{fmtCost(v.judge_cost_usd)}</td>
      <td>{v.thumbs_up + v.thumbs_down ? `${fmtPercent(v.thumbs_up_rate, 0)} of ${fmtInt(v.thumbs_up + v.thumbs_down)}` : "\u2013"}</td>
      {results.metrics.map((m) => {
        const f = v.metrics[m.key];
        const s = v.stability[m.key];
        const errors = v.evaluator_errors[m.key] ?? 0;
        return (
          <td key={m.key} data-testid="results-metric-cell" data-metric={m.key}>
            {f && f.value !== null ? (
              <div className="results-figure">
                <span className="results-value" data-testid="results-value">
                  {figureText(f)}
                </span>
                <CiBarSvg figure={f} scale={scales.get(m.key) ?? [0, 1]} label={`${v.name} ${m.key} ${figureText(f)}, ${intervalText(f)}`} />
                <span className="muted small">
                  {intervalText(f)} · n={fmtInt(f.n_inputs)}
                  {s && s.agree !== null && ` · repeats agree ${fmtPercent(s.agree, 0)}`}
                  {s && s.pass_all !== null && ` · pass^${s.repetitions} ${fmtPercent(s.pass_all, 0)}`}
                  {errors > 0 && ` · ${fmtInt(errors)} evaluator error${errors === 1 ? "" : "s"}`}
                </span>
              </div>
            ) : (
              <span className="muted">{errors > 0 ? `${fmtInt(errors)} evaluator errors` : "\u2013"}</span>
            )}
          </td>
        );
      })}
    </tr>
  );
}
