// One thread as a conversation (/ui/threads?thread=ID): its calls oldest first, each
// a turn with what it added (the user's message, tool results), the model's answer
// and its own figures; the thread's totals as GET /threads gives them. Live: a call
// stored for this thread appears without a reload.

import { useCallback, useEffect, useRef, useState } from "react";
import useSWR, { useSWRConfig } from "swr";
import { ErrorNote, StatusBadge } from "../components/common";
import { Id, MessageList } from "../components/Messages";
import { DASH, fmtCost, fmtInt, fmtMs, fmtTime, fmtUs } from "../lib/format";
import { useLiveSpans } from "../lib/live";
import { responseOutput } from "../lib/messages";
import { Link } from "../lib/router";
import { checkSpan } from "../lib/spanShape";
import { turnInput } from "../lib/threadTurns";
import type { Page, SpanSummary, ThreadSummary } from "../lib/types";
import "../styles/detail.css";

/** The calls of a thread read at most; the conversation says when there are more. */
export const THREAD_CALLS = 200;
/** Turns whose full request and response are fetched at first; earlier ones on demand. */
const TURNS_SHOWN = 50;

/** A thread's row of GET /threads, with the fields newer gateways add (replays kept
 * apart from the thread's own calls); any of them may be missing. */
export type ThreadTotals = ThreadSummary & {
  replays?: number | null;
  replay_calls?: number | null;
};

/** The number of replays (experiment runs) the API reports for a thread, if it does. */
export function replayCount(t: ThreadTotals): number | null {
  const n = t.replays ?? t.replay_calls;
  return typeof n === "number" ? n : null;
}

export const threadsKey = (limit: number) => `/threads?limit=${limit}`;
/** The thread's own calls: replays made by experiments land in their original's thread
 * but are not turns of the conversation (GET /threads counts them apart, as `replays`). */
export const threadCallsKey = (threadId: string) =>
  `/spans?thread=${encodeURIComponent(threadId)}&exclude_origin=experiment&limit=${THREAD_CALLS}`;

/** Run `fn` at most once per `ms` for a burst of calls (the last one wins). */
export function useThrottled(fn: () => void, ms: number): () => void {
  const latest = useRef(fn);
  latest.current = fn;
  const timer = useRef<number | null>(null);
  useEffect(() => () => {
    if (timer.current !== null) window.clearTimeout(timer.current);
  }, []);
  return useCallback(() => {
    if (timer.current !== null) return;
    timer.current = window.setTimeout(() => {
      timer.current = null;
      latest.current();
    }, ms);
  }, [ms]);
}

function Turn({ summary, index, first }: { summary: SpanSummary; index: number; first: boolean }) {
  const { data: raw } = useSWR<unknown>(`/spans/${encodeURIComponent(summary.span_id)}`);
  const span = raw === undefined ? null : checkSpan(raw, summary.span_id).span;
  const usage = summary.usage;
  const model = summary.response_model ?? summary.request_model ?? DASH;
  const origin = (summary as SpanSummary & { origin?: unknown }).origin;
  const input = span ? turnInput(span.request, first) : null;
  const output = span ? responseOutput(span.response, span.output_text).messages : null;
  return (
    <li className="turn" data-testid="turn" data-span-id={summary.span_id}>
      <div className="turn-head">
        <span className="turn-no">Turn {index + 1}</span>
        <span>{fmtUs(summary.start_us)}</span>
        <span data-testid="turn-model">{model}</span>
        <StatusBadge status={typeof summary.status === "string" ? summary.status : "error"} />
        {typeof origin === "string" && origin !== "app" && <span className="badge badge-info">{origin}</span>}
        <span className="turn-figures">
          <span title={usage ? `${fmtInt(usage.prompt_tokens)} in / ${fmtInt(usage.completion_tokens)} out` : undefined}>
            <span className="muted">tokens</span> <b data-testid="turn-tokens">{fmtInt(usage?.total_tokens)}</b>
          </span>
          <span>
            <span className="muted">cost</span> <b data-testid="turn-cost">{fmtCost(summary.cost_usd)}</b>
          </span>
          <span>
            <span className="muted">latency</span> <b data-testid="turn-latency">{fmtMs(summary.duration_ms)}</b>
          </span>
        </span>
        <Link to={`/spans/${encodeURIComponent(summary.span_id)}`} data-testid="turn-link">
          span <Id value={summary.span_id} />
        </Link>
      </div>
      {input === null || output === null ? (
        // until the full record arrives: the list's preview and output text
        <div className="messages">
          {summary.input_preview && <div className="msg" data-role="user"><div className="part-text">{summary.input_preview}</div></div>}
          {summary.output_text && <div className="msg" data-role="assistant"><div className="part-text">{summary.output_text}</div></div>}
        </div>
      ) : (
        <>
          <MessageList messages={input} />
          <div data-testid="turn-output">
            <MessageList messages={output} />
          </div>
        </>
      )}
    </li>
  );
}

