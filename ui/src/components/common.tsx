import { useState, type ReactNode } from "react";
import { ApiError, NetworkError } from "../lib/api";
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

/** The one way a page shows a failure. A NetworkError says plainly that the gateway
 * cannot be reached (never the browser's bare "Failed to fetch"); an ApiError shows the
 * gateway's own message and status; anything else its message. With `onRetry`, a
 * "Retry" button. */
export function ErrorNote({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  const retry = onRetry && (
    <button type="button" className="btn btn-small error-retry" onClick={onRetry}>
      Retry
    </button>
  );
  if (error instanceof NetworkError) {
    return (
      <div className="error-note unreachable" role="alert" data-testid="gateway-unreachable">
        <strong>The gateway is unreachable.</strong> Spanlab cannot connect to {window.location.host}: it may be stopped or
        restarting. Check that <code>spanlab serve</code> is running, then retry. {retry}
      </div>
    );
  }
  let message: string;
  let detail: string | null = null;
  if (error instanceof ApiError) {
    message = error.message;
    detail = [`HTTP ${error.status}`, error.type, error.code, error.param && `param ${error.param}`].filter(Boolean).join(" \u00b7 ");
  } else {
    message = error instanceof Error ? error.message : typeof error === "string" ? error : jsonText(error as JsonValue);
  }
  return (
    <div className="error-note" role="alert" data-testid="error-note">
      {message}
      {detail && <span className="error-detail small"> ({detail})</span>} {retry}
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
