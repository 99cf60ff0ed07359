// Turn the request and response of any supported API (OpenAI chat, completions and
// responses; Anthropic messages) into one list of role-tagged messages for display.
// Everything stays data: the renderer shows it as text.

import type { JsonObject, JsonValue } from "./types";

export type Part =
  | { kind: "text"; text: string }
  | { kind: "image"; url: string }
  | { kind: "tool_call"; id: string | null; name: string; arguments: string }
  | { kind: "tool_result"; id: string | null; text: string }
  | { kind: "reasoning"; text: string | null }
  | { kind: "other"; label: string; value: JsonValue };

export interface DisplayMessage {
  role: string;
  name?: string | null;
  toolCallId?: string | null;
  parts: Part[];
}

export const isObject = (v: unknown): v is JsonObject =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

export function jsonText(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Tool arguments arrive as a JSON string (OpenAI) or an object (Anthropic). */
function argumentsText(value: unknown): string {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return jsonText(value ?? {});
}

function partsOf(content: JsonValue | undefined): Part[] {
  if (content === undefined || content === null) return [];
  if (typeof content === "string") return [{ kind: "text", text: content }];
  if (!Array.isArray(content)) return [{ kind: "other", label: "content", value: content }];
  const parts: Part[] = [];
  for (const item of content) {
    if (typeof item === "string") {
      parts.push({ kind: "text", text: item });
      continue;
    }
    if (!isObject(item)) {
      parts.push({ kind: "other", label: "part", value: item });
      continue;
    }
    const type = str(item.type) ?? "";
    if (["text", "input_text", "output_text"].includes(type) && typeof item.text === "string") {
      parts.push({ kind: "text", text: item.text });
    } else if (type === "image_url") {
      const image = item.image_url;
      const url = isObject(image) ? str(image.url) : str(image);
      parts.push(url ? { kind: "image", url } : { kind: "other", label: type, value: item });
    } else if (type === "input_image") {
      const url = str(item.image_url);
      parts.push(url ? { kind: "image", url } : { kind: "other", label: type, value: item });
    } else if (type === "image" && isObject(item.source)) {
      const source = item.source;
      const url =
        str(source.url) ??
        (str(source.data) ? `data:${str(source.media_type) ?? "image"};base64,${str(source.data)}` : null);
      parts.push(url ? { kind: "image", url } : { kind: "other", label: type, value: item });
    } else if (type === "thinking" || type === "reasoning_text" || type === "summary_text") {
      parts.push({ kind: "reasoning", text: str(item.thinking) ?? str(item.text) });
    } else if (type === "redacted_thinking") {
      parts.push({ kind: "reasoning", text: null });
    } else if (type === "tool_use") {
      parts.push({
        kind: "tool_call",
        id: str(item.id),
        name: str(item.name) ?? "?",
        arguments: argumentsText(item.input),
      });
    } else if (type === "tool_result") {
      const inner = partsOf(item.content);
      const text = inner.map((p) => (p.kind === "text" ? p.text : jsonText(p))).join("\n");
      parts.push({ kind: "tool_result", id: str(item.tool_use_id), text });
    } else {
      parts.push({ kind: "other", label: type || "part", value: item });
    }
  }
  return parts;
}

function toolCallsOf(calls: JsonValue | undefined): Part[] {
  if (!Array.isArray(calls)) return [];
  return calls.filter(isObject).map((call) => {
    const fn = isObject(call.function) ? call.function : call;
    return {
      kind: "tool_call" as const,
      id: str(call.id),
      name: str(fn.name) ?? "?",
      arguments: argumentsText(fn.arguments),
    };
  });
}

function chatMessage(message: JsonValue): DisplayMessage {
  if (!isObject(message)) return { role: "unknown", parts: [{ kind: "other", label: "message", value: message }] };
  const role = str(message.role) ?? "unknown";
  const parts = [...partsOf(message.content), ...toolCallsOf(message.tool_calls)];
  if (isObject(message.function_call)) parts.push(...toolCallsOf([{ function: message.function_call }]));
  if (typeof message.refusal === "string") parts.push({ kind: "text", text: message.refusal });
  return {
    role,
    name: str(message.name),
    toolCallId: str(message.tool_call_id),
    parts,
  };
}

/** Responses API input/output items. */
function responseItems(items: JsonValue | undefined, defaultRole: string): DisplayMessage[] {
  if (typeof items === "string") return [{ role: defaultRole, parts: [{ kind: "text", text: items }] }];
  if (!Array.isArray(items)) return [];
  const out: DisplayMessage[] = [];
  for (const item of items) {
    if (!isObject(item)) continue;
    const type = str(item.type);
    if (type === "function_call") {
      out.push({
        role: "assistant",
        parts: [
          {
            kind: "tool_call",
            id: str(item.call_id) ?? str(item.id),
            name: str(item.name) ?? "?",
            arguments: argumentsText(item.arguments),
          },
        ],
      });
    } else if (type === "function_call_output") {
      out.push({
        role: "tool",
        toolCallId: str(item.call_id),
        parts: [{ kind: "tool_result", id: str(item.call_id), text: jsonText(item.output) }],
      });
    } else if (type === "message" || item.role !== undefined) {
      out.push({ role: str(item.role) ?? defaultRole, parts: partsOf(item.content) });
    } else if (type === "reasoning") {
      // the summary is the readable part; encrypted content is not shown
      const summary = Array.isArray(item.summary) ? item.summary : [];
      const texts = summary.filter(isObject).map((p) => str(p.text)).filter((t): t is string => t !== null);
      const content = Array.isArray(item.content) ? item.content.filter(isObject).map((p) => str(p.text)) : [];
      const all = [...texts, ...content.filter((t): t is string => t !== null)];
      out.push({ role: "reasoning", parts: [{ kind: "reasoning", text: all.length ? all.join("\n\n") : null }] });
    } else {
      out.push({ role: defaultRole, parts: [{ kind: "other", label: type ?? "item", value: item }] });
    }
  }
  return out;
}

/** The conversation sent: system prompt first, then the messages in order. */
export function requestMessages(request: JsonValue | undefined): DisplayMessage[] {
  if (!isObject(request)) return [];
  const out: DisplayMessage[] = [];
  if (request.system !== undefined && request.system !== null) {
    out.push({ role: "system", parts: partsOf(request.system) });
  }
  if (typeof request.instructions === "string") {
    out.push({ role: "system", parts: [{ kind: "text", text: request.instructions }] });
  }
  if (Array.isArray(request.messages)) out.push(...request.messages.map(chatMessage));
  if (request.input !== undefined) {
    if (typeof request.input === "string" || Array.isArray(request.input)) {
      const inputs = Array.isArray(request.input) ? request.input : [request.input];
      // embeddings take a list of strings; the responses API takes items
      if (inputs.every((i) => typeof i === "string") && !request.instructions && Array.isArray(request.input)) {
        out.push(...inputs.map((text) => ({ role: "input", parts: [{ kind: "text" as const, text: String(text) }] })));
      } else {
        out.push(...responseItems(request.input, "user"));
      }
    }
  }
  if (request.prompt !== undefined) {
    const prompts = Array.isArray(request.prompt) ? request.prompt : [request.prompt];
    out.push(...prompts.map((p) => ({ role: "prompt", parts: [{ kind: "text" as const, text: jsonText(p) }] })));
  }
  return out;
}

export interface Output {
  messages: DisplayMessage[];
  text: string;
  toolCalls: Extract<Part, { kind: "tool_call" }>[];
}

/** The model's answer, from the (assembled) response body, with the span's
 * output_text as the fallback. */
export function responseOutput(response: JsonValue | undefined, outputText?: string | null): Output {
  const messages: DisplayMessage[] = [];
  if (isObject(response)) {
    if (Array.isArray(response.choices)) {
      for (const choice of response.choices) {
        if (!isObject(choice)) continue;
        if (isObject(choice.message)) messages.push(chatMessage(choice.message));
        else if (typeof choice.text === "string")
          messages.push({ role: "assistant", parts: [{ kind: "text", text: choice.text }] });
      }
    } else if (response.type === "message" && Array.isArray(response.content)) {
      messages.push({ role: str(response.role) ?? "assistant", parts: partsOf(response.content) });
    } else if (Array.isArray(response.output)) {
      messages.push(...responseItems(response.output, "assistant"));
    }
  }
  if (!messages.length && outputText) {
    messages.push({ role: "assistant", parts: [{ kind: "text", text: outputText }] });
  }
  const parts = messages.flatMap((m) => m.parts);
  const text =
    outputText ??
    parts
      .filter((p): p is Extract<Part, { kind: "text" }> => p.kind === "text")
      .map((p) => p.text)
      .join("\n");
  const toolCalls = parts.filter((p): p is Extract<Part, { kind: "tool_call" }> => p.kind === "tool_call");
  return { messages, text, toolCalls };
}

/** Only http(s) URLs become links; anything else (javascript:, data:) stays text. */
export function safeHttpUrl(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** What an embeddings call carried: how many inputs, how many vectors came back and
 * their dimensions. The vectors themselves are never shown. */
export interface EmbeddingsSummary {
  inputs: number | null;
  inputKind: "text" | "tokens" | null;
  vectors: number | null;
  dimensions: number | null;
  requestedDimensions: number | null;
  encodingFormat: string | null;
}

function vectorLength(embedding: unknown): number | null {
  if (Array.isArray(embedding)) return embedding.length;
  // base64: little-endian float32s
  if (typeof embedding === "string") return Math.floor((Math.floor((embedding.replace(/=+$/, "").length * 3) / 4)) / 4);
  return null;
}

export function embeddingsSummary(request: JsonValue | undefined, response: JsonValue | undefined): EmbeddingsSummary {
  const out: EmbeddingsSummary = {
    inputs: null,
    inputKind: null,
    vectors: null,
    dimensions: null,
    requestedDimensions: null,
    encodingFormat: null,
  };
  if (isObject(request)) {
    const input = request.input;
    if (typeof input === "string") [out.inputs, out.inputKind] = [1, "text"];
    else if (Array.isArray(input)) {
      if (input.length && input.every((i) => typeof i === "number")) [out.inputs, out.inputKind] = [1, "tokens"];
      else [out.inputs, out.inputKind] = [input.length, input.some((i) => Array.isArray(i)) ? "tokens" : "text"];
    }
    if (typeof request.dimensions === "number") out.requestedDimensions = request.dimensions;
    out.encodingFormat = str(request.encoding_format);
  }
  if (isObject(response) && Array.isArray(response.data)) {
    const items = response.data.filter(isObject);
    out.vectors = items.length;
    const lengths = new Set(items.map((d) => vectorLength(d.embedding)).filter((n): n is number => n !== null));
    if (lengths.size) out.dimensions = Math.max(...lengths);
  }
  return out;
}

/** The model ids of a `GET /v1/models` answer (or the one model of `/v1/models/{id}`). */
export function modelIds(response: JsonValue | undefined): string[] | null {
  if (!isObject(response)) return null;
  if (Array.isArray(response.data)) {
    return response.data.map((m) => (isObject(m) ? (str(m.id) ?? jsonText(m)) : jsonText(m)));
  }
  return typeof response.id === "string" ? [response.id] : null;
}

/** A copy of a response with every embedding vector replaced by a short note, for the
 * raw view: thousands of floats help nobody and cost the browser. */
export function elideVectors(value: JsonValue | undefined): JsonValue | undefined {
  if (!isObject(value) || !Array.isArray(value.data)) return value;
  return {
    ...value,
    data: value.data.map((item) => {
      if (!isObject(item) || item.embedding === undefined) return item;
      const n = vectorLength(item.embedding);
      return { ...item, embedding: `[${n ?? "?"} values, not shown]` };
    }),
  };
}
