import { cleanup, fireEvent, render, waitFor } from "@testing-library/react";
import { SWRConfig } from "swr";
import { afterEach, describe, expect, it, vi } from "vitest";
import { checkSpan } from "../lib/spanShape";
import { embeddingsSummary, elideVectors, modelIds, responseOutput } from "../lib/messages";
import { LONG_TEXT_CHARS } from "./Messages";
import { SpanDetailView } from "./SpanDetail";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const BASE = {
  span_id: "s1",
  trace_id: "t1",
  parent_span_id: null,
  status: "ok",
  operation: "chat",
  start_us: 1_700_000_000_000_000,
  start_time: "2026-01-01T00:00:00Z",
  usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, cached_tokens: null },
};

/** The detail view over a fake API answering `routes` (path -> JSON). */
function show(record: unknown, routes: Record<string, unknown> = {}) {
  const answers: Record<string, unknown> = {
    "/spans/s1": record,
    "/traces/t1": { trace_id: "t1", spans: [] },
    "/experiments/by-span/s1": { data: [] },
    ...routes,
  };
  const fetcher = (path: string) => (path in answers ? Promise.resolve(answers[path]) : Promise.reject(new Error(`no ${path}`)));
  // the experiments list fetches on its own (getJson): answer it too, never the network
  vi.stubGlobal("fetch", (path: string) =>
    Promise.resolve(new Response(JSON.stringify(answers[path] ?? {}), { status: path in answers ? 200 : 404 })),
  );
  return render(
    <SWRConfig value={{ fetcher, provider: () => new Map(), dedupingInterval: 0 }}>
      <SpanDetailView spanId="s1" />
    </SWRConfig>,
  );
}

describe("SpanDetailView with a malformed record", () => {
  it("renders what it can and names the fields it could not read", async () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const view = show({
      ...BASE,
      status: 42,
      request: "a string",
      usage: [1, 2],
      tags: ["x", "y"],
      duration_ms: "slow",
      thread_id: { nested: true },
      parent_span_id: 7,
      response: { choices: "nope" },
    });
    const detail = await view.findByTestId("span-detail");
    await view.findByTestId("record-problems");
    const problems = view.getByTestId("record-problems").textContent ?? "";
    for (const field of ["status", "request", "usage", "tags", "duration_ms", "thread_id", "parent_span_id"]) {
      expect(problems).toContain(field);
    }
    expect(view.getByTestId("detail-span-id").textContent).toContain("s1");
    expect(view.getByTestId("span-tags").textContent).toBe("x, y");
    expect(view.queryByTestId("error-card")).toBeNull();
    expect(detail.textContent).toContain("parent7");
    quiet.mockRestore();
  });

  it("accepts a request whose messages are a number and a record that is not an object", async () => {
    const view = show({ ...BASE, request: { messages: 5, model: "m" } });
    expect((await view.findByTestId("record-problems")).textContent).toContain("request.messages");
    cleanup();
    const odd = checkSpan([1, 2], "given-id");
    expect(odd.span.span_id).toBe("given-id");
    expect(odd.problems[0]).toContain("record");
  });
});

