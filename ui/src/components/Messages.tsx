// Messages rendered by role. All content is text in React elements: no markup from a
// trace is ever interpreted, links are http(s) only and images are never loaded.

import { useState } from "react";
import { fmtInt } from "../lib/format";
import { safeHttpUrl, jsonText, type DisplayMessage, type Part } from "../lib/messages";
import "../styles/detail.css";

/** Text longer than this (characters or lines) is shown cut, with a "Show all" button. */
export const LONG_TEXT_CHARS = 1500;
export const LONG_TEXT_LINES = 24;
/** More messages than this: the first ones are shown, with a "Show all" button. */
export const MANY_MESSAGES = 30;

function cutPoint(text: string): number | null {
  let end = text.length > LONG_TEXT_CHARS ? LONG_TEXT_CHARS : -1;
  let lines = 0;
  for (let i = 0; i < text.length && (end < 0 || i < end); i++) {
    if (text.charCodeAt(i) === 10 && ++lines >= LONG_TEXT_LINES) {
      end = i;
      break;
    }
  }
  return end < 0 ? null : end;
}

/** Text that may be very long: cut, with a real button (so the keyboard reaches it)
 * to show all of it and to show less again. */
export function LongText({ text, className, pre }: { text: string; className?: string; pre?: boolean }) {
  const [all, setAll] = useState(false);
  const cut = cutPoint(text);
  const shown = cut === null || all ? text : `${text.slice(0, cut)}\u2026`;
  const body = pre ? <pre className={className}>{shown}</pre> : <div className={className}>{shown}</div>;
  if (cut === null) return body;
  return (
    <div className="long-text" data-testid="long-text">
      {body}
      <button type="button" className="btn btn-small show-all" aria-expanded={all} onClick={() => setAll(!all)}>
        {all ? "Show less" : `Show all (${fmtInt(text.length)} characters)`}
      </button>
    </div>
  );
}

/** An identifier exactly as recorded: never case-transformed by the surrounding style. */
export function Id({ value, className }: { value: string; className?: string }) {
  return <code className={`id-text ${className ?? ""}`.trim()}>{value}</code>;
}

function ImageLink({ url }: { url: string }) {
  const safe = safeHttpUrl(url);
  if (safe) {
    return (
      <div className="part-image">
        <span className="part-tag">image</span>{" "}
        <a href={safe} target="_blank" rel="noopener noreferrer nofollow">
          {safe}
        </a>
      </div>
    );
  }
  const inline = /^data:([^;,]+)[;,]/.exec(url);
  const label = inline ? `inline ${inline[1]} (${Math.round((url.length * 3) / 4 / 1024)} KB, not shown)` : url;
  return (
    <div className="part-image">
      <span className="part-tag">image</span> <span className="muted">{label}</span>
    </div>
  );
}

export function PartView({ part }: { part: Part }) {
  switch (part.kind) {
    case "text":
      return <LongText text={part.text} className="part-text" />;
    case "image":
      return <ImageLink url={part.url} />;
    case "tool_call":
      return (
        <div className="tool-call">
          <div className="tool-call-head">
            <span className="part-tag">tool call</span> <code>{part.name}</code>
            {part.id && (
              <>
                {" "}
                <Id value={part.id} className="muted small" />
              </>
            )}
          </div>
          <LongText text={part.arguments} className="json" pre />
        </div>
      );
    case "tool_result":
      return (
        <div className="tool-result">
          <div className="tool-call-head">
            <span className="part-tag">tool result</span>
            {part.id && (
              <>
                {" "}
                <Id value={part.id} className="muted small" />
              </>
            )}
          </div>
          <LongText text={part.text} className="part-text" />
        </div>
      );
    case "reasoning":
      return (
        <div className="part-reasoning">
          <span className="part-tag">reasoning</span>{" "}
          {part.text === null ? <span className="muted small">(encrypted or redacted, not shown)</span> : <LongText text={part.text} className="part-text" />}
        </div>
      );
    case "other":
      return (
        <div className="part-other">
          <span className="part-tag">{part.label}</span>
          <LongText text={jsonText(part.value)} className="json" pre />
        </div>
      );
  }
}

export function MessageView({ message }: { message: DisplayMessage }) {
  return (
    <div className={`msg role-${message.role.replace(/[^a-z_]/gi, "")}`} data-role={message.role}>
      <div className="msg-role">
        {message.role}
        {message.name && <span className="muted id-text"> · {message.name}</span>}
        {message.toolCallId && (
          <span className="muted small">
            {" "}
            · answers <Id value={message.toolCallId} />
          </span>
        )}
      </div>
      {message.parts.length === 0 ? (
        <div className="muted small">(empty)</div>
      ) : (
        message.parts.map((part, i) => <PartView key={i} part={part} />)
      )}
    </div>
  );
}

export function MessageList({ messages }: { messages: DisplayMessage[] }) {
  const [all, setAll] = useState(false);
  if (!messages.length) return <p className="muted">No messages.</p>;
  const shown = all || messages.length <= MANY_MESSAGES ? messages : messages.slice(0, MANY_MESSAGES);
  return (
    <div className="messages">
      {shown.map((m, i) => (
        <MessageView key={i} message={m} />
      ))}
      {messages.length > MANY_MESSAGES && (
        <button type="button" className="btn btn-small show-all" aria-expanded={all} onClick={() => setAll(!all)}>
          {all ? "Show fewer" : `Show all ${fmtInt(messages.length)} messages`}
        </button>
      )}
    </div>
  );
}
