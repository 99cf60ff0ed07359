// The datasets page's pure logic: a chosen file as the JSON body of
// POST /datasets/{id}/import, an item's previews, and the Traces selection.

import { isObject, jsonText, requestMessages } from "./messages";
import type { JsonValue } from "./types";

export interface Dataset {
  id: string;
  project_id: string | null;
  name: string;
  description: string | null;
  version: number;
  item_count: number;
  created_at: string;
  updated_at: string;
}

export interface DatasetItem {
  id: string;
  dataset_id: string;
  key: string;
  operation: string | null;
  variables: Record<string, JsonValue> | null;
  request: JsonValue;
  expected_output: JsonValue;
  metadata: JsonValue;
  source_span_id: string | null;
  position: number;
  version: number;
}

export type ImportFormat = "jsonl" | "csv";

/** The format a file's name (else its type) says, or null when it says neither. */
export function formatOf(name: string, type = ""): ImportFormat | null {
  const lower = name.toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  if (lower.endsWith(".csv")) return "csv";
  if (type === "text/csv") return "csv";
  if (type === "application/x-ndjson" || type === "application/jsonl") return "jsonl";
  return null;
}

export interface ImportBody {
  content: string;
  format: ImportFormat;
  expected_column?: string;
}

/** A file's text as the import's JSON body (the gateway takes only JSON bodies). */
export function importBody(
  file: { name: string; type?: string; text: string },
  options: { format?: ImportFormat | ""; expectedColumn?: string } = {},
): { body: ImportBody | null; error: string | null } {
  const format = options.format || formatOf(file.name, file.type ?? "");
  if (!format) return { body: null, error: `Cannot tell the format of ${file.name}: choose JSONL or CSV` };
  if (!file.text.trim()) return { body: null, error: `${file.name} is empty` };
  // a byte-order mark some editors write would make the first key unreadable
  const content = file.text.charCodeAt(0) === 0xfeff ? file.text.slice(1) : file.text;
  const body: ImportBody = { content, format };
  const expected = options.expectedColumn?.trim();
  if (format === "csv" && expected) body.expected_column = expected;
  return { body, error: null };
}

/** What an item sends, in one line: its variables, or its request's last user message. */
export function inputPreview(item: Pick<DatasetItem, "variables" | "request">): string {
  if (isObject(item.variables)) {
    return Object.entries(item.variables)
      .map(([k, v]) => `${k}: ${typeof v === "string" ? v : jsonText(v)}`)
      .join(" \u00b7 ");
  }
  const messages = requestMessages(item.request);
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === "system") continue;
    const text = m.parts.map((p) => (p.kind === "text" ? p.text : "")).join(" ").trim();
    if (text) return text;
  }
  return item.request === null || item.request === undefined ? "" : jsonText(item.request);
}

/** The expected output in one line: text as is, tool calls by name. */
export function expectedPreview(expected: JsonValue): string {
  if (expected === null || expected === undefined) return "";
  if (typeof expected === "string") return expected;
  if (isObject(expected)) {
    const parts: string[] = [];
    if (typeof expected.content === "string" && expected.content) parts.push(expected.content);
    if (Array.isArray(expected.tool_calls)) {
      for (const call of expected.tool_calls) {
        if (isObject(call) && isObject(call.function) && typeof call.function.name === "string") {
          parts.push(`${call.function.name}(${typeof call.function.arguments === "string" ? call.function.arguments : ""})`);
        }
      }
    }
    if (parts.length) return parts.join(" ");
  }
  return jsonText(expected);
}

/** The selection with `id` toggled (a new set). */
export function toggled(selection: ReadonlySet<string>, id: string): Set<string> {
  const next = new Set(selection);
  if (next.has(id)) next.delete(id);
  else next.add(id);
  return next;
}

/** Select all of `ids` unless all are selected already, in which case clear them. */
export function toggledAll(selection: ReadonlySet<string>, ids: string[]): Set<string> {
  const next = new Set(selection);
  const all = ids.length > 0 && ids.every((id) => next.has(id));
  for (const id of ids) {
    if (all) next.delete(id);
    else next.add(id);
  }
  return next;
}
