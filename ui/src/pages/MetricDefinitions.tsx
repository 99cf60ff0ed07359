// The metric definitions page: every metric of the project (key, kind, which way is
// better, range or categories), a form to define one, edit in place, and delete (a
// metric with scores asks again: deleting it deletes them).

import { useState } from "react";
import useSWR from "swr";
import { ErrorNote } from "../components/common";
import { ApiError, sendJson } from "../lib/api";
import { metricBody, metricForm, metricPath, metricShape, METRICS_PATH, type MetricDefinition, type MetricForm } from "../lib/feedback";
import { fmtRelative } from "../lib/format";
import "../styles/feedback.css";

function MetricFields({ form, setForm, creating }: { form: MetricForm; setForm: (f: MetricForm) => void; creating: boolean }) {
  const set = (field: keyof MetricForm) => (e: { target: { value: string } }) => setForm({ ...form, [field]: e.target.value });
  return (
    <div className="metric-fields">
      {creating && (
        <label>
          key
          <input value={form.key} onChange={set("key")} required placeholder="correctness" data-testid="metric-key" />
        </label>
      )}
      <label>
        name
        <input value={form.name} onChange={set("name")} placeholder="(the key)" data-testid="metric-name" />
      </label>
      <label>
        kind
        <select value={form.kind} onChange={set("kind")} data-testid="metric-kind">
          <option value="numeric">numeric</option>
          <option value="boolean">boolean</option>
          <option value="categorical">categorical</option>
        </select>
      </label>
      <label>
        better
        <select value={form.direction} onChange={set("direction")} data-testid="metric-direction">
          <option value="higher">higher</option>
          <option value="lower">lower</option>
        </select>
      </label>
      {form.kind === "numeric" && (
        <>
          <label>
            min
            <input value={form.min} onChange={set("min")} inputMode="decimal" data-testid="metric-min" />
          </label>
          <label>
            max
            <input value={form.max} onChange={set("max")} inputMode="decimal" data-testid="metric-max" />
          </label>
        </>
      )}
      {form.kind === "categorical" && (
        <label className="metric-wide">
          categories (worst to best, commas)
          <input value={form.categories} onChange={set("categories")} required data-testid="metric-categories" />
        </label>
      )}
      <label>
        scale
        <input value={form.scale} onChange={set("scale")} placeholder="e.g. 1-5" />
      </label>
      <label className="metric-wide">
        description
        <input value={form.description} onChange={set("description")} />
      </label>
    </div>
  );
}

function CreateMetric({ onDone }: { onDone: () => void }) {
  const [form, setForm] = useState(metricForm());
  const [error, setError] = useState<unknown>(null);
  return (
    <form
      className="metric-form"
      aria-label="New metric"
      onSubmit={(e) => {
        e.preventDefault();
        setError(null);
        sendJson("POST", METRICS_PATH, metricBody(form, true))
          .then(() => {
            setForm(metricForm());
            onDone();
          })
          .catch(setError);
      }}
    >
      <h2 className="h3">Define a metric</h2>
      <MetricFields form={form} setForm={setForm} creating />
      <button type="submit" className="btn btn-primary" data-testid="metric-create">
        Create metric
      </button>
      {error !== null && <ErrorNote error={error} />}
    </form>
  );
}

function MetricRow({ metric, onChanged }: { metric: MetricDefinition; onChanged: () => void }) {
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState(metricForm(metric));
  const [error, setError] = useState<unknown>(null);
  const [confirm, setConfirm] = useState<"edit" | "delete" | null>(null);

  const save = (force: boolean) => {
    setError(null);
    sendJson("PATCH", metricPath(metric.key, { force: force || null }), metricBody(form, false))
      .then(() => {
        setEditing(false);
        setConfirm(null);
        onChanged();
      })
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 409) setConfirm("edit");
        setError(err);
      });
  };
  const remove = (force: boolean) => {
    setError(null);
    sendJson("DELETE", metricPath(metric.key, { force: force || null }))
      .then(onChanged)
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 409) setConfirm("delete");
        setError(err);
      });
  };

  return (
    <li className="metric-item" data-testid="metric-row" data-key={metric.key}>
      <div className="metric-summary">
        <div>
          <code>{metric.key}</code> <strong>{metric.name}</strong>
          <div className="muted small">
            {metric.kind} · {metric.direction} is better · {metricShape(metric)}
            {metric.scale ? ` · scale ${metric.scale}` : ""} · updated {fmtRelative(metric.updated_at)}
          </div>
          {metric.description && <div className="small">{metric.description}</div>}
        </div>
        <div className="metric-actions">
          <button type="button" className="btn btn-small" aria-expanded={editing} onClick={() => setEditing(!editing)}>
            {editing ? "Close" : "Edit"}
          </button>
          <button type="button" className="btn btn-small" onClick={() => remove(false)} aria-label={`Delete metric ${metric.key}`}>
            Delete
          </button>
        </div>
      </div>
      {editing && (
        <form
          className="metric-form"
          aria-label={`Edit ${metric.key}`}
          onSubmit={(e) => {
            e.preventDefault();
            save(false);
          }}
        >
          <MetricFields form={form} setForm={setForm} creating={false} />
          <button type="submit" className="btn btn-primary">
            Save
          </button>
        </form>
      )}
      {error !== null && <ErrorNote error={error} />}
      {confirm && (
        <div className="metric-confirm" role="alert">
          <button type="button" className="btn btn-small btn-danger" onClick={() => (confirm === "delete" ? remove(true) : save(true))}>
            {confirm === "delete" ? "Delete it and its scores" : "Change it anyway"}
          </button>
          <button type="button" className="btn btn-small" onClick={() => setConfirm(null)}>
            Keep it
          </button>
        </div>
      )}
    </li>
  );
}

export default function MetricDefinitionsPage() {
  const { data, error, mutate } = useSWR<{ data: MetricDefinition[] }>(METRICS_PATH, { shouldRetryOnError: false });
  return (
    <div className="page metrics-page" data-testid="metrics-page">
      <header className="page-head">
        <h1>Metrics</h1>
      </header>
      <p className="muted small">
        What a score under each key means. A score under a key not defined here creates it (numeric, or boolean from a true/false value).
      </p>
      <CreateMetric onDone={() => void mutate()} />
      {error ? (
        <ErrorNote error={error} />
      ) : !data ? (
        <p className="muted">Loading…</p>
      ) : data.data.length === 0 ? (
        <p className="muted">No metrics yet.</p>
      ) : (
        <ul className="plain-list metric-list" data-testid="metric-list">
          {data.data.map((m) => (
            <MetricRow key={`${m.id}:${m.updated_at}`} metric={m} onChanged={() => void mutate()} />
          ))}
        </ul>
      )}
    </div>
  );
}
