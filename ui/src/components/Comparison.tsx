// Original vs new output, side by side: text (optionally as a word diff), tool calls,
// finish reason, and the deltas of tokens, cost, latency and TTFT.

import { diffWords } from "diff";
import { useMemo, useState } from "react";
import { fmtCost, fmtDelta, fmtInt, fmtMs, DASH } from "../lib/format";
import { responseOutput, type Part } from "../lib/messages";
import { SECTIONS, type RequestChange } from "../lib/requestDiff";
import type { JsonValue, SpanDetail } from "../lib/types";
import { ErrorNote, StatusBadge } from "./common";

type ToolCall = Extract<Part, { kind: "tool_call" }>;

export interface Side {
  model: string | null;
  text: string;
  toolCalls: ToolCall[];
  finishReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  totalTokens: number | null;
  costUsd: number | null;
  latencyMs: number | null;
  ttftMs: number | null;
  status: string | null;
  error: JsonValue | null;
  streaming?: boolean;
  /** Output known, the stored span (usage, timings) not loaded yet. */
  pending?: boolean;
}

export function sideFromSpan(span: SpanDetail): Side {
  const output = responseOutput(span.response, span.output_text);
  return {
    model: span.response_model ?? span.request_model,
    text: output.text,
    toolCalls: output.toolCalls,
    finishReason: span.finish_reason,
    promptTokens: span.usage?.prompt_tokens ?? null,
    completionTokens: span.usage?.completion_tokens ?? null,
    totalTokens: span.usage?.total_tokens ?? null,
    costUsd: span.cost_usd,
    latencyMs: span.duration_ms,
    ttftMs: span.ttft_ms,
    status: span.status,
    error: span.error ?? null,
  };
}

export function emptySide(text = ""): Side {
  return {
    model: null,
    text,
    toolCalls: [],
    finishReason: null,
    promptTokens: null,
    completionTokens: null,
    totalTokens: null,
    costUsd: null,
    latencyMs: null,
    ttftMs: null,
    status: null,
    error: null,
  };
}

export interface MetricRow {
  name: string;
  original: string;
  result: string;
  delta: string;
  /** -1 better, 1 worse, 0 same or unknown (lower is better for every metric here). */
  trend: -1 | 0 | 1;
}

export function metricRows(a: Side, b: Side): MetricRow[] {
  const row = (name: string, x: number | null, y: number | null, fmt: (n: number | null) => string, fmtAbs: (n: number) => string): MetricRow => ({
    name,
    original: fmt(x),
    result: fmt(y),
    delta: fmtDelta(x, y, fmtAbs),
    trend: x === null || y === null || x === y ? 0 : y < x ? -1 : 1,
  });
  return [
    row("Prompt tokens", a.promptTokens, b.promptTokens, fmtInt, fmtInt),
    row("Completion tokens", a.completionTokens, b.completionTokens, fmtInt, fmtInt),
    row("Total tokens", a.totalTokens, b.totalTokens, fmtInt, fmtInt),
    row("Cost", a.costUsd, b.costUsd, fmtCost, fmtCost),
    row("Latency", a.latencyMs, b.latencyMs, fmtMs, fmtMs),
    row("TTFT", a.ttftMs, b.ttftMs, fmtMs, fmtMs),
  ];
}

function DiffText({ changes, side }: { changes: ReturnType<typeof diffWords>; side: "original" | "result" }) {
  return (
    <div className="output-text" data-testid={`diff-${side}`}>
      {changes.map((c, i) => {
        if (c.added) return side === "result" ? <ins key={i}>{c.value}</ins> : null;
        if (c.removed) return side === "original" ? <del key={i}>{c.value}</del> : null;
        return <span key={i}>{c.value}</span>;
      })}
    </div>
  );
}

function ToolCalls({ calls, other }: { calls: ToolCall[]; other: ToolCall[] }) {
  if (!calls.length) return null;
  return (
    <div className="tool-calls">
      {calls.map((call, i) => {
        const twin = other[i];
        const same = twin !== undefined && twin.name === call.name && twin.arguments === call.arguments;
        return (
          <div key={i} className="tool-call">
            <div className="tool-call-head">
              <span className="part-tag">tool call</span> <code>{call.name}</code>{" "}
              {other.length > 0 && <span className={`small ${same ? "muted" : "changed"}`}>{same ? "same" : "changed"}</span>}
            </div>
            <pre className="json">{call.arguments}</pre>
          </div>
        );
      })}
    </div>
  );
}

