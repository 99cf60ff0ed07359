import { describe, expect, it } from "vitest";
import { formValues, isEvaluating, paramsBody, paramsSummary, type EvaluatorTypeInfo, type Rubric } from "./evaluators";

const metric = { kind: "boolean", direction: "higher", min_value: null, max_value: null };
const contains: EvaluatorTypeInfo = {
  type: "contains",
  label: "Contains",
  description: "",
  metric,
  params: [
    { name: "strings", kind: "strings", description: "the strings", default: null, required: true },
    { name: "mode", kind: "choice", description: "", default: "any", required: false, choices: ["any", "all"] },
    { name: "case_sensitive", kind: "boolean", description: "", default: false, required: false },
  ],
};
const schema: EvaluatorTypeInfo = {
  type: "json_schema",
  label: "JSON Schema",
  description: "",
  metric,
  params: [
    { name: "schema", kind: "object", description: "", default: null, required: true },
    { name: "tolerance", kind: "number", description: "", default: null, required: false },
  ],
};
const judge: EvaluatorTypeInfo = {
  type: "llm_judge",
  label: "LLM judge",
  description: "",
  metric,
  params: [
    { name: "model", kind: "string", description: "", default: null, required: true },
    { name: "template", kind: "choice", description: "", default: "style", required: false, choices: ["correctness", "style"] },
    { name: "rubric", kind: "text", description: "", default: null, required: false },
  ],
};
const rubrics: Rubric[] = [
  { name: "correctness", label: "Correctness", text: "Is {{output}} right?" },
  { name: "style", label: "Style", text: "Is {{output}} nice?" },
];

describe("evaluator params form", () => {
  it("fills defaults, and an evaluator's own params", () => {
    expect(formValues(contains, null, rubrics)).toEqual({ strings: "", mode: "any", case_sensitive: false });
    expect(formValues(contains, { strings: ["a", "b"], mode: "all", case_sensitive: true }, rubrics)).toEqual({
      strings: "a\nb",
      mode: "all",
      case_sensitive: true,
    });
    expect(formValues(judge, null, rubrics).rubric).toBe("Is {{output}} nice?");
    expect(formValues(judge, { model: "m", rubric: "Mine {{input}}" }, rubrics).rubric).toBe("Mine {{input}}");
  });

  it("turns the values into params, or says what is wrong", () => {
    expect(paramsBody(contains, { strings: " a \n\nb", mode: "all", case_sensitive: true })).toEqual({
      params: { strings: ["a", "b"], mode: "all", case_sensitive: true },
    });
    expect(paramsBody(contains, { strings: "  ", mode: "any", case_sensitive: false })).toEqual({
      problem: "strings is required: the strings",
    });
    expect(paramsBody(schema, { schema: '{"type": "object"}', tolerance: "0.5" })).toEqual({
      params: { schema: { type: "object" }, tolerance: 0.5 },
    });
    expect(paramsBody(schema, { schema: "[1]", tolerance: "" })).toEqual({ problem: "schema must be a JSON object." });
    expect("problem" in paramsBody(schema, { schema: "{", tolerance: "" })).toBe(true);
    expect(paramsBody(schema, { schema: "{}", tolerance: "x" })).toEqual({ problem: "tolerance must be a number." });
  });

  it("summarises params without the long ones, and knows when evaluation runs", () => {
    expect(paramsSummary({ model: "gpt-4o", rubric: "long", schema: {}, threshold: 0.5 })).toBe("model=gpt-4o, threshold=0.5");
    expect(isEvaluating(null)).toBe(false);
    expect(isEvaluating({ job: null, pending_cells: 2 })).toBe(true);
    const job = { id: "j", status: "completed" as const, total: 2, done: 2, scores: 2, errors: 0, error: null };
    expect(isEvaluating({ job, pending_cells: 0 })).toBe(false);
    expect(isEvaluating({ job: { ...job, status: "running" }, pending_cells: 0 })).toBe(true);
  });
});
