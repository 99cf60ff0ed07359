// Feedback and scores on the span detail: thumbs, a note, the span's scores (a run's
// scores show on its span) with delete, and a form to add one. A span that is an
// experiment run's result shares that run's feedback and scores.

import { useState } from "react";
import useSWR from "swr";
import { ApiError } from "../lib/api";
import {
  addScore,
  deleteScore,
  METRICS_PATH,
  parseValue,
  sendFeedback,
  toggledThumbs,
  type MetricDefinition,
  type SpanEvaluation,
} from "../lib/feedback";
import { fmtRelative } from "../lib/format";
import { ErrorNote } from "./common";
import { NoteField, ScoreChip, Thumbs } from "./CellRating";
import "../styles/feedback.css";

export function SpanFeedback({ spanId }: { spanId: string }) {
  const key = `/spans/${encodeURIComponent(spanId)}/evaluation`;
  const { data, error, mutate } = useSWR<SpanEvaluation>(key, { shouldRetryOnError: false });
  const metrics = useSWR<{ data: MetricDefinition[] }>(METRICS_PATH, { shouldRetryOnError: false });
  const [editing, setEditing] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  const [metricKey, setMetricKey] = useState("");
  const [value, setValue] = useState("");
  const [note, setNote] = useState("");
  const target = { span: spanId };

  if (error instanceof ApiError && error.noRoute) return <p className="muted small">Feedback is not available on this gateway.</p>;
  if (error) return <ErrorNote error={error} />;
  if (!data) return <p className="muted small">Loading…</p>;

  const run = async (work: () => Promise<unknown>) => {
    setFailure(null);
    try {
      await work();
      await mutate();
    } catch (err) {
      setFailure(err);
    }
  };
  const feedback = data.feedback;
  const kinds = new Map((metrics.data?.data ?? []).map((m) => [m.key, m.kind]));

  return (
    <div className="span-feedback" data-testid="span-feedback">
      {data.target.run_id && (
        <p className="muted small">
          This span is experiment run <code>{data.target.run_id}</code>: its feedback and scores are the run&apos;s.
        </p>
      )}
      <div className="cell-rating-row">
        <Thumbs
          thumbs={feedback?.thumbs_up ?? null}
          label="this span"
          onThumbs={(pressed) => void run(() => sendFeedback(target, { thumbsUp: toggledThumbs(feedback?.thumbs_up, pressed) }))}
        />
        {!editing && (
          <button type="button" className="btn btn-small" onClick={() => setEditing(true)}>
            {feedback?.note ? "Edit note" : "Add a note"}
          </button>
        )}
        {feedback && (
          <span className="muted small" data-testid="feedback-by">
            by {feedback.updated_by ?? feedback.created_by ?? "?"}, {fmtRelative(feedback.updated_at)}
          </span>
        )}
      </div>
      {editing ? (
        <NoteField
          initial={feedback?.note ?? ""}
          label="this span"
          onSave={(text) => {
            setEditing(false);
            void run(() => sendFeedback(target, { note: text }));
          }}
          onCancel={() => setEditing(false)}
        />
      ) : (
        feedback?.note && (
          <p className="rating-note" data-testid="span-note">
            {feedback.note}
          </p>
        )
      )}
      {data.scores.length > 0 ? (
        <ul className="plain-list span-scores" data-testid="span-scores">
          {data.scores.map((s) => (
            <li key={s.id}>
              <ScoreChip score={s} kind={kinds.get(s.metric_key)} />
              <button
                type="button"
                className="btn btn-small"
                aria-label={`Delete score ${s.metric_key}`}
                onClick={() => void run(() => deleteScore(s.id))}
              >
                {"\u2715"}
              </button>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted small">No scores yet.</p>
      )}
      <form
        className="score-form"
        data-testid="score-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (!metricKey.trim() || !value.trim()) return;
          void run(async () => {
            await addScore(target, { metricKey: metricKey.trim(), value: parseValue(value), ...(note ? { note } : {}) });
            setValue("");
            setNote("");
          });
        }}
      >
        <label>
          metric
          <input list="metric-keys" value={metricKey} required onChange={(e) => setMetricKey(e.target.value)} data-testid="score-metric" />
        </label>
        <datalist id="metric-keys">
          {(metrics.data?.data ?? []).map((m) => (
            <option key={m.id} value={m.key}>
              {m.name}
            </option>
          ))}
        </datalist>
        <label>
          value
          <input value={value} required onChange={(e) => setValue(e.target.value)} placeholder="0.8, true, a category" data-testid="score-value" />
        </label>
        <label>
          note
          <input value={note} onChange={(e) => setNote(e.target.value)} data-testid="score-note" />
        </label>
        <button type="submit" className="btn btn-small">
          Add score
        </button>
      </form>
      {failure !== null && <ErrorNote error={failure} />}
    </div>
  );
}
