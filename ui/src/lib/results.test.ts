import { describe, expect, it } from "vitest";
import { fmtScore } from "./format";
import { ciBar, costQualityScatter, metricScale, resultsPath, type MetricFigure, type VariantResult } from "./results";

const figure = (value: number | null, lo: number | null, hi: number | null, kind: "numeric" | "boolean" = "numeric"): MetricFigure => ({
  kind,
  value,
  ci_low: lo,
  ci_high: hi,
  n_inputs: 10,
  n_values: 20,
  evaluator_errors: 0,
  method: "t",
});

const variant = (id: string, cost: number | null, metrics: Record<string, MetricFigure>): VariantResult => ({
  id,
  name: id.toUpperCase(),
  cells: 20,
  completed: 20,
  errors: 0,
  not_run: 0,
  error_rate: 0,
  latency_p50_ms: 100,
  latency_p95_ms: 200,
  ttft_p50_ms: null,
  input_tokens: 0,
  output_tokens: 0,
  tokens_per_cell: null,
  cost_total_usd: cost === null ? null : cost * 20,
  cost_per_cell_usd: cost,
  unpriced_cells: 0,
  judge_cost_usd: null,
  thumbs_up: 0,
  thumbs_down: 0,
  thumbs_up_rate: null,
  evaluator_errors: {},
  metrics,
  stability: {},
});

describe("resultsPath", () => {
  it("puts the chosen run, baseline and metric in the query, and csv when asked", () => {
    expect(resultsPath("exp 1")).toBe("/experiments/exp%201/results");
    expect(resultsPath("e", { run: "mxr_1", baseline: "v 2", metric: null }, "csv")).toBe("/experiments/e/results?run=mxr_1&baseline=v+2&format=csv");
  });
});

describe("metricScale and ciBar", () => {
  it("pass rates share 0..1; numbers span every interval with 5% room", () => {
    expect(metricScale([variant("a", 1, { p: figure(0.5, 0.2, 0.8, "boolean") })], "p")).toEqual([0, 1]);
    const [lo, hi] = metricScale([variant("a", 1, { s: figure(2, 1, 3) }), variant("b", 1, { s: figure(4, 3, 5) })], "s");
    expect(lo).toBeCloseTo(0.8);
    expect(hi).toBeCloseTo(5.2);
  });
  it("places the value and the interval's ends on the bar, clamped", () => {
    expect(ciBar(figure(0.5, 0.25, 0.75), [0, 1], 100)).toEqual({ x: 50, x1: 25, x2: 75 });
    expect(ciBar(figure(0.5, -1, 2), [0, 1], 100)).toEqual({ x: 50, x1: 0, x2: 100 });
    expect(ciBar(figure(0.5, null, null), [0, 1], 100)).toEqual({ x: 50, x1: null, x2: null });
    expect(ciBar(figure(null, null, null), [0, 1], 100)).toBeNull();
  });
});

describe("costQualityScatter", () => {
  it("puts cost on x from 0 and the metric on y (up is higher), skipping unknowns", () => {
    const vs = [
      variant("a", 0.002, { s: figure(0.9, 0.8, 1.0) }),
      variant("b", 0.001, { s: figure(0.5, 0.4, 0.6) }),
      variant("c", null, { s: figure(0.7, 0.6, 0.8) }),
    ];
    const out = costQualityScatter(vs, "s", 200, 100, 10);
    expect(out.points.map((p) => p.variant.id)).toEqual(["a", "b"]);
    expect(out.xMax).toBe(0.002);
    const [a, b] = out.points;
    expect(a?.x).toBe(190);
    expect(b?.x).toBe(100);
    expect(a && b && a.y < b.y).toBe(true); // the better score is drawn higher
  });
});

describe("fmtScore", () => {
  it("writes scores as people do", () => {
    expect(fmtScore(0.123)).toBe("0.12");
    expect(fmtScore(0.0034)).toBe("0.0034");
    expect(fmtScore(-0.05)).toBe("\u22120.05");
    expect(fmtScore(1.5)).toBe("1.5");
    expect(fmtScore(1234.6)).toBe("1,235");
    expect(fmtScore(null)).toBe("\u2013");
  });
});
