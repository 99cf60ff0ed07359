// A span as the API returned it, checked field by field before the detail view uses
// it. A record written by an older version, by hand or by another tool may hold any
// JSON in any field (a number where a string is expected, a list for an object): each
// field of the wrong type is replaced by "missing" and named in `problems`, so the view
// renders everything else and says what it could not read, instead of failing whole.

import type { JsonObject, JsonValue, SpanDetail, SpanStatus, Usage } from "./types";

export interface CheckedSpan {
  span: SpanDetail;
  /** "field: expected X, got Y", one per field that was replaced. */
  problems: string[];
}

const STRING_FIELDS = [
  "trace_id",
  "parent_span_id",
  "project_id",
  "thread_id",
  "run_id",
  "label",
  "operation",
  "method",
  "path",
  "provider",
  "request_model",
  "response_model",
  "start_time",
  "end_time",
  "input_preview",
  "output_text",
  "finish_reason",
] as const;

const NUMBER_FIELDS = ["http_status", "end_us", "duration_ms", "ttft_ms", "cost_usd"] as const;
const USAGE_FIELDS = ["prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"] as const;
const STATUSES: readonly string[] = ["ok", "error", "client_aborted", "interrupted"];

export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "list";
  return typeof value === "object" ? "object" : typeof value;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Check every field the detail view reads; `spanId` is the id asked for, used when
 * the record's own id is unusable. */
export function checkSpan(raw: unknown, spanId: string): CheckedSpan {
  const problems: string[] = [];
  const record: Record<string, unknown> = isPlainObject(raw) ? raw : {};
  if (!isPlainObject(raw)) problems.push(`record: expected object, got ${typeName(raw)}`);

  const text = (key: string): string | null => {
    const v = record[key];
    if (v === null || v === undefined) return null;
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") {
      problems.push(`${key}: expected text, got ${typeName(v)}`);
      return String(v);
    }
    problems.push(`${key}: expected text, got ${typeName(v)}`);
    return null;
  };
  const num = (key: string, v: unknown = record[key]): number | null => {
    if (v === null || v === undefined) return null;
    if (typeof v === "number" && Number.isFinite(v)) return v;
    problems.push(`${key}: expected number, got ${typeName(v)}`);
    return null;
  };
  const stringMap = (key: string): Record<string, string> | null => {
    const v = record[key];
    if (v === null || v === undefined) return null;
    if (!isPlainObject(v)) {
      problems.push(`${key}: expected object, got ${typeName(v)}`);
      return null;
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === "string" ? x : JSON.stringify(x)]));
  };

  const out: Record<string, unknown> = {};
  out.span_id = typeof record.span_id === "string" ? record.span_id : spanId;
  for (const key of STRING_FIELDS) out[key] = text(key);
  for (const key of NUMBER_FIELDS) out[key] = num(key);
  out.start_us = num("start_us") ?? 0;

  const status = record.status;
  if (typeof status === "string" && STATUSES.includes(status)) out.status = status as SpanStatus;
  else {
    problems.push(`status: expected one of ${STATUSES.join(", ")}, got ${JSON.stringify(status) ?? "nothing"}`);
    out.status = "error";
  }
  out.stream = typeof record.stream === "boolean" ? record.stream : null;

  const usage = record.usage;
  if (usage === null || usage === undefined) out.usage = null;
  else if (!isPlainObject(usage)) {
    problems.push(`usage: expected object, got ${typeName(usage)}`);
    out.usage = null;
  } else {
    const checked: Record<string, number | null> = {};
    for (const key of USAGE_FIELDS) checked[key] = num(`usage.${key}`, usage[key]);
    out.usage = checked as unknown as Usage;
  }

  // Tags are k=v pairs; fmtTags shows a list or an odd value as well, so keep what is there.
  out.tags = record.tags ?? null;
  if (out.tags !== null && !isPlainObject(out.tags)) problems.push(`tags: expected object, got ${typeName(out.tags)}`);

  for (const key of ["request", "response", "query", "error", "attributes", "links"] as const) {
    out[key] = (record[key] ?? null) as JsonValue;
  }
  const request = record.request;
  if (request !== null && request !== undefined && !isPlainObject(request)) {
    problems.push(`request: expected object, got ${typeName(request)}`);
  } else if (isPlainObject(request)) {
    for (const key of ["messages", "tools"]) {
      const v = request[key];
      if (v !== undefined && v !== null && !Array.isArray(v)) problems.push(`request.${key}: expected list, got ${typeName(v)}`);
    }
  }
  out.request_headers = stringMap("request_headers");
  out.response_headers = stringMap("response_headers");
  const otel = record.otel_attributes;
  out.otel_attributes = isPlainObject(otel) ? (otel as JsonObject) : null;

  return { span: out as unknown as SpanDetail, problems };
}
