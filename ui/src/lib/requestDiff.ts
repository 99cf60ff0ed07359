// What changed between two requests (the original call's and a run's, or two runs'),
// grouped the way a person reads a request: model, system prompt, parameters, tools,
// messages. Pure functions: the comparison panel and the run history render them.

import { jsonEqual, streams } from "./editor";
import { isObject } from "./messages";
import type { JsonObject, JsonValue } from "./types";

export type Section = "model" | "system" | "parameters" | "tools" | "messages";
export const SECTIONS: Section[] = ["model", "system", "parameters", "tools", "messages"];

export interface RequestChange {
  section: Section;
  /** What changed, e.g. "temperature", "message 2 (user)", "tool search". */
  label: string;
  op: "added" | "removed" | "changed";
  /** The values as text (strings as they are, anything else as compact JSON); null
   * on the side where it is absent. */
  before: string | null;
  after: string | null;
}

/** Top-level keys that are not parameters: the parts of the prompt and the model. */
const NOT_PARAMETERS = new Set(["model", "messages", "system", "instructions", "tools", "functions", "input", "prompt"]);
const SYSTEM_ROLES = new Set(["system", "developer"]);

export function valueText(value: JsonValue | undefined): string | null {
  if (value === undefined) return null;
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function textOf(content: JsonValue | undefined): string | null {
  if (content === undefined) return null;
  if (typeof content === "string") return content;
  if (Array.isArray(content) && content.every((p) => isObject(p) && typeof p.text === "string")) {
    return content.map((p) => (isObject(p) ? String(p.text) : "")).join("\n");
  }
  return valueText(content);
}

function messages(request: JsonObject): JsonObject[] {
  return Array.isArray(request.messages) ? request.messages.filter(isObject) : [];
}

/** The system prompt however the dialect carries it: Anthropic's `system`, the
 * Responses API's `instructions`, or an OpenAI chat's system/developer messages. */
export function systemPrompt(request: JsonObject): string | null {
  const parts: string[] = [];
  for (const key of ["system", "instructions"]) {
    const text = textOf(request[key]);
    if (text !== null) parts.push(text);
  }
  for (const m of messages(request)) {
    if (typeof m.role === "string" && SYSTEM_ROLES.has(m.role)) parts.push(textOf(m.content) ?? "");
  }
  return parts.length ? parts.join("\n\n") : null;
}

function change(section: Section, label: string, a: JsonValue | undefined, b: JsonValue | undefined, text = valueText): RequestChange | null {
  if (a === undefined && b === undefined) return null;
  if (a !== undefined && b !== undefined && jsonEqual(a, b)) return null;
  return { section, label, op: a === undefined ? "added" : b === undefined ? "removed" : "changed", before: text(a), after: text(b) };
}

function toolName(tool: JsonValue): string | null {
  if (!isObject(tool)) return null;
  if (typeof tool.name === "string") return tool.name; // Anthropic, Responses
  if (isObject(tool.function) && typeof tool.function.name === "string") return tool.function.name;
  return null;
}

function toolChanges(a: JsonValue | undefined, b: JsonValue | undefined): RequestChange[] {
  const listA = Array.isArray(a) ? a : [];
  const listB = Array.isArray(b) ? b : [];
  const key = (tool: JsonValue, i: number) => toolName(tool) ?? `#${i + 1}`;
  const mapA = new Map(listA.map((t, i) => [key(t, i), t] as const));
  const mapB = new Map(listB.map((t, i) => [key(t, i), t] as const));
  const out: RequestChange[] = [];
  for (const name of new Set([...mapA.keys(), ...mapB.keys()])) {
    const c = change("tools", `tool ${name}`, mapA.get(name), mapB.get(name), (v) => (v === undefined ? null : JSON.stringify(v, null, 2)));
    if (c) out.push(c);
  }
  return out;
}

function messageLabel(m: JsonObject | undefined, i: number): string {
  const role = m && typeof m.role === "string" ? m.role : "message";
  return `message ${i + 1} (${role})`;
}

/** Every difference from request `a` to request `b`, in section order. */
export function requestChanges(a: JsonObject, b: JsonObject): RequestChange[] {
  const out: RequestChange[] = [];
  const push = (c: RequestChange | null) => {
    if (c) out.push(c);
  };
  push(change("model", "model", a.model, b.model));
  const sysA = systemPrompt(a);
  const sysB = systemPrompt(b);
  push(change("system", "system prompt", sysA ?? undefined, sysB ?? undefined));
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !NOT_PARAMETERS.has(k)).sort();
  for (const key of keys) {
    if (key === "stream") {
      if (streams(a) !== streams(b)) out.push({ section: "parameters", label: "stream", op: "changed", before: String(streams(a)), after: String(streams(b)) });
      continue;
    }
    push(change("parameters", key, a[key], b[key]));
  }
  out.push(...toolChanges(a.tools ?? a.functions, b.tools ?? b.functions));
  // the conversation without its system messages (compared above), by position
  const convA = messages(a).filter((m) => !(typeof m.role === "string" && SYSTEM_ROLES.has(m.role)));
  const convB = messages(b).filter((m) => !(typeof m.role === "string" && SYSTEM_ROLES.has(m.role)));
  for (let i = 0; i < Math.max(convA.length, convB.length); i++) {
    const ma = convA[i];
    const mb = convB[i];
    if (ma && mb && jsonEqual(ma, mb)) continue;
    const label = messageLabel(mb ?? ma, i);
    const text = (m: JsonObject | undefined) => (m === undefined ? undefined : ((m.role !== (mb ?? ma)?.role ? `[${String(m.role)}] ` : "") + (textOf(m.content) ?? "") + (m.tool_calls !== undefined ? `\n${JSON.stringify(m.tool_calls)}` : "")));
    push(change("messages", label, text(ma), text(mb), (v) => (v === undefined ? null : String(v))));
  }
  for (const key of ["input", "prompt"]) push(change("messages", key, a[key], b[key]));
  return out;
}

/** A run's parameters as short chips, e.g. ["model gpt-4o", "temperature 1.3",
 * "stream"], and what else it changed ("system prompt changed"): what the run history
 * shows for each run against the original. */
export function runSummary(original: JsonObject, run: JsonObject): string[] {
  const chips: string[] = [];
  const changes = requestChanges(original, run);
  for (const c of changes) {
    if (c.section === "model" || c.section === "parameters") {
      if (c.label === "stream") chips.push(c.after === "true" ? "stream" : "no stream");
      else chips.push(c.op === "removed" ? `${c.label} unset` : `${c.label} ${truncateChip(c.after ?? "")}`);
    }
  }
  const sections = new Set(changes.map((c) => c.section));
  if (sections.has("system")) chips.push("system prompt changed");
  if (sections.has("tools")) chips.push("tools changed");
  if (sections.has("messages")) chips.push("messages changed");
  return chips;
}

function truncateChip(text: string): string {
  return text.length > 24 ? `${text.slice(0, 23)}\u2026` : text;
}
