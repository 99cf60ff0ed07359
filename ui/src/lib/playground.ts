// The playground's pure logic: what a turn holds, how the server-sent events of
// POST /playground/complete fill each model's column, how a stored session reads back
// as turns, and how a captured span prefills a new session ("Open in playground").

import { isObject, jsonText, requestMessages } from "./messages";
import type { JsonValue, Usage } from "./types";

/** One model's finished answer, as the gateway gives it (`done` event, `outputs`). */
export interface PlaygroundOutput {
  index: number;
  model: string;
  output: string | null;
  latency_ms: number | null;
  ttft_ms: number | null;
  usage: Usage | null;
  cost_usd: number | null;
  span_id: string | null;
  trace_id: string | null;
  error: JsonValue;
}

export interface PlaygroundAnswer {
  model: string;
  /** The text so far (deltas appended as they arrive), then the final output. */
  content: string;
  done: boolean;
  figures: PlaygroundOutput | null;
  /** The model's own upstream error, as text. */
  error: string | null;
  spanId: string | null;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface PlaygroundTurn {
  /** The user's message of this turn. */
  prompt: string;
  /** Earlier messages sent with the first turn (from a span), shown before it. */
  context: ChatMessage[];
  answers: PlaygroundAnswer[];
  /** The whole request failed (refused, or the gateway's error event). */
  error: string | null;
}

export interface PlaygroundSessionMessage {
  id: string;
  seq: number;
  role: string;
  content: string | null;
  model: string | null;
  span_id: string | null;
}

export function emptyAnswer(model: string): PlaygroundAnswer {
  return { model, content: "", done: false, figures: null, error: null, spanId: null };
}

export function newTurn(prompt: string, models: string[], context: ChatMessage[] = []): PlaygroundTurn {
  return { prompt, context, answers: models.map(emptyAnswer), error: null };
}

/** An error value (a string, or `{"message"}`) as text. */
export function errorText(error: unknown): string | null {
  if (error === null || error === undefined) return null;
  if (typeof error === "string") return error;
  if (isObject(error)) {
    const inner = isObject(error.error) ? error.error : error;
    if (typeof inner.message === "string") return inner.message;
  }
  return jsonText(error);
}

function withAnswer(turn: PlaygroundTurn, index: number, change: (a: PlaygroundAnswer) => PlaygroundAnswer): PlaygroundTurn {
  if (!Number.isInteger(index) || index < 0) return turn;
  const answers = turn.answers.slice();
  while (answers.length <= index) answers.push(emptyAnswer(""));
  answers[index] = change(answers[index]!);
  return { ...turn, answers };
}

function finish(answer: PlaygroundAnswer, out: PlaygroundOutput): PlaygroundAnswer {
  const error = errorText(out.error);
  return {
    ...answer,
    model: out.model || answer.model,
    // the final output wins over the pieces (they are the same text when all arrived)
    content: typeof out.output === "string" ? out.output : answer.content,
    done: true,
    figures: out,
    error,
    spanId: out.span_id ?? null,
  };
}

/** One streamed event applied to the turn: returns the new turn (never mutates). */
export function applyEvent(turn: PlaygroundTurn, event: string, data: unknown): PlaygroundTurn {
  if (!isObject(data)) return turn;
  if (event === "start" && Array.isArray(data.models)) {
    let next = turn;
    for (const m of data.models) {
      if (isObject(m) && typeof m.index === "number" && typeof m.model === "string") {
        const model = m.model;
        next = withAnswer(next, m.index, (a) => ({ ...a, model }));
      }
    }
    return next;
  }
  if (event === "delta" && typeof data.index === "number") {
    const piece = typeof data.content === "string" ? data.content : "";
    return withAnswer(turn, data.index, (a) => (a.done ? a : { ...a, content: a.content + piece }));
  }
  if (event === "done" && typeof data.index === "number") {
    return withAnswer(turn, data.index, (a) => finish(a, data as unknown as PlaygroundOutput));
  }
  if (event === "end" && Array.isArray(data.outputs)) {
    let next = turn;
    for (const out of data.outputs) {
      if (isObject(out) && typeof out.index === "number") {
        next = withAnswer(next, out.index, (a) => finish(a, out as unknown as PlaygroundOutput));
      }
    }
    return next;
  }
  if (event === "error") return { ...turn, error: errorText(data) ?? "The gateway failed" };
  return turn;
}

/** The non-streamed answer applied at once (the same as its `end` event). */
export function applyAnswer(turn: PlaygroundTurn, answer: unknown): PlaygroundTurn {
  return applyEvent(turn, "end", answer);
}

/** A stored session's messages as turns, one column per model (in `models` order; a
 * model not in it gets a column of its own). */
export function sessionTurns(messages: PlaygroundSessionMessage[], models: string[]): { turns: PlaygroundTurn[]; models: string[] } {
  const columns = models.slice();
  const turns: PlaygroundTurn[] = [];
  const ordered = messages.slice().sort((a, b) => a.seq - b.seq);
  const context: ChatMessage[] = [];
  for (const m of ordered) {
    const text = m.content ?? "";
    if (m.role === "user") {
      turns.push(newTurn(text, columns, turns.length ? [] : context.splice(0)));
    } else if (m.role === "assistant" && turns.length) {
      const model = m.model ?? "";
      let index = columns.indexOf(model);
      if (index < 0) {
        columns.push(model);
        index = columns.length - 1;
      }
      const turn = turns[turns.length - 1]!;
      turns[turns.length - 1] = withAnswer(turn, index, (a) => ({ ...a, model, content: text, done: true, spanId: m.span_id }));
    } else if (m.role === "assistant" || m.role === "system") {
      context.push({ role: m.role, content: text });
    }
  }
  // every turn has a slot for every column (a column added later is empty before)
  return {
    models: columns,
    turns: turns.map((t) => ({
      ...t,
      answers: columns.map((model, i) => t.answers[i] ?? { ...emptyAnswer(model), done: true }),
    })),
  };
}

export interface SpanPrefill {
  model: string | null;
  system: string;
  /** The conversation before the last user message. */
  context: ChatMessage[];
  /** The last user message: the composer's text. */
  prompt: string;
  temperature: number | null;
  top_p: number | null;
  max_tokens: number | null;
}

function textOnly(parts: ReturnType<typeof requestMessages>[number]["parts"]): string {
  return parts
    .map((p) => (p.kind === "text" ? p.text : p.kind === "tool_result" ? p.text : ""))
    .filter(Boolean)
    .join("\n");
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** A captured call's messages and model, as a new playground session starts from them.
 * Only text travels (the playground takes text messages): tool calls and images are left
 * out, tool results become text. */
export function spanPrefill(span: { request: JsonValue; request_model: string | null }): SpanPrefill {
  const messages = requestMessages(span.request);
  const system: string[] = [];
  const conversation: ChatMessage[] = [];
  for (const m of messages) {
    const text = textOnly(m.parts);
    if (m.role === "system" || m.role === "developer") {
      if (text) system.push(text);
    } else if (m.role === "assistant") {
      if (text) conversation.push({ role: "assistant", content: text });
    } else if (text) {
      conversation.push({ role: "user", content: text });
    }
  }
  let prompt = "";
  const last = conversation[conversation.length - 1];
  if (last && last.role === "user") {
    prompt = last.content;
    conversation.pop();
  }
  const request = isObject(span.request) ? span.request : {};
  return {
    model: span.request_model ?? (typeof request.model === "string" ? request.model : null),
    system: system.join("\n\n"),
    context: conversation,
    prompt,
    temperature: num(request.temperature),
    top_p: num(request.top_p),
    max_tokens: num(request.max_tokens) ?? num(request.max_completion_tokens),
  };
}

export interface Params {
  temperature: string;
  top_p: string;
  max_tokens: string;
}

/** The parameters as the request sends them: unset ones left out; a bad one named. */
export function paramsBody(params: Params): { body: Record<string, number>; error: string | null } {
  const body: Record<string, number> = {};
  const checks: [keyof Params, number, number, boolean][] = [
    ["temperature", 0, 2, false],
    ["top_p", 0, 1, false],
    ["max_tokens", 1, 32768, true],
  ];
  for (const [name, min, max, integer] of checks) {
    const raw = params[name].trim();
    if (!raw) continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      return { body, error: `${name} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}` };
    }
    body[name] = value;
  }
  return { body, error: null };
}
