import { describe, expect, it } from "vitest";
import { addMessage, messagesOf, modelParameters, otherKeys, paramsFor, setStream, streams } from "./editor";
import type { JsonObject } from "./types";

const chat: JsonObject = {
  model: "gpt-4o-mini",
  messages: [
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
  ],
};

describe("+ system", () => {
  it("inserts a system message at the top, other roles at the end", () => {
    const r = addMessage(chat, "system", "Be terse.");
    expect(messagesOf(r).map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    expect(messagesOf(r)[0]!.content).toBe("Be terse.");
    // a second one goes after the first, still before the conversation
    const twice = addMessage(r, "system", "Second");
    expect(messagesOf(twice).map((m) => m.content)).toEqual(["Be terse.", "Second", "Hi", "Hello"]);
    expect(messagesOf(addMessage(chat, "user")).map((m) => m.role)).toEqual(["user", "assistant", "user"]);
  });
});

describe("parameters per dialect", () => {
  const names = (format: Parameters<typeof paramsFor>[0]) => paramsFor(format).map((p) => p.name);

  it("offers each dialect its own parameters", () => {
    expect(names("chat")).not.toContain("top_k");
    expect(names("chat")).toEqual(expect.arrayContaining(["temperature", "max_tokens", "max_completion_tokens", "seed", "response_format"]));
    expect(names("anthropic")).toEqual(expect.arrayContaining(["temperature", "max_tokens", "top_k", "stop_sequences"]));
    expect(names("anthropic")).not.toContain("seed");
    expect(names("anthropic")).not.toContain("frequency_penalty");
    expect(names("responses")).toContain("max_output_tokens");
    expect(names("responses")).not.toContain("max_tokens");
    for (const format of ["chat", "anthropic", "responses", "other"] as const) {
      expect(new Set(names(format)).size).toBe(names(format).length); // one input per name
    }
  });

  it("bounds Anthropic's temperature at 1 and OpenAI's at 2", () => {
    expect(paramsFor("anthropic").find((p) => p.name === "temperature")!.max).toBe(1);
    expect(paramsFor("chat").find((p) => p.name === "temperature")!.max).toBe(2);
  });

  it("lists another dialect's parameter as an other key, not hidden", () => {
    const request: JsonObject = { ...chat, top_k: 5, temperature: 1 };
    expect(otherKeys(request, "chat")).toEqual(["top_k"]);
    expect(otherKeys(request, "anthropic")).toEqual([]);
    expect(modelParameters(request)).toEqual({ top_k: 5, temperature: 1 });
  });
});

describe("stream", () => {
  it("reads and sets the request's own stream field", () => {
    expect(streams(chat)).toBe(false);
    const on = setStream(chat, true);
    expect(on.stream).toBe(true);
    expect(streams(on)).toBe(true);
    const off = setStream({ ...on, stream_options: { include_usage: true } }, false);
    expect("stream" in off).toBe(false);
    expect("stream_options" in off).toBe(false);
  });
});
