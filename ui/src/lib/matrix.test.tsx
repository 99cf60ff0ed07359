import { cleanup, fireEvent, render } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { freshKeys, linesOf } from "../components/InputsPanel";
import { MatrixGrid } from "../components/MatrixGrid";
import { variantBody } from "../components/VariantsPanel";
import { EstimateBox } from "../pages/MatrixExperiment";
import { buildGrid, estimateLines, expectedText, isMatrixView, progressFraction, toolCallLines } from "./matrix";
import type { MatrixCell, MatrixEstimate, MatrixExperimentDetail, MatrixInput, MatrixProgress, Variant } from "./types";

afterEach(cleanup);

const variant = (id: string, name: string, model: string): Variant => ({
  id,
  experiment_id: "exp_1",
  name,
  description: null,
  system_prompt: null,
  config: { model },
  kind: "template",
  position: 0,
});

const input = (id: string, key: string, content: string, expected: MatrixInput["expected_output"] = null): MatrixInput => ({
  id,
  experiment_id: "exp_1",
  key,
  content,
  variables: null,
  request: null,
  expected_output: expected,
  metadata: null,
  source_span_id: null,
  dataset_id: null,
  dataset_version: null,
});

const cell = (variantId: string, inputId: string, repetition: number, status: string, output: string | null, run = "mrun_2"): MatrixCell => ({
  id: `exprun_${variantId}_${inputId}_${repetition}_${run}`,
  experiment_id: "exp_1",
  status,
  request: null,
  result_span_id: status === "completed" ? `span_${variantId}_${inputId}_${repetition}` : null,
  result_trace_id: null,
  output_text: output,
  error: status === "failed" ? { message: "HTTP 500 from the provider" } : null,
  started_at: null,
  ended_at: null,
  duration_ms: 120,
  matrix_run_id: run,
  variant_id: variantId,
  input_id: inputId,
  repetition,
  cost_usd: 0.00042,
  ttft_ms: null,
  input_tokens: 10,
  output_tokens: 5,
  retries: 0,
  config: { variant_name: variantId === "var_gone" ? "old one" : variantId, input_key: inputId },
});

function detail(cells: MatrixCell[], overrides: Partial<MatrixExperimentDetail> = {}): MatrixExperimentDetail {
  return {
    id: "exp_1",
    name: "Models",
    description: null,
    original_span_id: "",
    original_trace_id: "",
    original_request: {},
    modified_request: {},
    headers: null,
    prompt_variables: null,
    model_parameters: null,
    result_span_id: null,
    result_trace_id: null,
    status: "draft",
    project_id: null,
    created_at: null,
    updated_at: null,
    tags: [],
    favorite: false,
    error: null,
    kind: "matrix",
    variants: [variant("var_a", "mini", "gpt-4o-mini"), variant("var_b", "big", "gpt-4o")],
    inputs: [input("inp_1", "one", "first", "Paris is the capital"), input("inp_2", "two", "second"), input("inp_3", "three", "third")],
    matrix_runs: [
      { id: "mrun_2", experiment_id: "exp_1", status: "running", variant_ids: ["var_a", "var_b"], input_ids: ["inp_1", "inp_2", "inp_3"], repetitions: 2, cells: 12, created_at: "2026-12-02T02:00:00Z" },
      { id: "mrun_1", experiment_id: "exp_1", status: "completed", variant_ids: ["var_a"], input_ids: ["inp_1"], repetitions: 1, cells: 1, created_at: "2026-12-02T01:00:00Z" },
    ],
    runs: cells,
    ...overrides,
  };
}

describe("buildGrid", () => {
  it("places each cell by input (row), variant (column) and repetition, leaving the rest missing", () => {
    const cells = [
      cell("var_b", "inp_2", 2, "completed", "b-two-2"),
      cell("var_a", "inp_1", 1, "completed", "a-one-1"),
      cell("var_a", "inp_3", 1, "failed", null),
      cell("var_b", "inp_1", 1, "running", null),
      cell("var_a", "inp_1", 1, "completed", "from the older run", "mrun_1"),
    ];
    const grid = buildGrid(detail(cells));
    expect(grid.run?.id).toBe("mrun_2");
    expect(grid.variants.map((v) => v.id)).toEqual(["var_a", "var_b"]);
    expect(grid.rows.map((r) => r.input.id)).toEqual(["inp_1", "inp_2", "inp_3"]);
    expect(grid.rows.every((r) => r.slots.length === 2 && r.slots.every((s) => s.length === 2))).toBe(true);
    const at = (row: number, col: number, rep: number) => grid.rows[row]!.slots[col]![rep - 1]!;
    expect(at(0, 0, 1).cell?.output_text).toBe("a-one-1"); // not the older run's cell
    expect(at(1, 1, 2).cell?.output_text).toBe("b-two-2");
    expect(at(1, 1, 1).status).toBe("missing");
    expect(at(2, 0, 1).status).toBe("failed");
    expect(at(0, 1, 1).status).toBe("running");
    expect(grid.counts).toEqual({ completed: 2, failed: 1, running: 1, missing: 8 });
  });

  it("shows an older run by id, and a variant deleted since as removed", () => {
    const cells = [cell("var_gone", "inp_1", 1, "completed", "x", "mrun_1")];
    const exp = detail(cells, {
      matrix_runs: [{ id: "mrun_1", experiment_id: "exp_1", status: "completed", variant_ids: ["var_gone"], input_ids: ["inp_1"], repetitions: 1, cells: 1, created_at: "" }],
    });
    const grid = buildGrid(exp, "mrun_1");
    expect(grid.variants.map((v) => v.name)).toEqual(["old one (removed)"]);
    expect(grid.rows[0]!.slots[0]![0]!.cell?.output_text).toBe("x");
  });

  it("before any run: the current variants and inputs, every slot missing", () => {
    const grid = buildGrid(detail([], { matrix_runs: [] }));
    expect(grid.run).toBeNull();
    expect(grid.rows).toHaveLength(3);
    expect(grid.counts).toEqual({ missing: 6 });
  });
});

