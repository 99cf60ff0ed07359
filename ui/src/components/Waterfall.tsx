// The spans of a trace as a tree with timings: one row per span, indented by depth,
// its bar offset and sized by start and duration (GET /traces/{trace_id}).

import useSWR from "swr";
import { fmtMs } from "../lib/format";
import { Link, useLocation } from "../lib/router";
import { buildWaterfall } from "../lib/traceTree";
import type { SpanSummary } from "../lib/types";
import { ErrorNote } from "./common";
import "../styles/detail.css";

interface TraceAnswer {
  trace_id: string;
  spans: SpanSummary[];
}

const INDENT_PX = 14;

/** Where a span of the trace opens: in the drawer when the detail is a drawer (the
 * rest of the URL kept), else as a page. */
function useSpanHref(inDrawer: boolean): (spanId: string) => string {
  const { path, search } = useLocation();
  return (spanId) => {
    if (!inDrawer) return `/spans/${encodeURIComponent(spanId)}`;
    const next = new URLSearchParams(search);
    next.set("span", spanId);
    return `${path}?${next.toString()}`;
  };
}

export function TraceWaterfall({ traceId, currentSpanId, inDrawer }: { traceId: string; currentSpanId: string; inDrawer: boolean }) {
  const { data, error } = useSWR<TraceAnswer>(`/traces/${encodeURIComponent(traceId)}`);
  const hrefFor = useSpanHref(inDrawer);
  if (error) return <ErrorNote error={error} />;
  if (!data) return <p className="muted small">Loading trace…</p>;
  const spans = Array.isArray(data.spans) ? data.spans : [];
  const tree = buildWaterfall(spans);
  if (tree.rows.length < 2) return <p className="muted small">This call is the only span of its trace.</p>;
  return (
    <div className="waterfall" data-testid="waterfall" role="list" aria-label={`Trace ${traceId}, ${fmtMs(tree.totalMs)}`}>
      {tree.rows.map(({ span, depth, offset, width, orphan }) => {
        const current = span.span_id === currentSpanId;
        const name = `${span.operation ?? "call"} ${span.response_model ?? span.request_model ?? ""}`.trim();
        return (
          <div
            key={span.span_id}
            role="listitem"
            className={`wf-row${current ? " current" : ""}`}
            data-testid="waterfall-row"
            data-span-id={span.span_id}
            data-depth={depth}
            aria-current={current ? "true" : undefined}
            title={`starts ${fmtMs(offset * tree.totalMs)} into the trace, lasts ${fmtMs(span.duration_ms)}`}
          >
            <div className="wf-name" style={{ paddingLeft: depth * INDENT_PX }} title={orphan ? `parent ${span.parent_span_id} (not a call through the gateway)` : undefined}>
              {depth > 0 && (
                <span className="muted" aria-hidden="true">
                  {"\u2514 "}
                </span>
              )}
              {current ? <b>{name}</b> : <Link to={hrefFor(span.span_id)}>{name}</Link>}
            </div>
            <div className="wf-track" aria-hidden="true">
              <div
                className={`wf-bar${span.status === "ok" ? "" : " bad"}`}
                data-testid="waterfall-bar"
                style={{ left: `${(offset * 100).toFixed(3)}%`, width: `${(width * 100).toFixed(3)}%` }}
              />
            </div>
            <div className="wf-ms">{fmtMs(span.duration_ms)}</div>
          </div>
        );
      })}
    </div>
  );
}
