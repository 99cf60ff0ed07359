import { describe, expect, it } from "vitest";
import { applyAnswer, applyEvent, newTurn, paramsBody, sessionTurns, spanPrefill } from "./playground";

const done = (index: number, model: string, output: string) => ({
  index,
  model,
  output,
  latency_ms: 120.5,
  ttft_ms: 40,
  usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7, cached_tokens: null },
  cost_usd: 0.00001,
  span_id: `span-${index}`,
  trace_id: "t",
  error: null,
});

describe("streamed deltas per model", () => {
  it("fills each model's column from interleaved deltas", () => {
    let turn = newTurn("hi", ["a", "b"]);
    turn = applyEvent(turn, "start", { session_id: "pgs_1", models: [{ index: 0, model: "a" }, { index: 1, model: "b" }] });
    turn = applyEvent(turn, "delta", { index: 1, model: "b", content: "Hel" });
    turn = applyEvent(turn, "delta", { index: 0, model: "a", content: "One " });
    turn = applyEvent(turn, "delta", { index: 1, model: "b", content: "lo" });
    turn = applyEvent(turn, "delta", { index: 0, model: "a", content: "two" });
    expect(turn.answers.map((a) => a.content)).toEqual(["One two", "Hello"]);
    expect(turn.answers.every((a) => !a.done)).toBe(true);
  });

  it("a done event sets that model's figures and span, the other keeps streaming", () => {
    let turn = newTurn("hi", ["a", "b"]);
    turn = applyEvent(turn, "delta", { index: 0, content: "x" });
    turn = applyEvent(turn, "done", done(1, "b", "final b"));
    expect(turn.answers[1]).toMatchObject({ done: true, content: "final b", spanId: "span-1" });
    expect(turn.answers[1]!.figures?.latency_ms).toBe(120.5);
    expect(turn.answers[0]).toMatchObject({ done: false, content: "x" });
    // a late delta for a finished model changes nothing
    const after = applyEvent(turn, "delta", { index: 1, content: "zzz" });
    expect(after.answers[1]!.content).toBe("final b");
  });

  it("end fills every output, errors per model and for the request", () => {
    let turn = newTurn("hi", ["a", "b"]);
    turn = applyEvent(turn, "end", {
      session_id: "pgs_1",
      outputs: [done(0, "a", "A"), { ...done(1, "b", ""), output: null, error: { message: "upstream 500" } }],
    });
    expect(turn.answers[0]!.content).toBe("A");
    expect(turn.answers[1]!.error).toBe("upstream 500");
    const failed = applyEvent(newTurn("x", ["a"]), "error", { error: { message: "gateway broke" } });
    expect(failed.error).toBe("gateway broke");
  });

  it("ignores events it cannot read and does not mutate the turn", () => {
    const turn = newTurn("hi", ["a"]);
    expect(applyEvent(turn, "delta", "nonsense")).toBe(turn);
    expect(applyEvent(turn, "delta", { index: -1, content: "x" })).toBe(turn);
    const next = applyEvent(turn, "delta", { index: 0, content: "x" });
    expect(turn.answers[0]!.content).toBe("");
    expect(next.answers[0]!.content).toBe("x");
  });

  it("a non-streamed answer fills the same way", () => {
    const turn = applyAnswer(newTurn("hi", ["a"]), { outputs: [done(0, "a", "whole")] });
    expect(turn.answers[0]).toMatchObject({ content: "whole", done: true });
  });
});

describe("sessionTurns", () => {
  it("groups a stored session's messages into turns with a column per model", () => {
    const { turns, models } = sessionTurns(
      [
        { id: "1", seq: 1, role: "user", content: "q1", model: null, span_id: null },
        { id: "2", seq: 2, role: "assistant", content: "a1", model: "a", span_id: "s1" },
        { id: "3", seq: 3, role: "assistant", content: "b1", model: "b", span_id: "s2" },
        { id: "5", seq: 5, role: "assistant", content: "a2", model: "a", span_id: "s3" },
        { id: "4", seq: 4, role: "user", content: "q2", model: null, span_id: null },
      ],
      ["a", "b"],
    );
    expect(models).toEqual(["a", "b"]);
    expect(turns.map((t) => t.prompt)).toEqual(["q1", "q2"]);
    expect(turns[0]!.answers.map((a) => a.content)).toEqual(["a1", "b1"]);
    expect(turns[1]!.answers.map((a) => a.content)).toEqual(["a2", ""]);
    expect(turns[0]!.answers[1]!.spanId).toBe("s2");
  });
});

describe("spanPrefill", () => {
  it("takes the system prompt, the earlier turns, the last user message and the parameters", () => {
    const pre = spanPrefill({
      request_model: "gpt-4o-mini",
      request: {
        model: "gpt-4o-mini",
        temperature: 0.3,
        max_tokens: 50,
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Hi" },
          { role: "assistant", content: "Hello!" },
          { role: "user", content: [{ type: "text", text: "Weather?" }] },
        ],
      },
    });
    expect(pre).toEqual({
      model: "gpt-4o-mini",
      system: "Be brief.",
      context: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello!" },
      ],
      prompt: "Weather?",
      temperature: 0.3,
      top_p: null,
      max_tokens: 50,
    });
  });
});

describe("paramsBody", () => {
  it("leaves unset parameters out and names a bad one", () => {
    expect(paramsBody({ temperature: "", top_p: "", max_tokens: "" })).toEqual({ body: {}, error: null });
    expect(paramsBody({ temperature: "0.5", top_p: "", max_tokens: "64" }).body).toEqual({ temperature: 0.5, max_tokens: 64 });
    expect(paramsBody({ temperature: "3", top_p: "", max_tokens: "" }).error).toMatch(/temperature/);
    expect(paramsBody({ temperature: "", top_p: "", max_tokens: "1.5" }).error).toMatch(/max_tokens/);
  });
});
