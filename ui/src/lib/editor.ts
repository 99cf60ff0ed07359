// The experiment editor's state. The request being edited is the one source of truth:
// the visual editor is a view over it (each edit is a pure function returning a new
// request), and JSON mode shows the same object as text. Switching modes therefore
// keeps every edit, and keys the visual editor does not know are carried unchanged.

import { locateJsonError } from "./jsonError";
import { isObject } from "./messages";
import type { JsonObject, JsonValue } from "./types";

export type RequestFormat = "chat" | "anthropic" | "responses" | "other";

export function requestFormat(request: JsonObject, operation?: string | null): RequestFormat {
  if (operation === "messages") return "anthropic";
  if (operation === "responses") return "responses";
  if (operation === "chat") return "chat";
  if (Array.isArray(request.messages)) {
    return request.system !== undefined || request.anthropic_version !== undefined ? "anthropic" : "chat";
  }
  if (request.input !== undefined && operation !== "embeddings") return "responses";
  return "other";
}

export const CHAT_ROLES = ["system", "developer", "user", "assistant", "tool"] as const;
export const ANTHROPIC_ROLES = ["user", "assistant"] as const;

export interface ParamSpec {
  name: string;
  kind: "number" | "integer" | "string" | "json";
  min?: number;
  max?: number;
  step?: number;
  hint: string;
  /** The request formats (dialects) whose API takes this parameter. */
  formats: readonly RequestFormat[];
}

const ALL: readonly RequestFormat[] = ["chat", "anthropic", "responses", "other"];
const OPENAI_SAMPLING: readonly RequestFormat[] = ["chat", "other"];

/** Parameters with their own input in the visual editor, each offered only in the
 * dialects that take it (an OpenAI chat call has no top_k; Anthropic's temperature
 * stops at 1; the Responses API limits output with max_output_tokens). */
export const PARAMS: ParamSpec[] = [
  { name: "temperature", kind: "number", min: 0, max: 2, step: 0.1, hint: "0 to 2", formats: ["chat", "responses", "other"] },
  { name: "temperature", kind: "number", min: 0, max: 1, step: 0.05, hint: "0 to 1", formats: ["anthropic"] },
  { name: "max_tokens", kind: "integer", min: 1, hint: "output token limit", formats: ["chat", "anthropic", "other"] },
  { name: "max_output_tokens", kind: "integer", min: 1, hint: "output token limit", formats: ["responses"] },
  { name: "top_p", kind: "number", min: 0, max: 1, step: 0.05, hint: "0 to 1", formats: ALL },
  { name: "top_k", kind: "integer", min: 1, hint: "sample from the top k", formats: ["anthropic"] },
  { name: "max_completion_tokens", kind: "integer", min: 1, hint: "incl. reasoning", formats: ["chat"] },
  { name: "presence_penalty", kind: "number", min: -2, max: 2, step: 0.1, hint: "-2 to 2", formats: OPENAI_SAMPLING },
  { name: "frequency_penalty", kind: "number", min: -2, max: 2, step: 0.1, hint: "-2 to 2", formats: OPENAI_SAMPLING },
  { name: "seed", kind: "integer", hint: "integer", formats: OPENAI_SAMPLING },
  { name: "n", kind: "integer", min: 1, hint: "choices", formats: OPENAI_SAMPLING },
  { name: "reasoning_effort", kind: "string", hint: "low / medium / high", formats: ["chat"] },
  { name: "reasoning", kind: "json", hint: '{"effort": "low"}', formats: ["responses"] },
  { name: "stop", kind: "json", hint: 'string or ["…"]', formats: OPENAI_SAMPLING },
  { name: "stop_sequences", kind: "json", hint: '["…"]', formats: ["anthropic"] },
  { name: "response_format", kind: "json", hint: '{"type": "json_object"}', formats: ["chat"] },
  { name: "tool_choice", kind: "json", hint: '"auto" or {…}', formats: ["chat", "anthropic", "responses"] },
];

/** The parameters offered for a request format, in display order. */
export function paramsFor(format: RequestFormat): ParamSpec[] {
  return PARAMS.filter((p) => p.formats.includes(format));
}

/** Keys edited by dedicated controls (so not listed as "other parameters"); `stream`
 * has its own toggle on the page. */
const STRUCTURAL = new Set(["model", "messages", "system", "tools", "input", "instructions", "stream"]);
const PARAM_NAMES = new Set(PARAMS.map((p) => p.name));

/** Keys with no control of their own for this format: a parameter of another dialect
 * (top_k on an OpenAI call) is listed here, editable and removable, never hidden. */
export function otherKeys(request: JsonObject, format?: RequestFormat): string[] {
  const offered = format ? new Set(paramsFor(format).map((p) => p.name)) : PARAM_NAMES;
  return Object.keys(request).filter((k) => !STRUCTURAL.has(k) && !offered.has(k));
}

