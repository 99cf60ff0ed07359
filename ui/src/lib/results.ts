// An experiment's results (GET /experiments/{id}/results): the types, the URL, and the
// geometry of the results panel's small SVG charts (a CI bar per variant and metric, the
// cost-versus-quality scatter), as pure functions so they are tested without a browser.

import { query } from "./api";

export interface MetricFigure {
  kind: "numeric" | "boolean";
  value: number | null;
  ci_low: number | null;
  ci_high: number | null;
  n_inputs: number;
  n_values: number;
  evaluator_errors: number;
  method: string;
}

export interface StabilityFigure {
  repeated_inputs: number;
  repetitions: number;
  agree: number | null;
  pass_all: number | null;
}

export interface VariantResult {
  id: string;
  name: string;
  cells: number;
  completed: number;
  errors: number;
  not_run: number;
  error_rate: number | null;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  ttft_p50_ms: number | null;
  input_tokens: number;
  output_tokens: number;
  tokens_per_cell: number | null;
  cost_total_usd: number | null;
  cost_per_cell_usd: number | null;
  unpriced_cells: number;
  judge_cost_usd: number | null;
  thumbs_up: number;
  thumbs_down: number;
  thumbs_up_rate: number | null;
  evaluator_errors: Record<string, number>;
  metrics: Record<string, MetricFigure>;
  stability: Record<string, StabilityFigure>;
}

export interface Flip {
  input: string;
  input_key: string | null;
  change: "pass_to_fail" | "fail_to_pass";
  baseline: number;
  variant: number;
}

export interface ComparisonResult {
  metric: string;
  kind: "numeric" | "boolean";
  direction: "higher" | "lower";
  baseline: string;
  variant: string;
  n_inputs: number;
  difference: number | null;
  ci_low: number | null;
  ci_high: number | null;
  test: string;
  p_value: number | null;
  p_adjusted: number | null;
  comparisons: number;
  significant: boolean;
  outcome: "improvement" | "regression" | "no_difference" | "too_few_inputs";
  mde: number | null;
  flips: Flip[];
  verdict: string;
}

export interface MetricInfo {
  key: string;
  name: string;
  kind: string;
  direction: "higher" | "lower";
  defined: boolean;
}

export interface ExperimentResults {
  experiment_id: string;
  run: { id: string; status: string } | null;
  baseline: string | null;
  primary_metric: string | null;
  message: string | null;
  metrics: MetricInfo[];
  variants: VariantResult[];
  comparisons: ComparisonResult[];
  corrections: string | null;
  cost_quality: {
    metric: string | null;
    best: string | null;
    cheapest_not_worse: string | null;
    not_worse: string[];
    verdict: string | null;
  } | null;
}

export interface ResultsQuery {
  run?: string | null;
  baseline?: string | null;
  metric?: string | null;
}

export function resultsPath(experimentId: string, q: ResultsQuery = {}, format: "json" | "csv" = "json"): string {
  return `/experiments/${encodeURIComponent(experimentId)}/results${query({
    run: q.run,
    baseline: q.baseline,
    metric: q.metric,
    format: format === "csv" ? "csv" : null,
  })}`;
}

/** The value range a metric's bars share: [0, 1] for pass rates, else the span of every
 * variant's interval (and value), widened a little so no bar touches the edge. */
export function metricScale(variants: VariantResult[], metric: string): [number, number] {
  const figures = variants.map((v) => v.metrics[metric]).filter((f): f is MetricFigure => Boolean(f));
  if (figures.some((f) => f.kind === "boolean")) return [0, 1];
  const values = figures.flatMap((f) => [f.value, f.ci_low, f.ci_high]).filter((x): x is number => x !== null && Number.isFinite(x));
  if (!values.length) return [0, 1];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

export interface CiBar {
  /** x of the point estimate, and of the interval's ends (null: no interval). */
  x: number;
  x1: number | null;
  x2: number | null;
}

/** Where a value and its interval fall on a bar ``width`` pixels wide over ``scale``. */
export function ciBar(figure: MetricFigure, scale: [number, number], width: number): CiBar | null {
  if (figure.value === null) return null;
  const [lo, hi] = scale;
  const at = (v: number) => Math.max(0, Math.min(width, ((v - lo) / (hi - lo)) * width));
  return {
    x: at(figure.value),
    x1: figure.ci_low === null ? null : at(figure.ci_low),
    x2: figure.ci_high === null ? null : at(figure.ci_high),
  };
}

export interface ScatterPoint {
  variant: VariantResult;
  x: number;
  y: number;
  /** The interval's ends on the y axis (null: none). */
  y1: number | null;
  y2: number | null;
}

export interface Scatter {
  points: ScatterPoint[];
  xMax: number;
  yRange: [number, number];
}

/** Cost per cell (x, from 0) against the metric's value (y, up is the metric's value
 * growing) for the variants that have both, in a ``width`` x ``height`` box with
 * ``pad`` pixels kept free on each side. */
export function costQualityScatter(variants: VariantResult[], metric: string, width: number, height: number, pad = 24): Scatter {
  const usable = variants.filter((v) => v.cost_per_cell_usd !== null && v.metrics[metric]?.value != null);
  const xMax = Math.max(0, ...usable.map((v) => v.cost_per_cell_usd ?? 0)) || 1;
  const yRange = metricScale(usable, metric);
  const sx = (c: number) => pad + (c / xMax) * (width - 2 * pad);
  const sy = (v: number) => height - pad - ((v - yRange[0]) / (yRange[1] - yRange[0])) * (height - 2 * pad);
  return {
    xMax,
    yRange,
    points: usable.flatMap((v) => {
      const f = v.metrics[metric];
      if (!f) return [];
      return [
        {
          variant: v,
          x: sx(v.cost_per_cell_usd ?? 0),
          y: sy(f.value ?? 0),
          y1: f.ci_low === null ? null : sy(f.ci_low),
          y2: f.ci_high === null ? null : sy(f.ci_high),
        },
      ];
    }),
  };
}

/** Where a flipped input is in the grid: the row the grid marks with data-input-id. */
export function gridRowSelector(inputId: string): string {
  return `[data-testid="matrix-row"][data-input-id="${CSS.escape(inputId)}"]`;
}
