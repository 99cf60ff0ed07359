import { describe, expect, it } from "vitest";
import { requestChanges, runSummary, systemPrompt } from "./requestDiff";
import type { JsonObject } from "./types";

const original: JsonObject = {
  model: "gpt-4o-mini",
  temperature: 0.2,
  messages: [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Name three colours." },
  ],
  tools: [{ type: "function", function: { name: "search", parameters: {} } }],
};

describe("requestChanges", () => {
  it("is empty for equal requests, whatever the key order", () => {
    const reordered: JsonObject = { messages: original.messages!, tools: original.tools!, temperature: 0.2, model: "gpt-4o-mini" };
    expect(requestChanges(original, reordered)).toEqual([]);
  });

  it("groups model, system prompt, parameters, tools and messages, in that order", () => {
    const run: JsonObject = {
      model: "gpt-4o",
      top_p: 0.5,
      stream: true,
      messages: [
        { role: "system", content: "You are verbose." },
        { role: "user", content: "Name three planets." },
        { role: "user", content: "And moons?" },
      ],
      tools: [
        { type: "function", function: { name: "search", parameters: { type: "object" } } },
        { type: "function", function: { name: "fetch", parameters: {} } },
      ],
    };
    const changes = requestChanges(original, run);
    expect(changes.map((c) => [c.section, c.label, c.op])).toEqual([
      ["model", "model", "changed"],
      ["system", "system prompt", "changed"],
      ["parameters", "stream", "changed"],
      ["parameters", "temperature", "removed"],
      ["parameters", "top_p", "added"],
      ["tools", "tool search", "changed"],
      ["tools", "tool fetch", "added"],
      ["messages", "message 1 (user)", "changed"],
      ["messages", "message 2 (user)", "added"],
    ]);
    const system = changes.find((c) => c.section === "system")!;
    expect([system.before, system.after]).toEqual(["You are terse.", "You are verbose."]);
    const temperature = changes.find((c) => c.label === "temperature")!;
    expect([temperature.before, temperature.after]).toEqual(["0.2", null]);
    const first = changes.find((c) => c.label === "message 1 (user)")!;
    expect([first.before, first.after]).toEqual(["Name three colours.", "Name three planets."]);
  });

  it("reads the system prompt in every dialect", () => {
    expect(systemPrompt({ system: [{ type: "text", text: "Be kind." }], messages: [] })).toBe("Be kind.");
    expect(systemPrompt({ instructions: "Answer in French.", input: "hi" })).toBe("Answer in French.");
    expect(systemPrompt({ messages: [{ role: "user", content: "x" }] })).toBeNull();
    const anthropic = requestChanges({ model: "c", system: "A", messages: [] }, { model: "c", messages: [] });
    expect(anthropic).toEqual([{ section: "system", label: "system prompt", op: "removed", before: "A", after: null }]);
  });

  it("counts a stream: false and no stream as the same", () => {
    expect(requestChanges({ model: "m", stream: false }, { model: "m" })).toEqual([]);
  });
});

describe("runSummary", () => {
  it("lists what a run sent differently from the original", () => {
    const run: JsonObject = { ...original, model: "gpt-4o", temperature: 1.3, stream: true };
    expect(runSummary(original, run)).toEqual(["model gpt-4o", "stream", "temperature 1.3"]);
    const edited: JsonObject = { ...original, temperature: undefined as never, messages: [{ role: "user", content: "Other" }] };
    delete edited.temperature;
    expect(runSummary(original, edited)).toEqual(["temperature unset", "system prompt changed", "messages changed"]);
    expect(runSummary(original, original)).toEqual([]);
  });
});
