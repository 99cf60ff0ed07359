import { describe, expect, it } from "vitest";
import { turnInput } from "./threadTurns";
import type { JsonObject, JsonValue } from "./types";

const texts = (request: Parameters<typeof turnInput>[0], first: boolean) =>
  turnInput(request, first).map((m) => `${m.role}:${m.parts.map((p) => (p.kind === "text" ? p.text : p.kind)).join("+")}`);

describe("turnInput", () => {
  const history: { messages: JsonValue[] } = {
    messages: [
      { role: "system", content: "Be brief" },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
      { role: "user", content: "Weather?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_abc", function: { name: "weather", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "call_abc", content: "sunny" },
    ] as JsonObject[],
  };

  it("shows the whole request on the first turn", () => {
    expect(texts({ messages: history.messages.slice(0, 2) }, true)).toEqual(["system:Be brief", "user:Hi"]);
  });

  it("shows only what came after the last answer on later turns", () => {
    expect(texts({ messages: history.messages.slice(0, 4) }, false)).toEqual(["user:Weather?"]);
    expect(texts(history, false)).toEqual(["tool:sunny"]);
  });

  it("drops a repeated system prompt of stateless calls and survives odd requests", () => {
    expect(texts({ messages: [{ role: "system", content: "S" }, { role: "user", content: "Q2" }] }, false)).toEqual(["user:Q2"]);
    expect(texts("a string", false)).toEqual([]);
    expect(texts({ messages: 3 }, false)).toEqual([]);
    expect(texts({ input: "responses input" }, false)).toEqual(["user:responses input"]);
  });
});