describe("the matrix page's helpers", () => {
  it("gives a matrix experiment, or a grown seed-1 one, the matrix page; a plain seed-1 one keeps its own", () => {
    expect(isMatrixView(detail([]))).toBe(true);
    const plain = detail([], { kind: "replay" });
    delete plain.variants;
    delete plain.inputs;
    delete plain.matrix_runs;
    delete plain.runs;
    expect(isMatrixView(plain)).toBe(false);
    expect(isMatrixView({ ...plain, variants: [] })).toBe(true);
  });

  it("reads the expected output as text, and progress as a fraction", () => {
    expect(expectedText(input("i", "k", "c", "Paris"))).toBe("Paris");
    expect(expectedText(input("i", "k", "c", { content: "Rome", tool_calls: [] }))).toBe("Rome");
    expect(expectedText(input("i", "k", "c", null))).toBeNull();
    const p: MatrixProgress = { run_id: "r", status: "running", total: 6, done: 3, pending: 1, running: 1, completed: 3, failed: 1, cancelled: 0, interrupted: 0, cost_usd: 0.01, retries: 0 };
    expect(progressFraction(p)).toBeCloseTo(4 / 6);
    expect(progressFraction({ ...p, total: 0, done: 0, failed: 0 })).toBe(0);
  });

  it("turns pasted text into one input per non-blank line and a variant form into its body", () => {
    expect(linesOf("  a \n\n b\r\nc\n  ")).toEqual(["a", "b", "c"]);
    // a second paste never reuses a key (the gateway refuses a duplicate batch)
    expect(freshKeys(["input-1", "input-2", "input-4"], 3)).toEqual(["input-5", "input-6", "input-7"]);
    expect(freshKeys(["original", "input-3"], 2)).toEqual(["input-4", "input-5"]);
    expect(freshKeys([], 2)).toEqual(["input-1", "input-2"]);
    const form = { name: " fast ", kind: "override" as const, model: "gpt-4o", temperature: "0.5", maxTokens: "", systemPrompt: "Be terse.", systemMode: "prepend" as const, extra: '{"top_p": 0.9}' };
    expect(variantBody(form)).toEqual({
      body: { name: "fast", kind: "override", systemPrompt: "Be terse.", config: { top_p: 0.9, model: "gpt-4o", temperature: 0.5, system_mode: "prepend" } },
    });
    expect(variantBody({ ...form, extra: "[1]" })).toEqual({ problem: "Other parameters must be a JSON object." });
    expect(variantBody({ ...form, temperature: "hot" })).toEqual({ problem: "temperature must be a number." });
    expect(variantBody({ ...form, name: " " })).toEqual({ problem: "A variant needs a name." });
  });
});

const estimate: MatrixEstimate = {
  calls: 6,
  variants: 2,
  inputs: 3,
  repetitions: 1,
  prompt_tokens: 300,
  completion_tokens: 900,
  cost_usd: 0.0123,
  unpriced_calls: 3,
  per_variant: [
    { variant_id: "var_a", name: "mini", model: "gpt-4o-mini", calls: 3, prompt_tokens: 150, completion_tokens: 450, cost_usd: 0.0123, unpriced_calls: 0 },
    { variant_id: "var_b", name: "local", model: "local/llama", calls: 3, prompt_tokens: 150, completion_tokens: 450, cost_usd: null, unpriced_calls: 3 },
  ],
  basis: { captured: ["inp_1"], approximated: ["inp_2", "inp_3"], approximation: "prompt tokens = characters / 4", captured_usage: "source span" },
};

