// The matrix of an experiment as the page shows it: which experiments get the matrix
// page, the grid (inputs x variants, each cell's repetitions) built from a detail's
// variants, inputs, matrix runs and cells, and the estimate as sentences. Pure, so the
// grid's placement and the estimate's wording are tested without a browser.

import { fmtCost, fmtInt } from "./format";
import { isObject } from "./messages";
import type {
  MatrixCell,
  MatrixEstimate,
  MatrixExperimentDetail,
  MatrixInput,
  MatrixProgress,
  MatrixRun,
  Variant,
} from "./types";

/** A matrix experiment, or a seed-1 one that has grown variants, inputs or matrix runs
 * (the gateway adds those lists only then): a plain seed-1 experiment keeps its page. */
export function isMatrixView(exp: MatrixExperimentDetail): boolean {
  return exp.kind === "matrix" || exp.variants !== undefined || exp.inputs !== undefined;
}

/** A place in the grid; `cell` is null when the run has no such cell (yet). */
export interface GridSlot {
  variantId: string;
  inputId: string;
  repetition: number;
  cell: MatrixCell | null;
  /** The cell's status, or `missing`. */
  status: string;
}

export interface GridRow {
  input: MatrixInput;
  /** One list per column (variant), one slot per repetition. */
  slots: GridSlot[][];
}

export interface GridModel {
  run: MatrixRun | null;
  variants: Variant[];
  inputs: MatrixInput[];
  repetitions: number;
  rows: GridRow[];
  /** How many slots have each status (`missing` included). */
  counts: Record<string, number>;
}

function placeholderVariant(id: string, cells: MatrixCell[]): Variant {
  const cell = cells.find((c) => c.variant_id === id);
  const config = cell?.config ?? null;
  const name = config && typeof config.variant_name === "string" ? config.variant_name : id;
  return { id, experiment_id: "", name: `${name} (removed)`, description: null, system_prompt: null, config: null, kind: "template", position: 0 };
}

function placeholderInput(id: string, cells: MatrixCell[]): MatrixInput {
  const cell = cells.find((c) => c.input_id === id);
  const config = cell?.config ?? null;
  const key = config && typeof config.input_key === "string" ? config.input_key : id;
  return {
    id,
    experiment_id: "",
    key: `${key} (removed)`,
    content: null,
    variables: null,
    request: null,
    expected_output: null,
    metadata: null,
    source_span_id: null,
    dataset_id: null,
    dataset_version: null,
  };
}

/** The grid of one matrix run (default: the latest); with no run yet, the current
 * variants and inputs with every slot missing. Cells of other runs are left out; a
 * variant or input deleted since the run keeps its column or row, marked removed. */
export function buildGrid(exp: MatrixExperimentDetail, runId?: string | null): GridModel {
  const runs = exp.matrix_runs ?? [];
  const run = (runId ? runs.find((r) => r.id === runId) : runs[0]) ?? null;
  const cells = (exp.runs ?? []).filter((c) => run !== null && c.matrix_run_id === run.id);
  const allVariants = exp.variants ?? [];
  const allInputs = exp.inputs ?? [];
  const variants = run ? run.variant_ids.map((id) => allVariants.find((v) => v.id === id) ?? placeholderVariant(id, cells)) : allVariants;
  const inputs = run ? run.input_ids.map((id) => allInputs.find((i) => i.id === id) ?? placeholderInput(id, cells)) : allInputs;
  const repetitions = run ? Math.max(1, run.repetitions) : 1;
  const byKey = new Map<string, MatrixCell>();
  for (const cell of cells) byKey.set(`${cell.variant_id}\u0000${cell.input_id}\u0000${cell.repetition ?? 1}`, cell);
  const counts: Record<string, number> = {};
  const rows = inputs.map((input) => ({
    input,
    slots: variants.map((variant) =>
      Array.from({ length: repetitions }, (_, i) => {
        const cell = byKey.get(`${variant.id}\u0000${input.id}\u0000${i + 1}`) ?? null;
        const status = cell ? cell.status : "missing";
        counts[status] = (counts[status] ?? 0) + 1;
        return { variantId: variant.id, inputId: input.id, repetition: i + 1, cell, status };
      }),
    ),
  }));
  return { run, variants, inputs, repetitions, rows, counts };
}

/** The expected output as text: a string, or an answer's `content`; else null. */
export function expectedText(input: MatrixInput): string | null {
  const expected = input.expected_output;
  if (typeof expected === "string") return expected;
  if (isObject(expected) && typeof expected.content === "string") return expected.content;
  return null;
}

/** An input's one-line label for the grid's row heads and the inputs list. */
export function inputPreview(input: MatrixInput): string {
  if (input.content) return input.content;
  if (input.variables) return JSON.stringify(input.variables);
  const messages = input.request && Array.isArray(input.request.messages) ? input.request.messages : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (isObject(m) && m.role === "user" && typeof m.content === "string") return m.content;
  }
  return input.request ? "captured request" : "";
}

/** A run is over when no cell can still move. */
export function isRunning(progress: MatrixProgress | null | undefined): boolean {
  return progress?.status === "running";
}

/** Share of the run's cells finished one way or another (0-1). */
export function progressFraction(p: MatrixProgress): number {
  if (!p.total) return 0;
  return Math.min(1, (p.done + p.failed) / p.total);
}

/** The estimate as the sentences shown before Run. */
export function estimateLines(est: MatrixEstimate): { calls: string; cost: string; basis: string; unpriced: string | null } {
  const calls = `${fmtInt(est.calls)} call${est.calls === 1 ? "" : "s"} (${fmtInt(est.variants)} variant${est.variants === 1 ? "" : "s"} \u00d7 ${fmtInt(est.inputs)} input${est.inputs === 1 ? "" : "s"} \u00d7 ${fmtInt(est.repetitions)})`;
  const cost = est.cost_usd === null ? "unknown (no price for these models)" : `about ${fmtCost(est.cost_usd)}`;
  const captured = est.basis.captured.length;
  const approximated = est.basis.approximated.length;
  const parts: string[] = [];
  if (captured) parts.push(`${fmtInt(captured)} input${captured === 1 ? "" : "s"} from captured usage`);
  if (approximated) parts.push(`${fmtInt(approximated)} approximated (${est.basis.approximation})`);
  const unpriced = est.unpriced_calls
    ? `${fmtInt(est.unpriced_calls)} call${est.unpriced_calls === 1 ? "" : "s"} without a price (not counted)`
    : null;
  return { calls, cost, basis: parts.join("; "), unpriced };
}

/** A cell's tool calls as text lines, `name(arguments)` (OpenAI chat shape:
 *  `{function: {name, arguments}}`); anything else is left out. */
export function toolCallLines(calls: unknown): string[] {
  if (!Array.isArray(calls)) return [];
  const lines: string[] = [];
  for (const call of calls) {
    if (!call || typeof call !== "object") continue;
    const fn = (call as { function?: unknown }).function;
    if (!fn || typeof fn !== "object") continue;
    const { name, arguments: args } = fn as { name?: unknown; arguments?: unknown };
    if (typeof name !== "string") continue;
    const shown = typeof args === "string" ? args : args === undefined ? "" : JSON.stringify(args);
    lines.push(`${name}(${shown})`);
  }
  return lines;
}
