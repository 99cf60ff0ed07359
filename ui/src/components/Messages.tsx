// Messages rendered by role. All content is text in React elements: no markup from a
// trace is ever interpreted, links are http(s) only and images are never loaded.

import { safeHttpUrl, jsonText, type DisplayMessage, type Part } from "../lib/messages";

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
      return <div className="part-text">{part.text}</div>;
    case "image":
      return <ImageLink url={part.url} />;
    case "tool_call":
      return (
        <div className="tool-call">
          <div className="tool-call-head">
            <span className="part-tag">tool call</span> <code>{part.name}</code>
            {part.id && <span className="muted small"> {part.id}</span>}
          </div>
          <pre className="json">{part.arguments}</pre>
        </div>
      );
    case "tool_result":
      return (
        <div className="tool-result">
          <div className="tool-call-head">
            <span className="part-tag">tool result</span>
            {part.id && <span className="muted small"> {part.id}</span>}
          </div>
          <div className="part-text">{part.text}</div>
        </div>
      );
    case "other":
      return (
        <div className="part-other">
          <span className="part-tag">{part.label}</span>
          <pre className="json">{jsonText(part.value)}</pre>
        </div>
      );
  }
}

export function MessageView({ message }: { message: DisplayMessage }) {
  return (
    <div className={`msg role-${message.role.replace(/[^a-z_]/gi, "")}`} data-role={message.role}>
      <div className="msg-role">
        {message.role}
        {message.name && <span className="muted"> · {message.name}</span>}
        {message.toolCallId && <span className="muted small"> · answers {message.toolCallId}</span>}
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
  if (!messages.length) return <p className="muted">No messages.</p>;
  return (
    <div className="messages">
      {messages.map((m, i) => (
        <MessageView key={i} message={m} />
      ))}
    </div>
  );
}