/** Whether the request streams (its own `stream` field, as the API reads it). */
export function streams(request: JsonObject): boolean {
  return request.stream === true;
}

/** Turn streaming on or off; off drops `stream_options`, which only goes with a stream. */
export function setStream(request: JsonObject, on: boolean): JsonObject {
  if (on) return setKey(request, "stream", true);
  return setKey(setKey(request, "stream", undefined), "stream_options", undefined);
}

// --- generic edits ---------------------------------------------------------------------

/** Set a top-level key; undefined removes it. Key order is kept for existing keys. */
export function setKey(request: JsonObject, key: string, value: JsonValue | undefined): JsonObject {
  const next: JsonObject = { ...request };
  if (value === undefined) delete next[key];
  else next[key] = value;
  return next;
}

/** A parameter typed into an input: "" removes it, numbers are parsed per the spec.
 * Returns an error message instead when the text is not a valid value. */
export function parseParam(spec: ParamSpec, text: string): { value: JsonValue | undefined } | { error: string } {
  const trimmed = text.trim();
  if (trimmed === "") return { value: undefined };
  switch (spec.kind) {
    case "number":
    case "integer": {
      const n = Number(trimmed);
      if (!Number.isFinite(n)) return { error: `${spec.name} must be a number` };
      if (spec.kind === "integer" && !Number.isInteger(n)) return { error: `${spec.name} must be a whole number` };
      if (spec.min !== undefined && n < spec.min) return { error: `${spec.name} must be at least ${spec.min}` };
      if (spec.max !== undefined && n > spec.max) return { error: `${spec.name} must be at most ${spec.max}` };
      return { value: n };
    }
    case "string":
      return { value: trimmed };
    case "json":
      try {
        return { value: JSON.parse(trimmed) as JsonValue };
      } catch {
        // a bare word for stop / tool_choice is a string
        return { value: trimmed };
      }
  }
}

export function paramText(value: JsonValue | undefined): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

// --- messages -----------------------------------------------------------------------

export function messagesOf(request: JsonObject): JsonObject[] {
  return Array.isArray(request.messages) ? request.messages.filter(isObject) : [];
}

function withMessages(request: JsonObject, messages: JsonObject[]): JsonObject {
  return setKey(request, "messages", messages);
}

export function updateMessage(request: JsonObject, index: number, patch: JsonObject): JsonObject {
  const messages = messagesOf(request).map((m, i) => {
    if (i !== index) return m;
    const next: JsonObject = { ...m };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null && k !== "content") delete next[k];
      else next[k] = v;
    }
    return next;
  });
  return withMessages(request, messages);
}

export function setRole(request: JsonObject, index: number, role: string): JsonObject {
  const message = messagesOf(request)[index];
  if (!message) return request;
  const patch: JsonObject = { role };
  // a tool message needs the id it answers; other roles do not carry one
  if (role === "tool" && message.tool_call_id === undefined) patch.tool_call_id = "";
  if (role !== "tool" && message.tool_call_id !== undefined) patch.tool_call_id = null;
  if (role !== "assistant" && message.tool_calls !== undefined) patch.tool_calls = null;
  return updateMessage(request, index, patch);
}

/** Add a message: a system (or developer) message goes at the top, after any that are
 * there already, where a system prompt belongs; any other role at the end. */
export function addMessage(request: JsonObject, role: string, content = ""): JsonObject {
  const messages = messagesOf(request);
  if (role === "system" || role === "developer") {
    let at = 0;
    while (at < messages.length && (messages[at]!.role === "system" || messages[at]!.role === "developer")) at += 1;
    return withMessages(request, [...messages.slice(0, at), { role, content }, ...messages.slice(at)]);
  }
  return withMessages(request, [...messages, { role, content }]);
}

export function removeMessage(request: JsonObject, index: number): JsonObject {
  return withMessages(
    request,
    messagesOf(request).filter((_, i) => i !== index),
  );
}

export function moveMessage(request: JsonObject, index: number, delta: number): JsonObject {
  const messages = [...messagesOf(request)];
  const target = index + delta;
  if (target < 0 || target >= messages.length) return request;
  const [moved] = messages.splice(index, 1);
  messages.splice(target, 0, moved!);
  return withMessages(request, messages);
}

/** Replace one element of an array-shaped content. */
export function updateContentPart(
  request: JsonObject,
  messageIndex: number,
  partIndex: number,
  part: JsonValue | undefined,
): JsonObject {
  const message = messagesOf(request)[messageIndex];
  if (!message || !Array.isArray(message.content)) return request;
  const content = [...message.content];
  if (part === undefined) content.splice(partIndex, 1);
  else content[partIndex] = part;
  return updateMessage(request, messageIndex, { content });
}

