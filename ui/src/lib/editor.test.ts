import { describe, expect, it } from "vitest";
import {
  addMessage,
  detectVariables,
  jsonEqual,
  messagesOf,
  modelParameters,
  moveMessage,
  otherKeys,
  parseParam,
  parseRequestJson,
  PARAMS,
  reconcileVariables,
  removeMessage,
  requestFormat,
  setKey,
  setRole,
  setSystem,
  systemText,
  toJsonText,
  updateContentPart,
  updateMessage,
  updateToolCall,
} from "./editor";
import type { JsonObject } from "./types";

const spec = (name: string) => PARAMS.find((p) => p.name === name)!;

const captured: JsonObject = {
  model: "gpt-4o-mini",
  temperature: 0.7,
  stream: true,
  stream_options: { include_usage: true },
  metadata: { team: "search", nested: [1, 2, { deep: null }] },
  messages: [
    { role: "system", content: "You are {{persona}}." },
    { role: "user", content: [{ type: "text", text: "Hello {{ name }}" }, { type: "image_url", image_url: { url: "https://x/y.png" } }] },
    {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q": "x"}' } }],
    },
    { role: "tool", tool_call_id: "call_1", content: "42" },
  ],
  tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string", description: "{{not_a_variable}}" } } } } }],
};

describe("visual <-> JSON round trip", () => {
  it("JSON text of an untouched request parses back to the same request", () => {
    const parsed = parseRequestJson(toJsonText(captured));
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(parsed.value).toEqual(captured);
  });

  it("keeps visual edits and every unknown key through JSON and back", () => {
    let r = setKey(captured, "temperature", 1.5);
    r = updateMessage(r, 0, { content: "You are terse." });
    r = addMessage(r, "user", "Follow-up?");
    r = moveMessage(r, 4, -1);
    r = setKey(r, "max_tokens", 64);
    const parsed = parseRequestJson(toJsonText(r));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value).toEqual(r);
    expect(parsed.value.metadata).toEqual(captured.metadata);
    expect(parsed.value.stream_options).toEqual({ include_usage: true });
    expect(messagesOf(parsed.value).map((m) => m.role)).toEqual(["system", "user", "assistant", "user", "tool"]);
    expect(parsed.value.temperature).toBe(1.5);
    // the original is never mutated
    expect(captured.temperature).toBe(0.7);
    expect(messagesOf(captured)).toHaveLength(4);
  });

  it("edits made as JSON are what the visual editor then shows", () => {
    const text = toJsonText(captured).replace('"temperature": 0.7', '"temperature": 0.1');
    const parsed = parseRequestJson(text);
    expect(parsed.ok && parsed.value.temperature).toBe(0.1);
  });

  it("reports invalid JSON with a position instead of losing the text", () => {
    const result = parseRequestJson('{\n  "model": "x",\n  "messages": [,]\n}');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatch(/Invalid JSON/);
    expect(result.line).toBe(3);
  });

  it("rejects requests of the wrong shape with a clear message", () => {
    expect(parseRequestJson("[1, 2]")).toMatchObject({ ok: false, error: "The request must be a JSON object." });
    expect(parseRequestJson('{"messages": {}}')).toMatchObject({ ok: false, error: '"messages" must be an array.' });
    expect(parseRequestJson('{"messages": [{"content": "x"}]}')).toMatchObject({ ok: false, error: 'messages[0] must be an object with a "role".' });
    expect(parseRequestJson('{"model": 3}')).toMatchObject({ ok: false });
    expect(parseRequestJson('{"tools": "x"}')).toMatchObject({ ok: false });
  });
});

