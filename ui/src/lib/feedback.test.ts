import { describe, expect, it } from "vitest";
import {
  byRun,
  gridKey,
  metricBody,
  metricForm,
  metricShape,
  moveIndex,
  parseValue,
  scoreText,
  sourceText,
  toggledThumbs,
  type Feedback,
  type MetricDefinition,
  type Score,
} from "./feedback";

function score(over: Partial<Score>): Score {
  return {
    id: "s",
    metric_id: "m",
    metric_key: "k",
    value: null,
    label: null,
    note: null,
    error: null,
    source: "api",
    run_id: null,
    span_id: null,
    experiment_id: null,
    variant_id: null,
    input_id: null,
    created_by: null,
    created_at: "",
    ...over,
  };
}

function metric(over: Partial<MetricDefinition>): MetricDefinition {
  return {
    id: "m",
    project_id: null,
    key: "k",
    name: "k",
    description: null,
    kind: "numeric",
    direction: "higher",
    min_value: null,
    max_value: null,
    categories: null,
    scale: null,
    created_at: "",
    updated_at: "",
    ...over,
  };
}

describe("the grid's keys", () => {
  it("maps j/k/1/2/n and nothing with a modifier or another key", () => {
    expect(["j", "k", "1", "2", "n"].map((key) => gridKey({ key }))).toEqual(["next", "prev", "up", "down", "note"]);
    expect(gridKey({ key: "j", ctrlKey: true })).toBeNull();
    expect(gridKey({ key: "1", metaKey: true })).toBeNull();
    expect(gridKey({ key: "J" })).toBeNull();
    expect(gridKey({ key: "3" })).toBeNull();
  });

  it("moves within the cells and stops at both ends", () => {
    expect(moveIndex(0, 1, 4)).toBe(1);
    expect(moveIndex(3, 1, 4)).toBe(3);
    expect(moveIndex(0, -1, 4)).toBe(0);
    expect(moveIndex(-1, 1, 4)).toBe(0); // the focused cell not found: the first
    expect(moveIndex(2, 1, 0)).toBe(0);
  });

  it("toggles thumbs: the same thumb again clears it", () => {
    expect(toggledThumbs(null, true)).toBe(true);
    expect(toggledThumbs(true, true)).toBeNull();
    expect(toggledThumbs(true, false)).toBe(false);
    expect(toggledThumbs(undefined, false)).toBe(false);
  });
});

describe("scores as text", () => {
  it("says a category, a boolean, a number, an error", () => {
    expect(scoreText(score({ value: 2, label: "kind" }))).toBe("kind");
    expect(scoreText(score({ value: 1 }), "boolean")).toBe("true");
    expect(scoreText(score({ value: 0 }), "boolean")).toBe("false");
    expect(scoreText(score({ value: 0.123456 }))).toBe("0.123");
    expect(scoreText(score({ error: { type: "timeout", message: "judge timed out" } }))).toBe("error: timeout");
    expect(scoreText(score({}))).toBe("\u2014");
    expect(sourceText("evaluator:exact_match")).toBe("exact_match");
    expect(sourceText("human")).toBe("human");
  });

  it("parses a typed value as the API takes it", () => {
    expect(parseValue(" 0.5 ")).toBe(0.5);
    expect(parseValue("true")).toBe(true);
    expect(parseValue("false")).toBe(false);
    expect(parseValue("kind")).toBe("kind");
    expect(parseValue("1e3")).toBe(1000);
    expect(parseValue("")).toBe("");
  });
});

describe("byRun", () => {
  it("groups feedback and scores by run, leaving span-only ones out", () => {
    const fb = { id: "f", run_id: "r1", thumbs_up: true } as Feedback;
    const spanOnly = { id: "g", run_id: null, thumbs_up: false } as Feedback;
    const index = byRun([fb, spanOnly], [score({ id: "a", run_id: "r1" }), score({ id: "b", run_id: "r2" }), score({ id: "c" })]);
    expect([...index.keys()].sort()).toEqual(["r1", "r2"]);
    expect(index.get("r1")?.feedback).toBe(fb);
    expect(index.get("r1")?.scores.map((s) => s.id)).toEqual(["a"]);
    expect(index.get("r2")?.feedback).toBeNull();
  });
});

describe("the metric form", () => {
  it("sends the range only for a numeric metric and categories only for a categorical one", () => {
    const form = { ...metricForm(), key: " tone ", kind: "categorical" as const, categories: "rude, ok ,, kind", min: "1" };
    expect(metricBody(form, true)).toEqual({
      key: "tone",
      name: "tone",
      description: null,
      kind: "categorical",
      direction: "higher",
      scale: null,
      categories: ["rude", "ok", "kind"],
    });
    const numeric = { ...metricForm(), key: "x", min: "0", max: "abc" };
    const body = metricBody(numeric, false);
    expect(body.key).toBeUndefined(); // an edit never sends the key
    expect([body.min_value, body.max_value]).toEqual([0, "abc"]); // the gateway names it
  });

  it("round-trips a metric into the form and says its shape", () => {
    const m = metric({ min_value: 0, max_value: 5, description: "d" });
    expect(metricForm(m)).toMatchObject({ key: "k", min: "0", max: "5", description: "d" });
    expect(metricShape(m)).toBe("0 \u2026 5");
    expect(metricShape(metric({ min_value: null }))).toBe("\u2212\u221e \u2026 \u221e");
    expect(metricShape(metric({ kind: "categorical", categories: ["a", "b"] }))).toBe("a < b");
    expect(metricShape(metric({ kind: "boolean" }))).toBe("true / false");
  });
});
