// The experiment page of a matrix experiment (or of a seed-1 one that has grown
// variants or inputs): variants and inputs panels, estimate then run, a progress bar
// polling /progress with cancel and resume, and the grid of inputs x variants.
// Loaded with the Experiment page (same lazy chunk).

import { useEffect, useMemo, useRef, useState } from "react";
import useSWR from "swr";
import { EvaluatorsPanel } from "../components/EvaluatorsPanel";
import { InputsPanel } from "../components/InputsPanel";
import { MatrixGrid } from "../components/MatrixGrid";
import { ResultsPanel } from "../components/ResultsPanel";
import { VariantsPanel } from "../components/VariantsPanel";
import { ErrorNote, StatusBadge } from "../components/common";
import { ApiError, getJson, sendJson } from "../lib/api";
import { fmtCost, fmtInt, fmtPercent } from "../lib/format";
import { buildGrid, estimateLines, isRunning, progressFraction } from "../lib/matrix";
import { Link } from "../lib/router";
import type { MatrixEstimate, MatrixExperimentDetail, MatrixProgress } from "../lib/types";
import "../styles/experiment.css";
import "../styles/matrix.css";

export function EstimateBox({
  estimate,
  busy,
  onRun,
  onDismiss,
}: {
  estimate: MatrixEstimate;
  busy: boolean;
  onRun: () => void;
  onDismiss: () => void;
}) {
  const lines = estimateLines(estimate);
  return (
    <div className="matrix-estimate" data-testid="estimate" role="group" aria-label="Estimate">
      <p>
        <strong data-testid="estimate-calls">{lines.calls}</strong>, estimated cost <strong data-testid="estimate-cost">{lines.cost}</strong>.
      </p>
      <p className="muted small">{lines.basis}</p>
      {lines.unpriced && <p className="small warn-text">{lines.unpriced}</p>}
      <ul className="small matrix-estimate-variants">
        {estimate.per_variant.map((v) => (
          <li key={v.variant_id}>
            {v.name} <code>{v.model ?? "input's model"}</code>: {fmtInt(v.calls)} calls, {fmtInt(v.prompt_tokens)} + {fmtInt(v.completion_tokens)} tokens,{" "}
            {fmtCost(v.cost_usd)}
          </li>
        ))}
      </ul>
      <div className="matrix-actions">
        <button type="button" className="btn btn-primary" disabled={busy} onClick={onRun} data-testid="confirm-run">
          Run {fmtInt(estimate.calls)} call{estimate.calls === 1 ? "" : "s"}
        </button>
        <button type="button" className="btn" onClick={onDismiss}>
          Back
        </button>
      </div>
    </div>
  );
}

// A resume of more cells than this shows what it will run (calls, cost) and asks first;
// a new run always goes through its estimate.
export const RESUME_CONFIRM_CALLS = 20;