export function updateToolCall(
  request: JsonObject,
  messageIndex: number,
  callIndex: number,
  change: { name?: string; arguments?: string },
): JsonObject {
  const message = messagesOf(request)[messageIndex];
  if (!message || !Array.isArray(message.tool_calls)) return request;
  const calls = message.tool_calls.map((call, i) => {
    if (i !== callIndex || !isObject(call)) return call;
    const fn = isObject(call.function) ? { ...call.function } : {};
    if (change.name !== undefined) fn.name = change.name;
    if (change.arguments !== undefined) fn.arguments = change.arguments;
    return { ...call, function: fn };
  });
  return updateMessage(request, messageIndex, { tool_calls: calls });
}

/** The text of a system prompt given as a string or as text blocks (Anthropic). */
export function systemText(request: JsonObject): string | null {
  const system = request.system;
  if (typeof system === "string") return system;
  if (Array.isArray(system)) {
    return system
      .map((b) => (isObject(b) && typeof b.text === "string" ? b.text : ""))
      .join("\n");
  }
  return null;
}

export function setSystem(request: JsonObject, text: string | null): JsonObject {
  if (text === null) return setKey(request, "system", undefined);
  const system = request.system;
  if (Array.isArray(system) && system.length === 1 && isObject(system[0])) {
    return setKey(request, "system", [{ ...system[0], text }]);
  }
  return setKey(request, "system", text);
}

// --- JSON mode ----------------------------------------------------------------------

export function toJsonText(request: JsonObject): string {
  return JSON.stringify(request, null, 2);
}

export type ParseResult =
  | { ok: true; value: JsonObject }
  | { ok: false; error: string; line: number | null; column: number | null };

/** Validate JSON-mode text as a request: valid JSON, an object, sane core fields. */
export function parseRequestJson(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const where = locateJsonError(text);
    if (!where) return { ok: false, error: `Invalid JSON: ${err instanceof Error ? err.message : String(err)}`, line: null, column: null };
    return { ok: false, error: `Invalid JSON: ${where.message} (line ${where.line}, column ${where.column})`, line: where.line, column: where.column };
  }
  if (!isObject(value)) {
    return { ok: false, error: "The request must be a JSON object.", line: 1, column: 1 };
  }
  if (value.model !== undefined && typeof value.model !== "string") {
    return { ok: false, error: '"model" must be a string.', line: null, column: null };
  }
  if (value.messages !== undefined) {
    if (!Array.isArray(value.messages)) {
      return { ok: false, error: '"messages" must be an array.', line: null, column: null };
    }
    const bad = value.messages.findIndex((m) => !isObject(m) || typeof m.role !== "string");
    if (bad >= 0) {
      return { ok: false, error: `messages[${bad}] must be an object with a "role".`, line: null, column: null };
    }
  }
  if (value.tools !== undefined && !Array.isArray(value.tools)) {
    return { ok: false, error: '"tools" must be an array.', line: null, column: null };
  }
  return { ok: true, value };
}

/** The visual editor's tools box: a JSON array, or empty for none. */
export function parseTools(text: string): { value: JsonValue[] | undefined } | { error: string } {
  if (!text.trim()) return { value: undefined };
  try {
    const value = JSON.parse(text) as JsonValue;
    if (!Array.isArray(value)) return { error: "Tools must be a JSON array." };
    return { value };
  } catch (err) {
    return { error: `Invalid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
}

// --- Mustache variables -----------------------------------------------------------

// {{name}}, {{{name}}}, {{& name}}, {{#section}}, {{^inverted}}; not comments ({{! }}),
// partials ({{> }}), closing tags or the implicit iterator ({{.}}).
const TAG = /\{\{(\{?)\s*([#^&]?)\s*([A-Za-z_][\w.-]*)\s*\}?\}\}/g;

function* strings(value: JsonValue): Generator<string> {
  if (typeof value === "string") yield value;
  else if (Array.isArray(value)) for (const v of value) yield* strings(v);
  else if (isObject(value)) for (const v of Object.values(value)) yield* strings(v);
}

/** Variable names used in the request's prompts, in order of first use. */
export function detectVariables(request: JsonObject): string[] {
  const found: string[] = [];
  const scan = (value: JsonValue | undefined) => {
    if (value === undefined) return;
    for (const text of strings(value)) {
      for (const match of text.matchAll(TAG)) {
        const name = match[3]!;
        if (!found.includes(name)) found.push(name);
      }
    }
  };
  // prompts only: a template in a tool schema or a parameter is not a prompt variable
  scan(request.system);
  scan(request.instructions);
  scan(request.messages);
  scan(request.input);
  scan(request.prompt);
  return found;
}

/** Values for exactly the detected variables: known values kept, new ones empty. */
export function reconcileVariables(
  names: string[],
  values: Record<string, string> | null | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) out[name] = values?.[name] ?? "";
  return out;
}

/** The parameters part of a request, stored as the experiment's model_parameters. */
export function modelParameters(request: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const name of PARAM_NAMES) {
    const value = request[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Deep equality for JSON values (key order ignored). */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return false;
}