function Column({
  title,
  side,
  other,
  changes,
  which,
}: {
  title: string;
  side: Side | null;
  other: Side | null;
  changes: ReturnType<typeof diffWords> | null;
  which: "original" | "result";
}) {
  return (
    <div className={`compare-col compare-${which}`} data-testid={`compare-${which}`}>
      <header className="compare-head">
        <strong>{title}</strong> {side?.model && <span className="muted small">{side.model}</span>}{" "}
        {side?.status && <StatusBadge status={side.status} />}
        {side?.streaming && <span className="badge badge-info">streaming…</span>}
      </header>
      {side === null ? (
        <p className="muted">Not run yet. Edit the request and press Run.</p>
      ) : (
        <>
          {side.error !== null && side.error !== undefined && <ErrorNote error={side.error} />}
          {changes ? (
            <DiffText changes={changes} side={which} />
          ) : (
            <div className="output-text" data-testid={`output-${which}`}>
              {side.text ||
                (side.toolCalls.length ? "" : <span className="muted">{side.status === "running" ? "Waiting for the answer (not streamed)\u2026" : "(no text output)"}</span>)}
            </div>
          )}
          <ToolCalls calls={side.toolCalls} other={other?.toolCalls ?? []} />
          {side.finishReason && <div className="muted small">finish reason: {side.finishReason}</div>}
        </>
      )}
    </div>
  );
}

/** What changed in the request from side A to side B, by section; a text on both
 * sides (a prompt, a message) as a word diff. */
export function RequestChanges({ changes }: { changes: RequestChange[] }) {
  return (
    <section className="request-changes" data-testid="request-changes" aria-label="Request changes">
      <h4>What changed in the request</h4>
      {changes.length === 0 ? (
        <p className="muted small">Nothing: the same request was sent.</p>
      ) : (
        SECTIONS.filter((section) => changes.some((c) => c.section === section)).map((section) => (
          <div key={section} data-testid={`request-changes-${section}`}>
            <h5>{section === "system" ? "system prompt" : section}</h5>
            {changes
              .filter((c) => c.section === section)
              .map((c, i) => (
                <div key={i} className="request-change" data-testid="request-change">
                  <code>{c.label}</code>
                  <span className="change-values">
                    {c.before !== null && c.after !== null && (section === "system" || section === "messages") ? (
                      diffWords(c.before, c.after).map((part, j) =>
                        part.added ? <ins key={j}>{part.value}</ins> : part.removed ? <del key={j}>{part.value}</del> : <span key={j}>{part.value}</span>,
                      )
                    ) : (
                      <>
                        {c.before !== null && <del>{c.before}</del>}
                        {c.before !== null && c.after !== null && " \u2192 "}
                        {c.after !== null && <ins>{c.after}</ins>}
                      </>
                    )}{" "}
                    <span className="op">({c.op})</span>
                  </span>
                </div>
              ))}
          </div>
        ))
      )}
    </section>
  );
}

export function Comparison({
  original,
  result,
  titles = ["Original", "New"],
  requestChanges = null,
}: {
  original: Side | null;
  result: Side | null;
  /** The two sides' names: "Original" or a run's ("Run #2"), then the other. */
  titles?: [string, string];
  /** What changed in the request from A to B, shown above the outputs. */
  requestChanges?: RequestChange[] | null;
}) {
  const [showDiff, setShowDiff] = useState(false);
  const changes = useMemo(
    () => (showDiff && original && result ? diffWords(original.text, result.text) : null),
    [showDiff, original, result],
  );
  const rows = original && result && !result.streaming && !result.pending && result.status !== "running" ? metricRows(original, result) : null;
  return (
    <div className="comparison" data-testid="comparison">
      {requestChanges && <RequestChanges changes={requestChanges} />}
      <h4>What changed in the output</h4>
      <div className="compare-toolbar">
        <label className="toggle">
          <input
            type="checkbox"
            checked={showDiff}
            onChange={(e) => setShowDiff(e.target.checked)}
            disabled={!original || !result}
            data-testid="diff-toggle"
          />{" "}
          Word diff
        </label>
        {changes && (
          <span className="muted small">
            <del>removed</del> <ins>added</ins>
          </span>
        )}
      </div>
      <div className="compare-cols">
        <Column title={titles[0]} side={original} other={result} changes={changes} which="original" />
        <Column title={titles[1]} side={result} other={original} changes={changes} which="result" />
      </div>
      {result?.pending && <p className="muted small">Loading the new call's usage and timings…</p>}
      {rows && (
        <table className="metrics" data-testid="metrics">
          <thead>
            <tr>
              <th />
              <th className="num">{titles[0]}</th>
              <th className="num">{titles[1]}</th>
              <th className="num">Change</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.name}>
                <th scope="row">{r.name}</th>
                <td className="num">{r.original}</td>
                <td className="num">{r.result}</td>
                <td className={`num trend-${r.trend === -1 ? "down" : r.trend === 1 ? "up" : "flat"}`}>
                  {r.delta === DASH ? DASH : r.delta}
                </td>
              </tr>
            ))}
            <tr>
              <th scope="row">Finish reason</th>
              <td className="num">{original?.finishReason ?? DASH}</td>
              <td className="num">{result?.finishReason ?? DASH}</td>
              <td className="num">{original?.finishReason === result?.finishReason ? "same" : "changed"}</td>
            </tr>
          </tbody>
        </table>
      )}
    </div>
  );
}
