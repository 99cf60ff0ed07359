import { useState } from "react";
import useSWR, { useSWRConfig } from "swr";
import { ErrorNote } from "../components/common";
import { Id } from "../components/Messages";
import { fmtCost, fmtInt, fmtTime } from "../lib/format";
import { useLiveSpans } from "../lib/live";
import { Link, navigate, useLocation } from "../lib/router";
import { replayCount, ThreadConversation, threadsKey, useThrottled, type ThreadTotals } from "./Thread";
import "../styles/detail.css";

const threadHref = (id: string) => `/threads?thread=${encodeURIComponent(id)}`;

function ThreadList() {
  const [limit, setLimit] = useState(50);
  const key = threadsKey(limit);
  const { data, error, isLoading } = useSWR<{ data: ThreadTotals[] }>(key);
  const { mutate } = useSWRConfig();
  // Live, as Traces: a stored call of any thread refreshes the totals. GET /threads
  // groups the whole table, so a busy gateway costs at most one such query a second.
  const refresh = useThrottled(() => void mutate(key), 1000);
  useLiveSpans({
    onSpan: (span) => {
      if (span.thread_id) refresh();
    },
    onResync: refresh,
  });
  const threads = Array.isArray(data?.data) ? data.data : [];
  const withReplays = threads.some((t) => replayCount(t) !== null);
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
        Calls sent with an <code>x-thread-id</code> header, grouped by thread, most recent activity first. Open a thread to read
        it as a conversation.
      </p>
      <ErrorNote error={error} onRetry={() => void mutate(key)} />
      <div className="table-wrap">
        <table className="spans-table threads-table" data-testid="threads-table">
          <thead>
            <tr>
              <th>Thread</th>
              <th className="num">Calls</th>
              <th className="num">Errors</th>
              <th className="num">Tokens</th>
              <th className="num">Cost</th>
              {withReplays && <th className="num">Replays</th>}
              <th>Models</th>
              <th>First call</th>
              <th>Last call</th>
            </tr>
          </thead>
          <tbody>
            {threads.map((t) => (
              <tr key={t.thread_id} data-testid="thread-row" data-thread-id={t.thread_id} onClick={() => navigate(threadHref(t.thread_id))}>
                <td>
                  {/* the link is the keyboard's way in; the whole row takes a click */}
                  <Link to={threadHref(t.thread_id)} onClick={(e) => e.stopPropagation()}>
                    <Id value={String(t.thread_id)} />
                  </Link>
                </td>
                <td className="num" data-testid="thread-calls">{fmtInt(t.calls)}</td>
                <td className="num">{fmtInt(t.errors)}</td>
                <td className="num" data-testid="thread-tokens">{fmtInt(t.total_tokens)}</td>
                <td className="num">{fmtCost(t.cost_usd)}</td>
                {withReplays && <td className="num">{fmtInt(replayCount(t))}</td>}
                <td>{Array.isArray(t.models) && t.models.length ? t.models.join(", ") : "\u2013"}</td>
                <td className="nowrap">{fmtTime(t.first_activity)}</td>
                <td className="nowrap">{fmtTime(t.last_activity)}</td>
              </tr>
            ))}
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

/** /threads lists threads; /threads?thread=ID opens one as a conversation (a URL that
 * survives a reload and can be shared). */
export function ThreadsPage() {
  const { search } = useLocation();
  const open = search.get("thread");
  return open ? <ThreadConversation key={open} threadId={open} /> : <ThreadList />;
}
