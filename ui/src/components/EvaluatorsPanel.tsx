// The evaluators of a matrix experiment: list, add (a type picker and its params form;
// the LLM judge's rubric editable, starting from a template), edit, enable/disable,
// delete, and "Re-run evaluators" over the existing results with its progress (the
// gateway runs it in the background: GET .../evaluate is polled while it runs).

import { useState } from "react";
import useSWR from "swr";
import { sendJson } from "../lib/api";
import {
  JUDGE,
  formValues,
  isEvaluating,
  paramsBody,
  paramsSummary,
  type EvaluationProgress,
  type Evaluator,
  type EvaluatorParam,
  type EvaluatorTypeInfo,
  type EvaluatorTypes,
  type ParamValues,
} from "../lib/evaluators";
import { fmtInt } from "../lib/format";
import type { JsonObject } from "../lib/types";
import { ErrorNote } from "./common";
import "../styles/evaluators.css";

function ParamField({
  param,
  value,
  rubrics,
  onChange,
}: {
  param: EvaluatorParam;
  value: string | boolean;
  rubrics: EvaluatorTypes["rubrics"];
  onChange: (value: string | boolean) => void;
}) {
  const label = `Evaluator ${param.name}`;
  const title = param.description + (param.required ? " (required)" : "");
  if (param.kind === "boolean") {
    return (
      <label className="evaluators-check" title={title}>
        <input type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} aria-label={label} />
        <span>{param.name}</span>
      </label>
    );
  }
  const text = typeof value === "string" ? value : "";
  if (param.kind === "choice") {
    return (
      <label title={title}>
        <span>{param.name}</span>
        <select value={text} onChange={(e) => onChange(e.target.value)} aria-label={label}>
          {(param.choices ?? []).map((c) => (
            <option key={c} value={c}>
              {param.name === "template" ? (rubrics.find((r) => r.name === c)?.label ?? c) : c}
            </option>
          ))}
        </select>
      </label>
    );
  }
  if (param.kind === "number" || param.kind === "string") {
    return (
      <label title={title}>
        <span>
          {param.name}
          {param.required ? " *" : ""}
        </span>
        <input
          type={param.kind === "number" ? "number" : "text"}
          step="any"
          min={param.minimum}
          max={param.maximum}
          value={text}
          onChange={(e) => onChange(e.target.value)}
          aria-label={label}
          required={param.required}
        />
      </label>
    );
  }
  return null; // text, strings, object: wide fields, below
}

function WideField({ param, value, onChange }: { param: EvaluatorParam; value: string; onChange: (value: string) => void }) {
  const rubric = param.name === "rubric";
  const hint =
    param.kind === "strings" ? "one per line" : param.kind === "object" ? "JSON object" : rubric ? "Mustache: {{input}}, {{output}}, {{expected}}" : "";
  return (
    <label className="matrix-wide">
      <span>
        {param.name}
        {param.required ? " *" : ""} <span className="muted">{hint && `(${hint})`}</span>
      </span>
      <textarea
        rows={rubric ? 10 : param.kind === "object" ? 5 : 3}
        className={rubric ? "evaluators-rubric" : "mono"}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        aria-label={`Evaluator ${param.name}`}
      />
      <span className="muted small evaluators-help">{param.description}</span>
    </label>
  );
}