export function ResumeBox({
  calls,
  costUsd,
  busy,
  onRun,
  onDismiss,
}: {
  calls: number;
  costUsd: number | null;
  busy: boolean;
  onRun: () => void;
  onDismiss: () => void;
}) {
  return (
    <div className="matrix-estimate" data-testid="resume-estimate" role="group" aria-label="Resume estimate">
      <p>
        Resume: <strong data-testid="resume-calls">{`${fmtInt(calls)} call${calls === 1 ? "" : "s"}`}</strong> (the run's unfinished and missing cells),
        estimated cost <strong>{costUsd === null ? "unknown" : `about ${fmtCost(costUsd)}`}</strong>.
      </p>
      <p className="muted small">At the run's estimated cost per call; completed cells are not run again.</p>
      <div className="matrix-actions">
        <button type="button" className="btn btn-primary" disabled={busy} onClick={onRun} data-testid="confirm-resume">
          Resume {fmtInt(calls)} call{calls === 1 ? "" : "s"}
        </button>
        <button type="button" className="btn" onClick={onDismiss}>
          Back
        </button>
      </div>
    </div>
  );
}

function ProgressBar({ progress }: { progress: MatrixProgress }) {
  const fraction = progressFraction(progress);
  return (
    <div className="matrix-progress" data-testid="matrix-progress" data-status={progress.status}>
      <div
        className="matrix-bar"
        role="progressbar"
        aria-label="Run progress"
        aria-valuemin={0}
        aria-valuemax={progress.total}
        aria-valuenow={progress.done + progress.failed}
      >
        <span className="matrix-bar-done" style={{ width: fmtPercent(progress.total ? progress.done / progress.total : 0, 2) }} />
        <span className="matrix-bar-failed" style={{ width: fmtPercent(progress.total ? progress.failed / progress.total : 0, 2) }} />
      </div>
      <p className="small">
        <StatusBadge status={progress.status} /> <strong data-testid="progress-done">{`${fmtInt(progress.done)}/${fmtInt(progress.total)}`}</strong> done
        {" \u00b7 "}
        {fmtInt(progress.failed)} failed {" \u00b7 "} {fmtInt(progress.pending + progress.running)} pending
        {progress.cancelled + progress.interrupted > 0 && ` \u00b7 ${fmtInt(progress.cancelled + progress.interrupted)} stopped`}
        {" \u00b7 "}cost so far {fmtCost(progress.cost_usd)} {" \u00b7 "} {fmtPercent(fraction, 0)}
        {progress.retries > 0 && ` \u00b7 ${fmtInt(progress.retries)} retries`}
      </p>
    </div>
  );
}

export default function MatrixExperimentPage({ id }: { id: string }) {
  const base = `/experiments/${encodeURIComponent(id)}`;
  const progressKey = `${base}/progress`;
  const { data: progress, mutate: mutateProgress } = useSWR<MatrixProgress | null>(
    progressKey,
    // before any run the gateway answers 404: no progress to show, not an error
    (path: string) => getJson<MatrixProgress>(path).catch((err: unknown) => (err instanceof ApiError && err.status === 404 ? null : Promise.reject(err))),
    { refreshInterval: (latest) => (isRunning(latest) ? 500 : 0) },
  );
  const running = isRunning(progress);
  const { data: exp, error, mutate } = useSWR<MatrixExperimentDetail>(base, { refreshInterval: running ? 1000 : 0 });
  const [repetitions, setRepetitions] = useState("1");
  const [estimate, setEstimate] = useState<MatrixEstimate | null>(null);
  const [resumeAsk, setResumeAsk] = useState<{ calls: number; costUsd: number | null } | null>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);

  // When a run ends, load its last cells once.
  const wasRunning = useRef(false);
  useEffect(() => {
    if (wasRunning.current && !running) void mutate();
    wasRunning.current = running;
  }, [running, mutate]);

  const grid = useMemo(() => (exp ? buildGrid(exp) : null), [exp]);
  const changed = async () => {
    setEstimate(null); // the matrix changed: an estimate made before is stale
    setResumeAsk(null);
    await mutate();
  };
  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setActionError(null);
    try {
      await work();
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy(false);
    }
  };
  const reps = Number(repetitions);
  const repsValid = Number.isInteger(reps) && reps >= 1 && reps <= 100;
  const onEstimate = () =>
    act(async () => {
      setResumeAsk(null);
      setEstimate(await sendJson<MatrixEstimate>("POST", `${base}/estimate`, { repetitions: reps }));
    });
  const onRun = () =>
    act(async () => {
      // What was estimated is what runs (the field may have changed since).
      await sendJson("POST", `${base}/run`, { repetitions: estimate?.repetitions ?? reps });
      setEstimate(null);
      await mutateProgress();
      await mutate();
    });
  const onCancel = () =>
    act(async () => {
      await mutateProgress(await sendJson<MatrixProgress>("POST", `${base}/cancel`), { revalidate: false });
      await mutate();
    });
  const onResume = () =>
    act(async () => {
      setResumeAsk(null);
      await sendJson("POST", `${base}/run`, { resume: true });
      await mutateProgress();
      await mutate();
    });

  if (error) {
    return (
      <div className="page">
        <ErrorNote error={error} onRetry={() => void mutate()} />
      </div>
    );
  }
  if (!exp || !grid) return <div className="page muted">Loading…</div>;
  const variants = exp.variants ?? [];
  const inputs = exp.inputs ?? [];
  const unfinished = progress ? progress.pending + progress.running + progress.failed + progress.cancelled + progress.interrupted : 0;
  const canResume = Boolean(progress && !running && (unfinished > 0 || progress.total < (grid.run?.cells ?? 0)));
  const resumeCalls = progress ? unfinished + Math.max(0, (grid.run?.cells ?? 0) - progress.total) : 0;
  const askResume = () =>
    act(async () => {
      const run = grid.run;
      if (resumeCalls <= RESUME_CONFIRM_CALLS || !run) return onResume();
      // The cost per call of the run's matrix, from its estimate (none if a variant or
      // input has been removed since).
      const whole = await sendJson<MatrixEstimate>("POST", `${base}/estimate`, {
        variantIds: run.variant_ids,
        inputIds: run.input_ids,
        repetitions: run.repetitions,
      }).catch(() => null);
      const perCall = whole && whole.cost_usd !== null && whole.calls ? whole.cost_usd / whole.calls : null;
      setEstimate(null);
      setResumeAsk({ calls: resumeCalls, costUsd: perCall === null ? null : perCall * resumeCalls });
    });
  return (
    <div className="page matrix-page" data-testid="matrix-page" data-experiment-id={exp.id}>
      <header className="page-head">
        <h1>{exp.name}</h1>
        <StatusBadge status={exp.kind === "matrix" ? "matrix" : "replay + variants"} />
        <span className="spacer" />
        {exp.kind !== "matrix" && (
          <Link className="btn btn-small" to={`/experiment?id=${encodeURIComponent(exp.id)}&view=replay`}>
            One-call editor
          </Link>
        )}
        <Link className="btn btn-small" to="/experiments">
          All experiments
        </Link>
      </header>
      {exp.description && <p className="muted">{exp.description}</p>}
      <div className="matrix-panels">
        <VariantsPanel experimentId={exp.id} variants={variants} onChanged={changed} />
        <InputsPanel experimentId={exp.id} inputs={inputs} onChanged={changed} />
      </div>
      <EvaluatorsPanel experimentId={exp.id} />
      <section className="section matrix-panel" aria-labelledby="run-title">
        <header className="section-head">
          <h3 id="run-title">Run</h3>
        </header>
        <div className="matrix-run-bar">
          <label>
            <span>Repetitions</span>
            <input
              type="number"
              min="1"
              max="100"
              step="1"
              value={repetitions}
              onChange={(e) => {
                setRepetitions(e.target.value);
                setEstimate(null); // an estimate of other repetitions is stale
              }}
              aria-label="Repetitions"
            />
          </label>
          <button type="button" className="btn" disabled={busy || running || !repsValid || !variants.length || !inputs.length} onClick={() => void onEstimate()}>
            Estimate
          </button>
          {running && (
            <button type="button" className="btn btn-danger" disabled={busy} onClick={() => void onCancel()}>
              Cancel run
            </button>
          )}
          {canResume && (
            <button type="button" className="btn" disabled={busy} onClick={() => void askResume()}>
              Resume
            </button>
          )}
        </div>
        {estimate && <EstimateBox estimate={estimate} busy={busy} onRun={() => void onRun()} onDismiss={() => setEstimate(null)} />}
        {resumeAsk && !running && (
          <ResumeBox calls={resumeAsk.calls} costUsd={resumeAsk.costUsd} busy={busy} onRun={() => void onResume()} onDismiss={() => setResumeAsk(null)} />
        )}
        <ErrorNote error={actionError} />
        {progress && <ProgressBar progress={progress} />}
      </section>
      <section className="section" aria-labelledby="grid-title">
        <header className="section-head">
          <h3 id="grid-title">Results</h3>
          {grid.run && <span className="muted small">run {grid.run.id}</span>}
        </header>
        <MatrixGrid grid={grid} />
      </section>
      <ResultsPanel experimentId={exp.id} runId={grid.run?.id ?? null} running={running} />
    </div>
  );
}
