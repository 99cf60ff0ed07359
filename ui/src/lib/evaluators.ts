// The evaluators of an experiment as the UI uses them: the types the gateway lists
// (GET /evaluators/types), an experiment's evaluators, the re-run job's progress, and
// the params form as plain values (pure, so its conversion is tested without a browser).

import type { JsonObject, JsonValue } from "./types";

export type ParamKind = "string" | "text" | "strings" | "boolean" | "number" | "choice" | "object";

export interface EvaluatorParam {
  name: string;
  kind: ParamKind;
  description: string;
  default: JsonValue;
  required: boolean;
  choices?: string[];
  minimum?: number;
  maximum?: number;
}

export interface EvaluatorTypeInfo {
  type: string;
  label: string;
  description: string;
  params: EvaluatorParam[];
  metric: { kind: string; direction: string; min_value: number | null; max_value: number | null };
}

export interface Rubric {
  name: string;
  label: string;
  text: string;
}

export interface EvaluatorTypes {
  data: EvaluatorTypeInfo[];
  rubrics: Rubric[];
  rubric_variables: string[];
}

export interface Evaluator {
  id: string;
  experiment_id: string;
  name: string;
  type: string;
  metric_key: string;
  params: JsonObject;
  enabled: boolean;
  position: number;
  created_at: string;
  updated_at: string;
}

export interface EvaluationJob {
  id: string;
  status: "running" | "completed" | "failed" | "cancelled";
  total: number;
  done: number;
  scores: number;
  errors: number;
  error: string | null;
}

export interface EvaluationProgress {
  job: EvaluationJob | null;
  pending_cells: number;
}

export const JUDGE = "llm_judge";

/** The form's value of each param: text for text-like kinds, a boolean for booleans. */
export type ParamValues = Record<string, string | boolean>;

function textOf(value: JsonValue | undefined, kind: ParamKind): string {
  if (value === null || value === undefined) return "";
  if (kind === "strings") return Array.isArray(value) ? value.map(String).join("\n") : String(value);
  if (kind === "object") return JSON.stringify(value, null, 2);
  return String(value);
}

/** The form's values for a type: an evaluator's params, else the type's defaults (the
 * judge's rubric: the chosen template's text). */
export function formValues(info: EvaluatorTypeInfo, params: JsonObject | null, rubrics: Rubric[]): ParamValues {
  const values: ParamValues = {};
  for (const p of info.params) {
    const value = params && p.name in params ? params[p.name] : p.default;
    values[p.name] = p.kind === "boolean" ? value === true : textOf(value, p.kind);
  }
  if (info.type === JUDGE && !values.rubric) {
    const template = rubrics.find((r) => r.name === values.template) ?? rubrics[0];
    values.rubric = template?.text ?? "";
  }
  return values;
}

/** The params object for the API, or a message saying which field is wrong. */
export function paramsBody(info: EvaluatorTypeInfo, values: ParamValues): { params: JsonObject } | { problem: string } {
  const params: JsonObject = {};
  for (const p of info.params) {
    const raw = values[p.name];
    if (p.kind === "boolean") {
      params[p.name] = raw === true;
      continue;
    }
    const text = typeof raw === "string" ? raw : "";
    if (!text.trim()) {
      if (p.required) return { problem: `${p.name} is required: ${p.description}` };
      continue;
    }
    if (p.kind === "number") {
      const n = Number(text);
      if (!Number.isFinite(n)) return { problem: `${p.name} must be a number.` };
      params[p.name] = n;
    } else if (p.kind === "strings") {
      params[p.name] = text
        .split("\n")
        .map((s) => s.trim())
        .filter(Boolean);
    } else if (p.kind === "object") {
      try {
        const parsed: unknown = JSON.parse(text);
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return { problem: `${p.name} must be a JSON object.` };
        params[p.name] = parsed as JsonObject;
      } catch (err) {
        return { problem: `${p.name} is not valid JSON: ${(err as Error).message}` };
      }
    } else {
      params[p.name] = text;
    }
  }
  return { params };
}

/** A short line of an evaluator's settings (the rubric and schemas left out). */
export function paramsSummary(params: JsonObject): string {
  return Object.entries(params)
    .filter(([k]) => k !== "rubric" && k !== "schema")
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ");
}

/** Whether evaluation is still going on (a re-run job, or cells waiting to be scored). */
export function isEvaluating(progress: EvaluationProgress | null | undefined): boolean {
  return Boolean(progress && (progress.job?.status === "running" || progress.pending_cells > 0));
}