function EvaluatorForm({
  experimentId,
  types,
  evaluator,
  onDone,
}: {
  experimentId: string;
  types: EvaluatorTypes;
  evaluator: Evaluator | null;
  onDone: (saved: boolean) => void;
}) {
  // the panel shows this form only when the gateway listed types
  const first = (types.data.find((t) => t.type === (evaluator?.type ?? "exact_match")) ?? types.data[0]) as EvaluatorTypeInfo;
  const [type, setType] = useState<EvaluatorTypeInfo>(first);
  const [name, setName] = useState(evaluator?.name ?? "");
  const [metricKey, setMetricKey] = useState(evaluator?.metric_key ?? "");
  const [values, setValues] = useState<ParamValues>(() => formValues(first, evaluator?.params ?? null, types.rubrics));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const pick = (typeName: string) => {
    const info = types.data.find((t) => t.type === typeName);
    if (!info) return;
    setType(info);
    setValues(formValues(info, evaluator?.type === typeName ? evaluator.params : null, types.rubrics));
  };
  const set = (key: string, value: string | boolean) =>
    setValues((v) => {
      const next = { ...v, [key]: value };
      if (type.type === JUDGE && key === "template") next.rubric = types.rubrics.find((r) => r.name === value)?.text ?? v.rubric ?? "";
      return next;
    });
  const save = async () => {
    const result = paramsBody(type, values);
    if ("problem" in result) {
      setError(result.problem);
      return;
    }
    const body: JsonObject = { type: type.type, params: result.params, name: name.trim() || type.type };
    if (metricKey.trim()) body.metricKey = metricKey.trim();
    setBusy(true);
    setError(null);
    try {
      const base = `/experiments/${encodeURIComponent(experimentId)}/evaluators`;
      if (evaluator) await sendJson("PATCH", `${base}/${encodeURIComponent(evaluator.id)}`, body);
      else await sendJson("POST", base, body);
      onDone(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const wide = type.params.filter((p) => p.kind === "text" || p.kind === "strings" || p.kind === "object");
  return (
    <form
      className="matrix-form evaluators-form"
      data-testid="evaluator-form"
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <div className="matrix-fields">
        <label>
          <span>Type</span>
          <select value={type.type} onChange={(e) => pick(e.target.value)} aria-label="Evaluator type">
            {types.data.map((t) => (
              <option key={t.type} value={t.type}>
                {t.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Name</span>
          <input type="text" value={name} onChange={(e) => setName(e.target.value)} aria-label="Evaluator name" placeholder={type.type} />
        </label>
        <label>
          <span>Metric key</span>
          <input type="text" value={metricKey} onChange={(e) => setMetricKey(e.target.value)} aria-label="Evaluator metric key" placeholder="from the name" />
        </label>
        {type.params.map((p) => (
          <ParamField key={p.name} param={p} value={values[p.name] ?? ""} rubrics={types.rubrics} onChange={(v) => set(p.name, v)} />
        ))}
      </div>
      <p className="muted small evaluators-help">
        {type.description} Scores: {type.metric.kind}
        {type.metric.kind === "numeric" && type.metric.max_value !== null ? ` ${type.metric.min_value ?? ""}..${type.metric.max_value}` : ""}.
      </p>
      {wide.map((p) => (
        <WideField key={p.name} param={p} value={typeof values[p.name] === "string" ? (values[p.name] as string) : ""} onChange={(v) => set(p.name, v)} />
      ))}
      <ErrorNote error={error} />
      <div className="matrix-actions">
        <button type="submit" className="btn btn-primary btn-small" disabled={busy}>
          {evaluator ? "Save evaluator" : "Add evaluator"}
        </button>
        <button type="button" className="btn btn-small" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Progress({ progress }: { progress: EvaluationProgress }) {
  const job = progress.job;
  return (
    <div className="evaluators-progress small" data-testid="evaluators-progress" data-status={job?.status ?? "idle"} role="status">
      {job && (
        <div>
          {job.status === "running" ? "Re-running evaluators" : `Re-run ${job.status}`}:{" "}
          <strong data-testid="evaluators-done">{`${fmtInt(job.done)}/${fmtInt(job.total)}`}</strong> cells, {fmtInt(job.scores)} scores,{" "}
          {fmtInt(job.errors)} evaluator errors{job.error ? ` (${job.error})` : ""}
          {job.status === "running" && (
            <progress max={job.total || 1} value={job.done} aria-label="Re-run progress">
              {job.done}
            </progress>
          )}
        </div>
      )}
      {progress.pending_cells > 0 && <div>Scoring {fmtInt(progress.pending_cells)} finished cell(s)…</div>}
    </div>
  );
}

export function EvaluatorsPanel({ experimentId }: { experimentId: string }) {
  const base = `/experiments/${encodeURIComponent(experimentId)}`;
  const { data: types } = useSWR<EvaluatorTypes>("/evaluators/types");
  const { data: listing, error: listError, mutate } = useSWR<{ data: Evaluator[] }>(`${base}/evaluators`);
  const { data: progress, mutate: mutateProgress } = useSWR<EvaluationProgress>(`${base}/evaluate`, {
    refreshInterval: (latest) => (isEvaluating(latest) ? 500 : 0),
  });
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const evaluators = listing?.data ?? [];
  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const one = (e: Evaluator) => `${base}/evaluators/${encodeURIComponent(e.id)}`;
  const toggle = (e: Evaluator) =>
    act(async () => {
      await sendJson("PATCH", one(e), { enabled: !e.enabled });
      await mutate();
    });
  const remove = (e: Evaluator) =>
    act(async () => {
      await sendJson("DELETE", one(e));
      await mutate();
    });
  const rerun = () =>
    act(async () => {
      await sendJson("POST", `${base}/evaluate`, {});
      await mutateProgress();
    });
  const done = (saved: boolean) => {
    setEditing(null);
    if (saved) void mutate();
  };
  const label = (type: string) => types?.data.find((t) => t.type === type)?.label ?? type;
  const evaluating = isEvaluating(progress);
  return (
    <section className="section matrix-panel evaluators-panel" data-testid="evaluators-panel" aria-labelledby="evaluators-title">
      <header className="section-head">
        <h3 id="evaluators-title">Evaluators ({fmtInt(evaluators.length)})</h3>
        <span className="spacer" />
        {editing === null && types && types.data.length > 0 && (
          <button type="button" className="btn btn-small" onClick={() => setEditing("new")}>
            + Evaluator
          </button>
        )}
        <button
          type="button"
          className="btn btn-small"
          disabled={busy || evaluating || !evaluators.some((e) => e.enabled)}
          onClick={() => void rerun()}
          data-testid="rerun-evaluators"
        >
          Re-run evaluators
        </button>
      </header>
      <ErrorNote error={listError ?? error} />
      {evaluators.length === 0 && editing === null && (
        <p className="muted small">No evaluators: add one to score each cell as it finishes (exact match, JSON Schema, tool calls, an LLM judge…).</p>
      )}
      <ul className="matrix-list">
        {evaluators.map((e) =>
          editing === e.id && types ? (
            <li key={e.id}>
              <EvaluatorForm experimentId={experimentId} types={types} evaluator={e} onDone={done} />
            </li>
          ) : (
            <li key={e.id} data-testid="evaluator-item" data-evaluator-id={e.id} className={e.enabled ? undefined : "evaluators-off"}>
              <div className="matrix-item-main">
                <strong>{e.name}</strong> <span className="badge badge-neutral">{label(e.type)}</span> <code>{e.metric_key}</code>{" "}
                {!e.enabled && <span className="badge badge-neutral">disabled</span>}
                <div className="muted small">{paramsSummary(e.params)}</div>
              </div>
              <div className="matrix-actions">
                <label className="evaluators-check small">
                  <input type="checkbox" checked={e.enabled} disabled={busy} onChange={() => void toggle(e)} aria-label={`Enable evaluator ${e.name}`} />
                  <span>enabled</span>
                </label>
                <button type="button" className="btn btn-small" onClick={() => setEditing(e.id)} aria-label={`Edit evaluator ${e.name}`}>
                  Edit
                </button>
                <button type="button" className="btn btn-small btn-danger" disabled={busy} onClick={() => void remove(e)} aria-label={`Delete evaluator ${e.name}`}>
                  Delete
                </button>
              </div>
            </li>
          ),
        )}
      </ul>
      {editing === "new" && types && <EvaluatorForm experimentId={experimentId} types={types} evaluator={null} onDone={done} />}
      {progress && (progress.job || progress.pending_cells > 0) && <Progress progress={progress} />}
    </section>
  );
}
