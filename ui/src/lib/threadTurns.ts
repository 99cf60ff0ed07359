// A thread read as a conversation: each call is a turn; what the turn added is the
// messages sent after the last answer the request carries (the user's new message,
// tool results), then the model's answer. Apps resend the whole history with every
// call, so showing each request whole would repeat the conversation on every turn.

import { requestMessages, type DisplayMessage } from "./messages";
import type { JsonValue } from "./types";

const isAnswer = (m: DisplayMessage): boolean =>
  m.role === "assistant" || m.role === "model" || m.parts.some((p) => p.kind === "tool_call");

/** The messages a turn's request added to the conversation. The first turn shows its
 * whole request (system prompt included); later turns the messages after the last
 * answer, without a repeated system prompt. */
export function turnInput(request: JsonValue | undefined, first: boolean): DisplayMessage[] {
  const messages = requestMessages(request);
  if (first) return messages;
  let last = -1;
  messages.forEach((m, i) => {
    if (isAnswer(m)) last = i;
  });
  return messages.slice(last + 1).filter((m) => m.role !== "system" && m.role !== "developer");
}