function Totals({ threadId }: { threadId: string }) {
  // The list page's first page is usually in the cache; a thread further back is
  // looked up in a longer list.
  const first = useSWR<{ data: ThreadTotals[] }>(threadsKey(50));
  const inFirst = first.data?.data.find((t) => t.thread_id === threadId);
  const longer = useSWR<{ data: ThreadTotals[] }>(first.data && !inFirst ? threadsKey(1000) : null);
  const t = inFirst ?? longer.data?.data.find((x) => x.thread_id === threadId) ?? null;
  const replays = t ? replayCount(t) : null;
  const note =
    replays !== null && replays > 0 ? (
      <span className="muted small" data-testid="replays-note">
        {fmtInt(replays)} replays (experiment runs) of this thread are counted apart and not shown as turns;{" "}
        <Link to={`/?thread=${encodeURIComponent(threadId)}`}>see them in Traces</Link>.
      </span>
    ) : null;
  const item = (label: string, value: string, id: string) => (
    <span>
      <span className="muted">{label}</span> <b data-testid={id}>{value}</b>
    </span>
  );
  return (
    <div className="thread-totals" data-testid="thread-totals">
      {item("calls", fmtInt(t?.calls), "total-calls")}
      {item("errors", fmtInt(t?.errors), "total-errors")}
      {item("tokens", fmtInt(t?.total_tokens), "total-tokens")}
      {item("cost", fmtCost(t?.cost_usd), "total-cost")}
      {item("replays", fmtInt(replays), "total-replays")}
      {item("first", fmtTime(t?.first_activity), "total-first")}
      {item("last", fmtTime(t?.last_activity), "total-last")}
      {note}
    </div>
  );
}

export function ThreadConversation({ threadId }: { threadId: string }) {
  const key = threadCallsKey(threadId);
  const { data, error } = useSWR<Page<SpanSummary>>(key);
  const { mutate } = useSWRConfig();
  const [showAll, setShowAll] = useState(false);
  const refresh = useThrottled(() => {
    void mutate(key);
    void mutate(threadsKey(50));
  }, 300);
  useLiveSpans({
    onSpan: (span) => {
      if (span.thread_id === threadId) refresh();
    },
    onResync: refresh,
  });

  const calls = data ? [...data.data].reverse() : []; // a conversation reads oldest first
  const hidden = showAll ? 0 : Math.max(calls.length - TURNS_SHOWN, 0);
  return (
    <div className="page thread-page" data-testid="thread-view">
      <nav className="crumbs">
        <Link to="/threads">Threads</Link> / <Id value={threadId} />
      </nav>
      <header className="thread-head">
        <h1>Thread</h1>
        <Link to={`/?thread=${encodeURIComponent(threadId)}`} className="btn btn-small">
          Show its calls in Traces
        </Link>
      </header>
      <Totals threadId={threadId} />
      <ErrorNote error={error} onRetry={() => void mutate(key)} />
      {!data && !error && <p className="muted">Loading…</p>}
      {data && calls.length === 0 && <p className="muted">No calls in this thread.</p>}
      {data?.next_cursor && (
        <p className="muted small">
          Showing the latest {fmtInt(THREAD_CALLS)} calls; <Link to={`/?thread=${encodeURIComponent(threadId)}`}>all of them are in Traces</Link>.
        </p>
      )}
      {hidden > 0 && (
        <button type="button" className="btn btn-small" onClick={() => setShowAll(true)}>
          Show {fmtInt(hidden)} earlier turns
        </button>
      )}
      <ol className="turns" data-testid="turns">
        {calls.slice(hidden).map((span, i) => (
          <Turn key={span.span_id} summary={span} index={hidden + i} first={hidden + i === 0 && !data?.next_cursor} />
        ))}
      </ol>
    </div>
  );
}
