// Feedback, scores and metric definitions: the gateway's records (gateway/api/scores.py),
// the calls that change them, and the pure logic of the grid's rating (which cell
// a key moves to, what a key does, a typed value as JSON). Tested without a browser.

import { query, sendJson } from "./api";

export interface Feedback {
  id: string;
  thumbs_up: boolean | null;
  note: string | null;
  run_id: string | null;
  span_id: string | null;
  experiment_id: string | null;
  variant_id: string | null;
  input_id: string | null;
  created_by: string | null;
  created_at: string;
  updated_by: string | null;
  updated_at: string;
}

export interface Score {
  id: string;
  metric_id: string;
  metric_key: string;
  value: number | null;
  label: string | null;
  note: string | null;
  error: { type?: string; message?: string } | null;
  source: string;
  run_id: string | null;
  span_id: string | null;
  experiment_id: string | null;
  variant_id: string | null;
  input_id: string | null;
  created_by: string | null;
  created_at: string;
}

export type MetricKind = "numeric" | "boolean" | "categorical";

export interface MetricDefinition {
  id: string;
  project_id: string | null;
  key: string;
  name: string;
  description: string | null;
  kind: MetricKind;
  direction: "higher" | "lower";
  min_value: number | null;
  max_value: number | null;
  categories: string[] | null;
  scale: string | null;
  created_at: string;
  updated_at: string;
}

export interface SpanEvaluation {
  target: { run_id: string | null; experiment_id: string | null };
  feedback: Feedback | null;
  scores: Score[];
}

/** What a rating is on: an experiment run (a grid cell), or a span. */
export type Target = { run: string } | { span: string };

function base(target: Target): string {
  return "run" in target
    ? `/experiments/runs/${encodeURIComponent(target.run)}`
    : `/spans/${encodeURIComponent(target.span)}`;
}

export interface FeedbackChange {
  thumbsUp?: boolean | null;
  note?: string | null;
}

export async function sendFeedback(target: Target, change: FeedbackChange): Promise<Feedback | null> {
  const answer = await sendJson<{ ok: boolean; feedback: Feedback | null }>("POST", `${base(target)}/feedback`, change);
  return answer.feedback;
}

export async function addScore(
  target: Target,
  body: { metricKey: string; value: number | boolean | string; note?: string },
): Promise<Score> {
  // The UI's scores are a person's: source "human" (the API's default is "api").
  const answer = await sendJson<{ score: Score }>("POST", `${base(target)}/scores`, { ...body, source: "human" });
  return answer.score;
}

export async function deleteScore(id: string): Promise<void> {
  await sendJson<void>("DELETE", `/scores/${encodeURIComponent(id)}`);
}

export const METRICS_PATH = "/metric-definitions";

export function metricPath(key: string, params: Record<string, string | boolean | null> = {}): string {
  return `${METRICS_PATH}/${encodeURIComponent(key)}${query(params)}`;
}

/** A score's value as text: its category, true/false on a boolean metric, the number,
 * or the evaluator's error. */
export function scoreText(score: Score, kind?: MetricKind): string {
  if (score.error) return `error${score.error.type ? `: ${score.error.type}` : ""}`;
  if (score.label !== null) return score.label;
  if (score.value === null) return "\u2014";
  if (kind === "boolean") return score.value ? "true" : "false";
  return String(Math.round(score.value * 1000) / 1000);
}

/** A source as a short word: human, api, or the evaluator's name. */
export function sourceText(source: string): string {
  return source.startsWith("evaluator:") ? source.slice("evaluator:".length) : source;
}

/** A typed value as the API takes it: a number, true/false, else the text (a category). */
export function parseValue(text: string): number | boolean | string {
  const t = text.trim();
  if (t === "true") return true;
  if (t === "false") return false;
  if (t !== "" && Number.isFinite(Number(t))) return Number(t);
  return t;
}

/** Feedback and scores by run id, for the grid's cells. */
export function byRun(feedback: Feedback[], scores: Score[]): Map<string, { feedback: Feedback | null; scores: Score[] }> {
  const out = new Map<string, { feedback: Feedback | null; scores: Score[] }>();
  const entry = (run: string) => {
    let e = out.get(run);
    if (!e) out.set(run, (e = { feedback: null, scores: [] }));
    return e;
  };
  for (const f of feedback) if (f.run_id) entry(f.run_id).feedback = f;
  for (const s of scores) if (s.run_id) entry(s.run_id).scores.push(s);
  return out;
}

export type GridKey = "next" | "prev" | "up" | "down" | "note";

/** What a key pressed on a focused cell does (none with a modifier). */
export function gridKey(e: { key: string; ctrlKey?: boolean; metaKey?: boolean; altKey?: boolean }): GridKey | null {
  if (e.ctrlKey || e.metaKey || e.altKey) return null;
  switch (e.key) {
    case "j":
      return "next";
    case "k":
      return "prev";
    case "1":
      return "up";
    case "2":
      return "down";
    case "n":
      return "note";
    default:
      return null;
  }
}

/** The index a move lands on, kept inside [0, count). */
export function moveIndex(index: number, delta: number, count: number): number {
  if (count <= 0) return 0;
  return Math.min(count - 1, Math.max(0, index + delta));
}

/** Thumbs after pressing up (true) or down (false): pressing the current one clears it. */
export function toggledThumbs(current: boolean | null | undefined, pressed: boolean): boolean | null {
  return current === pressed ? null : pressed;
}

/** The metric form's fields, as typed. */
export interface MetricForm {
  key: string;
  name: string;
  description: string;
  kind: MetricKind;
  direction: "higher" | "lower";
  min: string;
  max: string;
  categories: string;
  scale: string;
}

export function metricForm(m?: MetricDefinition): MetricForm {
  return {
    key: m?.key ?? "",
    name: m?.name ?? "",
    description: m?.description ?? "",
    kind: m?.kind ?? "numeric",
    direction: m?.direction ?? "higher",
    min: m?.min_value === null || m?.min_value === undefined ? "" : String(m.min_value),
    max: m?.max_value === null || m?.max_value === undefined ? "" : String(m.max_value),
    categories: (m?.categories ?? []).join(", "),
    scale: m?.scale ?? "",
  };
}

/** The form as the API's body: blanks are null, the range only on a numeric metric,
 * the categories (comma-separated, worst to best) only on a categorical one. A number
 * that is not one is sent as typed, for the gateway to name the field. */
export function metricBody(form: MetricForm, creating: boolean): Record<string, unknown> {
  const text = (v: string) => (v.trim() ? v.trim() : null);
  const num = (v: string) => (v.trim() === "" ? null : Number.isFinite(Number(v)) ? Number(v) : v);
  const body: Record<string, unknown> = {
    name: text(form.name) ?? form.key.trim(),
    description: text(form.description),
    kind: form.kind,
    direction: form.direction,
    scale: text(form.scale),
  };
  if (creating) body.key = form.key.trim();
  if (form.kind === "numeric") {
    body.min_value = num(form.min);
    body.max_value = num(form.max);
  }
  if (form.kind === "categorical") {
    body.categories = form.categories
      .split(",")
      .map((c) => c.trim())
      .filter(Boolean);
  }
  return body;
}

/** A metric's shape in words: its range, its categories, or true/false. */
export function metricShape(m: MetricDefinition): string {
  if (m.kind === "boolean") return "true / false";
  if (m.kind === "categorical") return (m.categories ?? []).join(" < ");
  const low = m.min_value === null ? "\u2212\u221e" : String(m.min_value);
  const high = m.max_value === null ? "\u221e" : String(m.max_value);
  return `${low} \u2026 ${high}`;
}
