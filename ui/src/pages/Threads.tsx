import { useState } from "react";
import useSWR from "swr";
import { ErrorNote, StatusBadge } from "../components/common";
import { fmtCost, fmtInt, fmtMs, fmtTime, fmtUs, truncate } from "../lib/format";
import { Link, navigate } from "../lib/router";
import type { Page, SpanSummary, ThreadSummary } from "../lib/types";

function ThreadCalls({ threadId }: { threadId: string }) {
  const { data, error } = useSWR<Page<SpanSummary>>(`/spans?thread=${encodeURIComponent(threadId)}&limit=100`);
  if (error) return <ErrorNote error={error} />;
  if (!data) return <div className="muted small">Loading…</div>;
  const calls = [...data.data].reverse(); // a conversation reads oldest first
  return (
    <ol className="thread-calls">
      {calls.map((span) => (
        <li key={span.span_id}>
          <Link to={`/?thread=${encodeURIComponent(threadId)}&span=${encodeURIComponent(span.span_id)}`}>
            {fmtUs(span.start_us)}
          </Link>{" "}
          <StatusBadge status={span.status} /> <span className="muted">{span.response_model ?? span.request_model}</span>{" "}
          {fmtMs(span.duration_ms)} · {truncate(span.input_preview ?? "", 100)}
        </li>
      ))}
      {data.next_cursor && (
        <li>
          <Link to={`/?thread=${encodeURIComponent(threadId)}`}>All calls of this thread…</Link>
        </li>
      )}
    </ol>
  );
}

export function ThreadsPage() {
  const [limit, setLimit] = useState(50);
  const { data, error, isLoading, mutate } = useSWR<{ data: ThreadSummary[] }>(`/threads?limit=${limit}`);
  const [open, setOpen] = useState<string | null>(null);
  const threads = data?.data ?? [];
  return (
    <div className="page">
      <header className="page-head">
        <h1>Threads</h1>
        <div className="segmented" role="tablist" aria-label="View">
          <Link to="/" className="seg" role="tab" aria-selected="false">
            Calls
          </Link>
          <Link to="/threads" className="seg active" role="tab" aria-selected="true">
            Threads
          </Link>
        </div>
      </header>
      <p className="muted small">
        Calls sent with an <code>x-thread-id</code> header, grouped by thread, most recent activity first.
      </p>
      <ErrorNote error={error} onRetry={() => void mutate()} />
      <div className="table-wrap">
        <table className="spans-table">
          <thead>
            <tr>
              <th>Thread</th>
              <th className="num">Calls</th>
              <th className="num">Errors</th>
              <th className="num">Tokens</th>
              <th className="num">Cost</th>
              <th>Models</th>
              <th>First call</th>
              <th>Last call</th>
            </tr>
          </thead>
          <tbody>
            {threads.flatMap((t) => {
              const rows = [
                <tr key={t.thread_id} onClick={() => setOpen(open === t.thread_id ? null : t.thread_id)} aria-expanded={open === t.thread_id}>
                  <td>
                    <span className="caret" aria-hidden="true">
                      {open === t.thread_id ? "\u25be" : "\u25b8"}
                    </span>{" "}
                    <code>{t.thread_id}</code>
                  </td>
                  <td className="num">{fmtInt(t.calls)}</td>
                  <td className="num">{fmtInt(t.errors)}</td>
                  <td className="num">{fmtInt(t.total_tokens)}</td>
                  <td className="num">{fmtCost(t.cost_usd)}</td>
                  <td>{t.models.length ? t.models.join(", ") : "\u2013"}</td>
                  <td className="nowrap">{fmtTime(t.first_activity)}</td>
                  <td className="nowrap">
                    {fmtTime(t.last_activity)}{" "}
                    <button
                      type="button"
                      className="btn btn-small"
                      onClick={(e) => {
                        e.stopPropagation();
                        navigate(`/?thread=${encodeURIComponent(t.thread_id)}`);
                      }}
                    >
                      Filter traces
                    </button>
                  </td>
                </tr>,
              ];
              if (open === t.thread_id) {
                rows.push(
                  <tr key={`${t.thread_id}-calls`} className="expanded">
                    <td colSpan={8}>
                      <ThreadCalls threadId={t.thread_id} />
                    </td>
                  </tr>,
                );
              }
              return rows;
            })}
          </tbody>
        </table>
        {!isLoading && threads.length === 0 && !error && (
          <div className="empty">
            <p>
              No threads yet. Send <code>x-thread-id: &lt;id&gt;</code> with your calls to group them.
            </p>
          </div>
        )}
        {threads.length >= limit && (
          <div className="list-foot">
            <button type="button" className="btn" onClick={() => setLimit(limit + 50)}>
              Show more threads
            </button>
          </div>
        )}
      </div>
    </div>
  );
}