describe("SpanDetailView per operation", () => {
  it("summarises embeddings without the vectors", async () => {
    const vector = Array.from({ length: 8 }, (_, i) => i / 10 + 0.123456);
    const view = show({
      ...BASE,
      operation: "embeddings",
      request: { model: "e", input: ["alpha", "beta", "gamma"] },
      response: { object: "list", data: [0, 1, 2].map((index) => ({ object: "embedding", index, embedding: vector })) },
    });
    const summary = await view.findByTestId("embeddings-summary");
    expect(summary.textContent).toContain("inputs3");
    expect(summary.textContent).toContain("vectors returned3");
    expect(summary.textContent).toContain("dimensions8");
    expect(view.container.textContent).not.toContain("0.123456");
    expect(view.container.textContent).toContain("[8 values, not shown]");
  });

  it("shows a single text input of an embeddings call", async () => {
    const view = show({ ...BASE, operation: "embeddings", request: { model: "e", input: "just one" }, response: { data: [{ embedding: [0.5, 0.25] }] } });
    expect((await view.findByTestId("embeddings-summary")).textContent).toContain("dimensions2");
    expect(view.container.querySelector(".msg[data-role='input']")?.textContent).toContain("just one");
  });

  it("lists the model ids of GET /v1/models", async () => {
    const view = show({ ...BASE, operation: "models", request: null, response: { object: "list", data: [{ id: "gpt-x" }, { id: "Claude-Y" }] } });
    const ids = await view.findByTestId("model-ids");
    expect([...ids.querySelectorAll("li")].map((li) => li.textContent)).toEqual(["gpt-x", "Claude-Y"]);
  });

  it("shows the count of a count_tokens call and the Anthropic messages counted", async () => {
    const view = show({ ...BASE, operation: "count_tokens", request: { model: "claude-x", system: "Sys", messages: [{ role: "user", content: "Count me" }] }, response: { input_tokens: 1234 } });
    expect((await view.findByTestId("counted-tokens")).textContent).toBe("1,234");
    expect(view.container.textContent).toContain("Count me");
    expect(view.container.querySelector(".msg[data-role='system']")?.textContent).toContain("Sys");
  });

  it("shows Responses API input and output items, reasoning and function calls included", async () => {
    const view = show({
      ...BASE,
      operation: "responses",
      request: { model: "m", input: [{ role: "user", content: [{ type: "input_text", text: "Question?" }] }, { type: "function_call_output", call_id: "call_lower_abc", output: "42" }] },
      response: {
        output: [
          { type: "reasoning", summary: [{ type: "summary_text", text: "Thinking it over" }] },
          { type: "function_call", call_id: "call_xyz", name: "lookup", arguments: '{"q":1}' },
          { type: "message", role: "assistant", content: [{ type: "output_text", text: "Answer." }] },
        ],
      },
    });
    const output = await view.findByTestId("span-output");
    expect(output.textContent).toContain("Thinking it over");
    expect(output.textContent).toContain("lookup");
    expect(output.textContent).toContain("call_xyz");
    expect(output.textContent).toContain("Answer.");
    expect(view.container.textContent).toContain("call_lower_abc");
    expect(view.getByText("Input items")).toBeTruthy();
    expect(view.getByText("Output items")).toBeTruthy();
  });

  it("collapses a long output behind a keyboard-reachable Show all button", async () => {
    const long = "word ".repeat(LONG_TEXT_CHARS);
    const view = show({ ...BASE, request: { messages: [{ role: "user", content: "q" }] }, response: { choices: [{ message: { role: "assistant", content: long } }] } });
    const output = await view.findByTestId("span-output");
    expect(output.textContent!.length).toBeLessThan(long.length);
    const button = output.querySelector("button.show-all") as HTMLButtonElement;
    expect(button.tagName).toBe("BUTTON");
    expect(button.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(button);
    await waitFor(() => expect(output.textContent).toContain(long.trim()));
    expect(button.getAttribute("aria-expanded")).toBe("true");
  });
});

describe("operation helpers", () => {
  it("count inputs, vectors and dimensions for every input shape", () => {
    expect(embeddingsSummary({ input: "one" }, null).inputs).toBe(1);
    expect(embeddingsSummary({ input: [1, 2, 3] }, null)).toMatchObject({ inputs: 1, inputKind: "tokens" });
    expect(embeddingsSummary({ input: [[1], [2]] }, null)).toMatchObject({ inputs: 2, inputKind: "tokens" });
    // base64 float32: 4 floats = 16 bytes = 24 base64 characters
    expect(embeddingsSummary({ input: "x", encoding_format: "base64" }, { data: [{ embedding: "AAAAAAAAAAAAAAAAAAAAAA==" }] })).toMatchObject({ vectors: 1, dimensions: 4, encodingFormat: "base64" });
    expect(embeddingsSummary("odd", 5)).toMatchObject({ inputs: null, vectors: null, dimensions: null });
    expect(elideVectors({ data: [{ embedding: [1, 2] }, 3] })).toEqual({ data: [{ embedding: "[2 values, not shown]" }, 3] });
    expect(modelIds({ id: "one" })).toEqual(["one"]);
    expect(modelIds("x")).toBeNull();
    expect(responseOutput({ type: "message", content: [{ type: "redacted_thinking", data: "x" }, { type: "thinking", thinking: "hmm" }] }).messages[0]!.parts.map((p) => p.kind)).toEqual(["reasoning", "reasoning"]);
  });
});
