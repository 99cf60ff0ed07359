import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { Comparison, emptySide, metricRows, sideFromSpan, type Side } from "./Comparison";
import type { SpanDetail } from "../lib/types";

afterEach(cleanup);

function side(text: string, extra: Partial<Side> = {}): Side {
  return {
    ...emptySide(text),
    model: "m",
    promptTokens: 100,
    completionTokens: 20,
    totalTokens: 120,
    costUsd: 0.002,
    latencyMs: 800,
    ttftMs: 200,
    finishReason: "stop",
    status: "ok",
    ...extra,
  };
}

describe("metricRows", () => {
  it("computes deltas and percent changes, lower being better", () => {
    const rows = metricRows(side("a"), side("b", { completionTokens: 30, totalTokens: 130, latencyMs: 400, costUsd: 0.002 }));
    const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
    expect(byName["Completion tokens"]).toMatchObject({ original: "20", result: "30", delta: "+10 (+50.0%)", trend: 1 });
    expect(byName["Latency"]).toMatchObject({ original: "800 ms", result: "400 ms", delta: "\u2212400 ms (\u221250.0%)", trend: -1 });
    expect(byName["Cost"]!.trend).toBe(0);
    expect(byName["Prompt tokens"]!.delta).toBe("\u00b10 (0%)");
  });

  it("shows a dash when either side lacks the figure", () => {
    const rows = metricRows(side("a", { ttftMs: null }), side("b"));
    expect(rows.find((r) => r.name === "TTFT")).toMatchObject({ original: "\u2013", delta: "\u2013", trend: 0 });
  });
});

describe("Comparison", () => {
  it("shows both outputs side by side and a word diff on demand", () => {
    render(<Comparison original={side("The sky is blue today.")} result={side("The sky is grey today.")} />);
    expect(screen.getByTestId("output-original").textContent).toBe("The sky is blue today.");
    expect(screen.getByTestId("output-result").textContent).toBe("The sky is grey today.");
    expect(document.querySelector("ins")).toBeNull();

    fireEvent.click(screen.getByTestId("diff-toggle"));
    const removed = [...screen.getByTestId("diff-original").querySelectorAll("del")].map((d) => d.textContent);
    const added = [...screen.getByTestId("diff-result").querySelectorAll("ins")].map((d) => d.textContent);
    expect(removed).toEqual(["blue"]);
    expect(added).toEqual(["grey"]);
    // each column still reads as its own full text
    expect(screen.getByTestId("diff-original").textContent).toBe("The sky is blue today.");
    expect(screen.getByTestId("diff-result").textContent).toBe("The sky is grey today.");
  });

  it("lists tool calls and marks the ones that changed", () => {
    const call = (args: string) => ({ kind: "tool_call" as const, id: "c1", name: "lookup", arguments: args });
    render(<Comparison original={side("", { toolCalls: [call('{"q":"a"}')] })} result={side("", { toolCalls: [call('{"q":"b"}')] })} />);
    expect(screen.getAllByText("lookup")).toHaveLength(2);
    expect(screen.getAllByText("changed").length).toBeGreaterThanOrEqual(2);
    expect(screen.getByText('{"q":"b"}')).toBeTruthy();
  });

  it("streams: shows partial output and no metrics until the run ends", () => {
    const { rerender } = render(<Comparison original={side("Old")} result={{ ...emptySide("Partial ou"), streaming: true }} />);
    expect(screen.getByTestId("output-result").textContent).toBe("Partial ou");
    expect(screen.getByText("streaming…")).toBeTruthy();
    expect(screen.queryByTestId("metrics")).toBeNull();
    rerender(<Comparison original={side("Old")} result={side("Partial output")} />);
    expect(screen.getByTestId("metrics").textContent).toContain("Completion tokens");
  });

  it("renders a model's markup as inert text", () => {
    const hostile = `<img src=x onerror="alert(1)"><script>alert(2)</script><a href="javascript:alert(3)">x</a>`;
    const { container } = render(<Comparison original={side(hostile)} result={side(hostile + "!")} />);
    expect(container.querySelector("img, script, a")).toBeNull();
    fireEvent.click(screen.getByTestId("diff-toggle"));
    expect(container.querySelector("img, script, a")).toBeNull();
    expect(screen.getByTestId("diff-original").textContent).toBe(hostile);
  });

  it("builds a side from a stored span", () => {
    const span = {
      response_model: "gpt-x",
      request_model: "gpt",
      output_text: null,
      response: { choices: [{ message: { role: "assistant", content: null, tool_calls: [{ id: "1", function: { name: "f", arguments: '{"a":1}' } }] } }] },
      finish_reason: "tool_calls",
      usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11, cached_tokens: null },
      cost_usd: 0.1,
      duration_ms: 10,
      ttft_ms: null,
      status: "ok",
      error: null,
    } as unknown as SpanDetail;
    const s = sideFromSpan(span);
    expect(s).toMatchObject({ model: "gpt-x", text: "", finishReason: "tool_calls", totalTokens: 11 });
    expect(s.toolCalls).toEqual([{ kind: "tool_call", id: "1", name: "f", arguments: '{\n  "a": 1\n}' }]);
  });
});