describe("message edits", () => {
  it("removes and reorders, ignoring moves past either end", () => {
    const r = removeMessage(captured, 1);
    expect(messagesOf(r).map((m) => m.role)).toEqual(["system", "assistant", "tool"]);
    expect(moveMessage(captured, 0, -1)).toBe(captured);
    expect(moveMessage(captured, 3, 1)).toBe(captured);
  });

  it("changing a role keeps the message valid for its new role", () => {
    const toUser = setRole(captured, 3, "user");
    expect(messagesOf(toUser)[3]).toEqual({ role: "user", content: "42" });
    const toTool = setRole(captured, 1, "tool");
    expect(messagesOf(toTool)[1]!.tool_call_id).toBe("");
    const assistantToUser = setRole(captured, 2, "user");
    expect(messagesOf(assistantToUser)[2]!.tool_calls).toBeUndefined();
  });

  it("edits content parts and tool calls in place", () => {
    const r = updateContentPart(captured, 1, 0, { type: "text", text: "Bye" });
    expect(messagesOf(r)[1]!.content).toEqual([{ type: "text", text: "Bye" }, { type: "image_url", image_url: { url: "https://x/y.png" } }]);
    const t = updateToolCall(captured, 2, 0, { arguments: '{"q": "y"}' });
    expect(messagesOf(t)[2]!.tool_calls).toEqual([{ id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q": "y"}' } }]);
  });

  it("edits an Anthropic system prompt given as text blocks", () => {
    const anthropic: JsonObject = { model: "claude", system: [{ type: "text", text: "Be kind", cache_control: { type: "ephemeral" } }], messages: [] };
    expect(requestFormat(anthropic, "messages")).toBe("anthropic");
    expect(systemText(anthropic)).toBe("Be kind");
    const r = setSystem(anthropic, "Be brief");
    expect(r.system).toEqual([{ type: "text", text: "Be brief", cache_control: { type: "ephemeral" } }]);
  });
});

describe("parameters", () => {
  it("parses, validates and removes parameters typed as text", () => {
    expect(parseParam(spec("temperature"), "1.3")).toEqual({ value: 1.3 });
    expect(parseParam(spec("temperature"), "")).toEqual({ value: undefined });
    expect(parseParam(spec("temperature"), "3")).toEqual({ error: "temperature must be at most 2" });
    expect(parseParam(spec("temperature"), "warm")).toEqual({ error: "temperature must be a number" });
    expect(parseParam(spec("max_tokens"), "1.5")).toEqual({ error: "max_tokens must be a whole number" });
    expect(parseParam(spec("stop"), '["\\n", "END"]')).toEqual({ value: ["\n", "END"] });
    expect(parseParam(spec("tool_choice"), "auto")).toEqual({ value: "auto" });
  });

  it("lists unknown keys as other parameters and extracts model parameters", () => {
    expect(otherKeys(captured).sort()).toEqual(["metadata", "stream_options"]); // stream has its own toggle
    expect(modelParameters(setKey(captured, "max_tokens", 10))).toEqual({ temperature: 0.7, max_tokens: 10 });
  });
});

describe("Mustache variables", () => {
  it("finds variables in prompts only, in order, once each", () => {
    expect(detectVariables(captured)).toEqual(["persona", "name"]);
  });

  it("understands sections, raw tags, and skips comments, partials and closers", () => {
    const r: JsonObject = {
      messages: [
        { role: "user", content: "{{#items}}- {{title}}{{/items}} {{^empty}}x{{/empty}} {{{raw_html}}} {{& amp}} {{! note }} {{> part}} {{.}} {{title}}" },
      ],
    };
    expect(detectVariables(r)).toEqual(["items", "title", "empty", "raw_html", "amp"]);
  });

  it("keeps known values and drops values of variables no longer used", () => {
    expect(reconcileVariables(["a", "b"], { a: "1", gone: "2" })).toEqual({ a: "1", b: "" });
  });
});

describe("jsonEqual", () => {
  it("ignores key order but not values", () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true);
    expect(jsonEqual({ a: 1 }, { a: 2 })).toBe(false);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
  });
});

describe("locating JSON errors", async () => {
  const { locateJsonError } = await import("./jsonError");
  it("agrees with JSON.parse and points at the first bad character", () => {
    const cases: [string, number | null][] = [
      ['{"a": [1, 2, {"b": null}], "c": "x\\u00e9\\n", "d": -1.5e3, "e": true}', null],
      ["[,]", 1],
      ['{"a" 1}', 5],
      ['{"a": 1,}', 8],
      ['{"a": "b', 8],
      ["{'a': 1}", 1],
      ["[1] x", 4],
      ["", 0],
      ['{"a": 01}', 7],
    ];
    for (const [text, offset] of cases) {
      const where = locateJsonError(text);
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      expect(where === null, text).toBe(valid);
      expect(where?.offset ?? null, text).toBe(offset);
    }
  });

  it("gives line and column", () => {
    expect(locateJsonError('{\n  "model": "x",\n  "messages": [,]\n}')).toMatchObject({ line: 3, column: 16 });
  });
});
