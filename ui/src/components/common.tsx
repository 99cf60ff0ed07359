import { useState, type ReactNode } from "react";
import { jsonText } from "../lib/messages";
import type { JsonValue } from "../lib/types";

export function StatusBadge({ status, title }: { status: string; title?: string }) {
  const tone =
    status === "ok" || status === "completed"
      ? "good"
      : status === "error" || status === "failed"
        ? "bad"
        : status === "running"
          ? "info"
          : status === "draft"
            ? "neutral"
            : "warn";
  return (
    <span className={`badge badge-${tone}`} title={title}>
      {status.replace("_", " ")}
    </span>
  );
}

/** JSON shown as text in a <pre>: never parsed as markup. */
export function JsonBlock({ value, label }: { value: JsonValue | undefined; label?: string }) {
  const text = value === undefined ? "" : jsonText(value);
  const [copied, setCopied] = useState(false);
  const copy = () => {
    void navigator.clipboard?.writeText(text).then(() => {
      setCopied(true);
      window.setTimeout(() => setCopied(false), 1200);
    });
  };
  return (
    <div className="json-block">
      <button type="button" className="btn-small copy" onClick={copy} aria-label={`Copy ${label ?? "JSON"}`}>
        {copied ? "Copied" : "Copy"}
      </button>
      <pre className="json" aria-label={label}>
        {text}
      </pre>
    </div>
  );
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="section">
      <header className="section-head">
        <h3>{title}</h3>
        {actions}
      </header>
      {children}
    </section>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : typeof error === "string" ? error : jsonText(error as JsonValue);
  return (
    <div className="error-note" role="alert">
      {message}
    </div>
  );
}

export function KeyValues({ rows }: { rows: [string, ReactNode][] }) {
  return (
    <dl className="kv">
      {rows.map(([k, v]) => (
        <div key={k} className="kv-row">
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}