describe("the estimate", () => {
  it("says calls, cost, basis and the unpriced calls", () => {
    const lines = estimateLines(estimate);
    expect(lines.calls).toBe("6 calls (2 variants \u00d7 3 inputs \u00d7 1)");
    expect(lines.cost).toBe("about $0.0123");
    expect(lines.basis).toBe("1 input from captured usage; 2 approximated (prompt tokens = characters / 4)");
    expect(lines.unpriced).toBe("3 calls without a price (not counted)");
    expect(estimateLines({ ...estimate, cost_usd: null }).cost).toBe("unknown (no price for these models)");
    expect(estimateLines({ ...estimate, unpriced_calls: 0 }).unpriced).toBeNull();
  });

  it("is shown before the run, which starts only on confirmation", () => {
    const run = vi.fn();
    const back = vi.fn();
    const { getByTestId, getByText } = render(<EstimateBox estimate={estimate} busy={false} onRun={run} onDismiss={back} />);
    expect(getByTestId("estimate-calls").textContent).toContain("6 calls");
    expect(getByTestId("estimate-cost").textContent).toBe("about $0.0123");
    expect(getByTestId("estimate").textContent).toContain("local/llama: 3 calls, 150 + 450 tokens, \u2013");
    expect(run).not.toHaveBeenCalled();
    fireEvent.click(getByTestId("confirm-run"));
    expect(run).toHaveBeenCalledOnce();
    fireEvent.click(getByText("Back"));
    expect(back).toHaveBeenCalledOnce();
  });
});

describe("MatrixGrid", () => {
  it("shows the tool calls a cell was answered with, as text", () => {
    const answered = cell("var_a", "inp_1", 1, "completed", null);
    answered.tool_calls = [
      { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"<b>Paris</b>"}' } },
    ];
    const { getByTestId, container } = render(<MatrixGrid grid={buildGrid(detail([answered]))} />);
    expect(getByTestId("matrix-tool-calls").textContent).toBe('get_weather({"city":"<b>Paris</b>"})');
    expect(container.querySelector("b")).toBeNull();
  });

  it("renders a 3 x 2 grid: outputs as text, statuses, span links, a diff against the expected output", () => {
    const exp = detail(
      [
        cell("var_a", "inp_1", 1, "completed", "Lyon is the <b>capital</b>"),
        cell("var_b", "inp_1", 1, "completed", "x".repeat(400)),
        cell("var_a", "inp_2", 1, "failed", null),
      ],
      { matrix_runs: [{ id: "mrun_2", experiment_id: "exp_1", status: "completed", variant_ids: ["var_a", "var_b"], input_ids: ["inp_1", "inp_2", "inp_3"], repetitions: 1, cells: 6, created_at: "" }] },
    );
    const { getAllByTestId, container, getAllByText } = render(<MatrixGrid grid={buildGrid(exp)} />);
    expect(getAllByTestId("matrix-row")).toHaveLength(3);
    expect(getAllByTestId("matrix-col")).toHaveLength(2);
    const slots = getAllByTestId("matrix-slot");
    expect(slots.map((s) => s.dataset.status)).toEqual(["completed", "completed", "failed", "missing", "missing", "missing"]);
    expect(container.querySelector("b")).toBeNull(); // model output is text, never markup
    expect(slots[0]!.textContent).toContain("Lyon is the <b>capital</b>");
    expect(slots[0]!.querySelector("a")?.getAttribute("href")).toBe("/ui/spans/span_var_a_inp_1_1");
    expect(slots[2]!.textContent).toContain("HTTP 500 from the provider");
    // long output: truncated until expanded
    expect(slots[1]!.textContent).not.toContain("x".repeat(400));
    fireEvent.click(getAllByText("More")[0]!);
    expect(getAllByTestId("matrix-slot")[1]!.textContent).toContain("x".repeat(400));
    // diff against the expected output
    fireEvent.click(getAllByText("Diff vs expected")[0]!);
    const diff = getAllByTestId("matrix-diff")[0]!;
    const text = (sel: string) => Array.from(diff.querySelectorAll(sel), (e) => e.textContent).join("");
    expect(text("ins")).toContain("<b>");
    expect(text("del")).toContain("Paris");
    expect(text("ins")).toContain("Lyon");
    // equal + inserted parts give the output back; equal + deleted the expected output
    expect(Array.from(diff.children).filter((e) => e.tagName !== "DEL").map((e) => e.textContent).join("")).toBe("Lyon is the <b>capital</b>");
    expect(Array.from(diff.children).filter((e) => e.tagName !== "INS").map((e) => e.textContent).join("")).toBe("Paris is the capital");
  });
});

describe("toolCallLines", () => {
  it("shows each call as name(arguments), and leaves out what is not a call", () => {
    const calls = [
      { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
      { id: "call_2", type: "function", function: { name: "now", arguments: { tz: "UTC" } } },
      { type: "function", function: { arguments: "{}" } },
      "nonsense",
      null,
    ];
    expect(toolCallLines(calls)).toEqual(['get_weather({"city":"Paris"})', 'now({"tz":"UTC"})']);
    expect(toolCallLines(null)).toEqual([]);
    expect(toolCallLines({ function: { name: "x" } })).toEqual([]);
  });
});
