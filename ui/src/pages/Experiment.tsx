// The experiment page: load a captured call's request (from ?span_id=) or a saved
// experiment (?id=), edit it visually or as JSON, save, run (streaming the new output),
// and compare the new output with the original; earlier runs stay listed.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import useSWR, { useSWRConfig } from "swr";
import { Comparison, emptySide, sideFromSpan, type Side } from "../components/Comparison";
import { JsonEditor } from "../components/JsonEditor";
import { VisualEditor } from "../components/VisualEditor";
import { ErrorNote, StatusBadge } from "../components/common";
import { ApiError, getJson, request as apiRequest, sendJson } from "../lib/api";
import {
  detectVariables,
  modelParameters,
  parseRequestJson,
  reconcileVariables,
  requestFormat,
  setStream,
  streams,
  toJsonText,
  type ParseResult,
} from "../lib/editor";
import { requestChanges, runSummary } from "../lib/requestDiff";
import { fmtMs, fmtRelative, fmtTime, truncate } from "../lib/format";
import { isObject } from "../lib/messages";
import { Link, navigate, useLocation } from "../lib/router";
import { readSse } from "../lib/sse";
import type { Experiment, ExperimentRun, JsonObject, JsonValue, MatrixExperimentDetail, SpanDetail } from "../lib/types";
import { isMatrixView } from "../lib/matrix";
import MatrixExperimentPage from "./MatrixExperiment";
import "../styles/experiment.css";

/** Operations whose replay can stream (an embeddings call cannot). */
const STREAMABLE = new Set(["chat", "completions", "responses", "messages"]);

interface Draft {
  name: string;
  description: string;
  tags: string;
  request: JsonObject;
  headers: [string, string][];
  variables: Record<string, string>;
}

function draftFromExperiment(exp: Experiment): Draft {
  return {
    name: exp.name,
    description: exp.description ?? "",
    tags: (exp.tags ?? []).join(", "),
    request: structuredClone(exp.modified_request),
    headers: Object.entries(exp.headers ?? {}),
    variables: { ...(exp.prompt_variables ?? {}) },
  };
}

function draftFromSpan(span: SpanDetail): Draft {
  const request = isObject(span.request) ? structuredClone(span.request) : {};
  return {
    // left blank, the gateway names it: the original's first words, model and time
    name: "",
    description: "",
    tags: "",
    request,
    headers: [],
    variables: {},
  };
}

function HeadersEditor({ rows, onChange }: { rows: [string, string][]; onChange: (rows: [string, string][]) => void }) {
  return (
    <div className="headers-editor">
      {rows.map(([k, v], i) => (
        <div key={i} className="header-row">
          <input
            type="text"
            value={k}
            placeholder="header name"
            aria-label={`Header ${i + 1} name`}
            onChange={(e) => onChange(rows.map((r, j) => (j === i ? [e.target.value, r[1]] : r)))}
          />
          <input
            type="text"
            value={v}
            placeholder="value"
            aria-label={`Header ${i + 1} value`}
            onChange={(e) => onChange(rows.map((r, j) => (j === i ? [r[0], e.target.value] : r)))}
          />
          <button type="button" className="icon-btn danger" aria-label={`Remove header ${i + 1}`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>
            {"\u2715"}
          </button>
        </div>
      ))}
      <button type="button" className="btn btn-small" onClick={() => onChange([...rows, ["", ""]])}>
        + header
      </button>
      <p className="muted small">
        Stored with the experiment and sent upstream with each run. Credentials are refused here: use the API key field below.
      </p>
    </div>
  );
}

function VariablesEditor({ names, values, onChange }: { names: string[]; values: Record<string, string>; onChange: (v: Record<string, string>) => void }) {
  if (!names.length) {
    return (
      <p className="muted small">
        No variables. Write <code>{"{{name}}"}</code> in a message to add one; its value is filled in when the experiment runs.
      </p>
    );
  }
  return (
    <div className="variables" data-testid="variables">
      {names.map((name) => (
        <label key={name} className="variable">
          <code>{`{{${name}}}`}</code>
          <input type="text" value={values[name] ?? ""} aria-label={`Variable ${name}`} onChange={(e) => onChange({ ...values, [name]: e.target.value })} />
        </label>
      ))}
    </div>
  );
}

function RunHistory({
  runs,
  selected,
  onSelect,
  originalRequest,
}: {
  runs: ExperimentRun[];
  selected: string | null;
  onSelect: (id: string) => void;
  /** What each run's parameters are shown against. */
  originalRequest: JsonObject | null;
}) {
  if (!runs.length) return <p className="muted small">No runs yet.</p>;
  return (
    <ol className="run-history" data-testid="run-history">
      {runs.map((run, i) => {
        const chips = originalRequest && run.request ? runSummary(originalRequest, run.request) : [];
        return (
          <li key={run.id} className={run.id === selected ? "selected" : ""} data-run-id={run.id}>
            <button type="button" className="run-item" onClick={() => onSelect(run.id)} aria-pressed={run.id === selected}>
              <span className="run-n">#{runs.length - i}</span> <StatusBadge status={run.status} />{" "}
              <span className="muted small">
                {fmtTime(run.started_at)} · {fmtMs(run.duration_ms)}
              </span>
              <span className="run-params" data-testid="run-params">
                {chips.length ? (
                  chips.map((chip) => (
                    <span key={chip} className="run-param">
                      {chip}
                    </span>
                  ))
                ) : (
                  <span className="muted small">as the original</span>
                )}
              </span>
              <span className="run-preview">{truncate(run.output_text ?? "", 90)}</span>
            </button>
          </li>
        );
      })}
    </ol>
  );
}

/** A run that failed because the provider refused its credential. */
function isKeyFailure(error: JsonObject): boolean {
  const code = typeof error.code === "string" ? error.code : "";
  return code === "missing_credential" || code === "invalid_api_key" || code === "http_401" || error.type === "authentication_error";
}

function runLabel(runs: ExperimentRun[], id: string): string {
  const i = runs.findIndex((r) => r.id === id);
  return i < 0 ? "Run" : `Run #${runs.length - i}`;
}

/** Which two things the comparison shows: A (the original call or a run) and B (a run). */
function ComparePicker({
  runs,
  a,
  b,
  onA,
  onB,
}: {
  runs: ExperimentRun[];
  a: string;
  b: string | null;
  onA: (v: string) => void;
  onB: (v: string) => void;
}) {
  const compared = runs.filter((r) => r.status !== "running");
  if (!compared.length) return null;
  const options = compared.map((r) => (
    <option key={r.id} value={r.id}>
      {runLabel(runs, r.id)} · {r.status}
    </option>
  ));
  return (
    <div className="compare-pick" data-testid="compare-pick">
      <label className="stream-toggle">
        <span className="small muted">Compare A</span>
        <select value={a} onChange={(e) => onA(e.target.value)} aria-label="Compare A">
          <option value="original">Original call</option>
          {options}
        </select>
      </label>
      <label className="stream-toggle">
        <span className="small muted">with B</span>
        <select value={b ?? ""} onChange={(e) => onB(e.target.value)} aria-label="Compare B">
          {b === null && <option value="">(none)</option>}
          {options}
        </select>
      </label>
    </div>
  );
}

function SiblingExperiments({ spanId }: { spanId: string }) {
  const { data } = useSWR<{ data: Experiment[] }>(`/experiments/by-span/${encodeURIComponent(spanId)}`, { shouldRetryOnError: false });
  if (!data?.data.length) return null;
  return (
    <p className="muted small">
      This call already has {data.data.length === 1 ? "an experiment" : `${data.data.length} experiments`}:{" "}
      {data.data.slice(0, 5).map((e, i) => (
        <span key={e.id}>
          {i > 0 && ", "}
          <Link to={`/experiment?id=${encodeURIComponent(e.id)}`}>{e.name}</Link>
        </span>
      ))}
      . Running this page creates a new one.
    </p>
  );
}

function useSpan(spanId: string | null | undefined, awaitWrite = false) {
  return useSWR<SpanDetail>(spanId ? `/spans/${encodeURIComponent(spanId)}` : null, {
    // A result span reaches the database a moment after the run ends (the writer
    // batches): keep asking briefly instead of backing off.
    onErrorRetry: (error, _key, _config, revalidate, { retryCount }) => {
      const missing = error instanceof ApiError && error.status === 404;
      if (!(awaitWrite && missing) && retryCount >= 2) return;
      if (retryCount >= 40) return;
      window.setTimeout(() => void revalidate({ retryCount }), awaitWrite && missing ? 250 : 3000);
    },
  });
}

/** A matrix experiment (or a seed-1 one grown variants/inputs) gets the matrix page;
 * a plain seed-1 experiment this one-call page, exactly as before (`view=replay` forces it). */
export default function ExperimentPage() {
  const { search } = useLocation();
  const id = search.get("id");
  const { data } = useSWR<MatrixExperimentDetail>(id ? `/experiments/${encodeURIComponent(id)}` : null);
  if (id && data && search.get("view") !== "replay" && isMatrixView(data)) return <MatrixExperimentPage id={id} />;
  return <ReplayExperimentPage />;
}

function ReplayExperimentPage() {
  const { search } = useLocation();
  const id = search.get("id");
  const spanParam = search.get("span_id");
  const { mutate } = useSWRConfig();

  const experimentKey = id ? `/experiments/${encodeURIComponent(id)}` : null;
  const { data: experiment, error: experimentError } = useSWR<Experiment>(experimentKey);
  const originalSpanId = experiment?.original_span_id ?? spanParam;
  const { data: originalSpan, error: spanError } = useSpan(originalSpanId);
  const runsKey = id ? `/experiments/${encodeURIComponent(id)}/runs` : null;
  const { data: runsPage } = useSWR<{ data: ExperimentRun[] }>(runsKey);

  const [draft, setDraft] = useState<Draft | null>(null);
  const [dirty, setDirty] = useState(false);
  const loadedFor = useRef<string | null>(null);

  // Build the draft once per experiment (or per span for a new one).
  useEffect(() => {
    const key = id ?? (spanParam ? `span:${spanParam}` : null);
    if (!key || loadedFor.current === key) return;
    if (id && experiment) {
      setDraft(draftFromExperiment(experiment));
      loadedFor.current = key;
      setDirty(false);
    } else if (!id && originalSpan) {
      setDraft(draftFromSpan(originalSpan));
      loadedFor.current = key;
      setDirty(false);
    }
  }, [id, spanParam, experiment, originalSpan]);

  const [mode, setMode] = useState<"visual" | "json">("visual");
  const [jsonText, setJsonText] = useState("");
  const [jsonError, setJsonError] = useState<Extract<ParseResult, { ok: false }> | null>(null);
  const [busy, setBusy] = useState<null | "saving" | "running">(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [streamText, setStreamText] = useState<string | null>(null);
  const [selectedRunId, setSelectedRunId] = useState<string | null>(null);
  // Side A of the comparison: "original" or a run id (side B is the selected run).
  const [compareA, setCompareA] = useState<string>("original");
  // A refused or failed run's reason, shown at the field it is about.
  const [keyError, setKeyError] = useState<string | null>(null);
  const [modelError, setModelError] = useState<string | null>(null);
  const [savedAt, setSavedAt] = useState<string | null>(null);
  // Held in memory for this page only: sent with runs, never saved.
  const [apiKey, setApiKey] = useState("");
  const apiKeyInput = useRef<HTMLInputElement>(null);
  // The model list asks the upstream through /models (the gateway's own call, not
  // recorded as a span); with the key once it is entered.
  const [modelsKey, setModelsKey] = useState("");
  const { data: modelsPage } = useSWR<{ data: { id: string }[] }>(
    ["/models", modelsKey],
    ([path, key]: [string, string]) => getJson(path, key ? { headers: { authorization: `Bearer ${key}` } } : {}),
    { shouldRetryOnError: false, revalidateIfStale: false, revalidateOnReconnect: false },
  );

  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  const update = useCallback((change: Partial<Draft>) => {
    setDraft((d) => (d ? { ...d, ...change } : d));
    setDirty(true);
  }, []);

  const format = draft ? requestFormat(draft.request, experiment?.operation ?? originalSpan?.operation) : "chat";
  const variableNames = useMemo(() => (draft ? detectVariables(draft.request) : []), [draft]);
  const variables = useMemo(() => reconcileVariables(variableNames, draft?.variables), [variableNames, draft?.variables]);

  const switchMode = (next: "visual" | "json") => {
    if (!draft || next === mode) return;
    if (next === "json") {
      setJsonText(toJsonText(draft.request));
      setJsonError(null);
      setMode("json");
      return;
    }
    const parsed = parseRequestJson(jsonText);
    if (!parsed.ok) {
      setJsonError(parsed);
      return;
    }
    update({ request: parsed.value });
    setMode("visual");
  };

  const onJsonChange = (text: string) => {
    setJsonText(text);
    const parsed = parseRequestJson(text);
    if (parsed.ok) {
      setJsonError(null);
      update({ request: parsed.value });
    } else {
      setJsonError(parsed);
      setDirty(true);
    }
  };

  const save = async ({ open = true }: { open?: boolean } = {}): Promise<Experiment> => {
    if (!draft) throw new Error("Nothing to save yet.");
    if (mode === "json" && jsonError) throw new Error(`Fix the JSON first: ${jsonError.error}`);
    const body = {
      // no name: the gateway names a new experiment (first words, model, time)
      ...(draft.name.trim() ? { name: draft.name.trim() } : {}),
      description: draft.description,
      tags: draft.tags
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean),
      modified_request: draft.request,
      headers: Object.fromEntries(draft.headers.filter(([k]) => k.trim()).map(([k, v]) => [k.trim(), v])),
      prompt_variables: variables,
      model_parameters: modelParameters(draft.request),
    };
    let saved: Experiment;
    if (experiment) {
      saved = await sendJson<Experiment>("PUT", `/experiments/${encodeURIComponent(experiment.id)}`, body);
    } else {
      if (!originalSpan) throw new Error("The original call is not loaded.");
      saved = await sendJson<Experiment>("POST", "/experiments", {
        ...body,
        original_span_id: originalSpan.span_id,
        original_trace_id: originalSpan.trace_id,
      });
      if (open) openSaved(saved.id);
    }
    await mutate(`/experiments/${encodeURIComponent(saved.id)}`, saved, { revalidate: false });
    void mutate((key) => typeof key === "string" && key.startsWith("/experiments?"));
    setDirty(false);
    setSavedAt(new Date().toISOString());
    return saved;
  };

  const openSaved = (savedId: string) => {
    loadedFor.current = savedId;
    navigate(`/experiment?id=${encodeURIComponent(savedId)}`, { replace: true });
  };

  const onSave = async () => {
    setBusy("saving");
    setActionError(null);
    try {
      await save();
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy(null);
    }
  };

  const onRun = async () => {
    if (!draft) return;
    setBusy("running");
    setActionError(null);
    setKeyError(null);
    setModelError(null);
    const streamed = streams(draft.request);
    setStreamText(streamed ? "" : null);
    setSelectedRunId(null);
    let runId: string | null = null;
    let expId: string | null = null;
    // A new experiment is created by this click; opened once its run has started, and
    // removed again when the run is refused (nothing half-made stays behind).
    let created: Experiment | null = null;
    try {
      const saved = await save({ open: false });
      if (!experiment) created = saved;
      expId = saved.id;
      const headers: Record<string, string> = { accept: streamed ? "text/event-stream" : "application/json" };
      if (apiKey.trim()) headers.authorization = `Bearer ${apiKey.trim()}`;
      // the run streams exactly when the request says so (the toggle), as the original did
      const response = await apiRequest(`/experiments/${encodeURIComponent(saved.id)}/run${streamed ? "?stream=true" : ""}`, {
        method: "POST",
        headers,
      });
      if (created) {
        openSaved(created.id);
        created = null;
      }
      let run: ExperimentRun | null = null;
      let failure: JsonValue | null = null;
      if ((response.headers.get("content-type") ?? "").includes("text/event-stream") && response.body) {
        for await (const event of readSse(response.body)) {
          if (event.event === "delta") {
            const data = JSON.parse(event.data) as { content?: string };
            if (data.content) setStreamText((t) => (t ?? "") + data.content);
          } else if (event.event === "done") {
            run = JSON.parse(event.data) as ExperimentRun;
          } else if (event.event === "error") {
            // {"error": {...}, "run": {...}}: the run failed (and is kept in the history)
            const data = JSON.parse(event.data) as JsonValue;
            if (isObject(data) && isObject(data.run)) run = data.run as unknown as ExperimentRun;
            failure = isObject(data) && data.error !== undefined ? data.error : data;
          }
        }
      } else {
        run = (await response.json()) as ExperimentRun;
        if (run.status === "failed") failure = run.error;
      }
      if (failure !== null) {
        setActionError(isObject(failure) && typeof failure.message === "string" ? `Run failed: ${failure.message}` : failure);
        if (isObject(failure) && isKeyFailure(failure)) setKeyError(typeof failure.message === "string" ? failure.message : "The provider refused the key.");
      }
      if (run) {
        runId = run.id;
        const finished = run;
        await mutate(
          `/experiments/${encodeURIComponent(expId)}/runs`,
          (page?: { data: ExperimentRun[] }) => ({ data: [finished, ...(page?.data ?? []).filter((r) => r.id !== finished.id)] }),
          { revalidate: true },
        );
      }
    } catch (err) {
      if (created) {
        // refused before it started: the experiment this click made goes too
        const gone = created;
        expId = null;
        await sendJson("DELETE", `/experiments/${encodeURIComponent(gone.id)}`).catch(() => undefined);
        void mutate((key) => typeof key === "string" && key.startsWith("/experiments?"));
        setDirty(true);
      }
      setActionError(err);
      if (err instanceof ApiError) {
        if (err.code === "missing_credential") {
          setKeyError(err.message);
          apiKeyInput.current?.focus();
        } else if (err.param === "model" || err.param?.endsWith(".model") || ["model_not_found", "provider_not_found"].includes(err.code ?? "")) {
          setModelError(err.message);
        }
      }
    } finally {
      if (expId) void mutate(`/experiments/${encodeURIComponent(expId)}`);
      setSelectedRunId(runId);
      setStreamText(null);
      setBusy(null);
    }
  };

  const runs = runsPage?.data ?? [];
  const selectedRun = runs.find((r) => r.id === selectedRunId) ?? (selectedRunId === null && busy !== "running" ? runs[0] : undefined) ?? null;
  const { data: resultSpan } = useSpan(selectedRun?.result_span_id, true);
  const baseRun = compareA === "original" ? null : (runs.find((r) => r.id === compareA) ?? null);
  const { data: baseSpan } = useSpan(baseRun?.result_span_id, true);

  const sideOfRun = (run: ExperimentRun, span: SpanDetail | undefined): Side => {
    if (span && span.span_id === run.result_span_id) return sideFromSpan(span);
    return {
      ...emptySide(run.output_text ?? ""),
      status: run.status,
      error: run.error ?? null,
      pending: Boolean(run.result_span_id),
    };
  };
  let originalSide: Side | null = originalSpan ? sideFromSpan(originalSpan) : null;
  if (baseRun) originalSide = sideOfRun(baseRun, baseSpan);
  let resultSide: Side | null = null;
  if (streamText !== null) resultSide = { ...emptySide(streamText), model: draft && typeof draft.request.model === "string" ? draft.request.model : null, streaming: true };
  else if (busy === "running") resultSide = { ...emptySide(""), status: "running" }; // a run that does not stream
  else if (selectedRun) resultSide = sideOfRun(selectedRun, resultSpan);

  // What was sent on each side: the original's request (as the experiment replays it),
  // or a run's; while a run is under way, the request being run.
  const originalRequest: JsonObject | null = experiment?.original_request ?? (originalSpan && isObject(originalSpan.request) ? originalSpan.request : null);
  const requestA: JsonObject | null = baseRun ? baseRun.request : originalRequest;
  const requestB: JsonObject | null = streamText !== null || busy === "running" ? (draft?.request ?? null) : (selectedRun?.request ?? null);
  const changes = useMemo(() => (requestA && requestB ? requestChanges(requestA, requestB) : null), [requestA, requestB]);
  const titles: [string, string] = [
    baseRun ? runLabel(runs, baseRun.id) : "Original",
    selectedRun && streamText === null ? runLabel(runs, selectedRun.id) : "New",
  ];
  const operation = experiment?.operation ?? originalSpan?.operation ?? "chat";

  const models = useMemo(() => {
    const names = new Set<string>((modelsPage?.data ?? []).map((m) => m.id).filter(Boolean));
    for (const m of [originalSpan?.request_model, originalSpan?.response_model]) if (m) names.add(m);
    return [...names].sort();
  }, [modelsPage, originalSpan]);

  const loadError = experimentError ?? (!experiment && spanError ? spanError : null);
  if (!id && !spanParam) {
    return (
      <div className="page">
        <h1>Experiment</h1>
        <p>
          Open a call on the <Link to="/">Traces</Link> page and press <strong>Experiment</strong>, or pick one on the{" "}
          <Link to="/experiments">Experiments</Link> page.
        </p>
      </div>
    );
  }
  if (loadError) {
    const noBackend = loadError instanceof ApiError && loadError.noRoute;
    return (
      <div className="page">
        <h1>Experiment</h1>
        <ErrorNote error={noBackend ? "The experiments API is not available on this gateway." : loadError} />
      </div>
    );
  }
  if (!draft) return <div className="page muted">Loading…</div>;

  const blocked = mode === "json" && jsonError !== null;
  return (
    <div className="page experiment-page" data-testid="experiment-page">
      <nav className="crumbs">
        <Link to="/experiments">Experiments</Link> / {experiment ? experiment.name : "new"}
      </nav>
      <header className="experiment-head">
        <input
          className="title-input"
          type="text"
          value={draft.name}
          onChange={(e) => update({ name: e.target.value })}
          aria-label="Experiment name"
          placeholder="Name (default: the original's first words · model · time)"
        />
        {experiment && <StatusBadge status={experiment.status} />}
        <span className="muted small" data-testid="save-state">
          {dirty ? "Unsaved changes" : savedAt ? `Saved ${fmtRelative(savedAt)}` : experiment ? "Saved" : "Not saved yet"}
        </span>
        <span className="spacer" />
        {originalSpan && (
          <Link to={`/spans/${encodeURIComponent(originalSpan.span_id)}`} className="btn">
            Original call
          </Link>
        )}
        {STREAMABLE.has(operation) && (
          <span className="run-options">
            <label className="stream-toggle" title="Replay as a stream (server-sent events) or as one JSON answer">
              <input
                type="checkbox"
                checked={streams(draft.request)}
                onChange={(e) => {
                  const next = setStream(draft.request, e.target.checked);
                  update({ request: next });
                  if (mode === "json") setJsonText(toJsonText(next)); // the JSON shown follows
                }}
                disabled={busy !== null || blocked}
                data-testid="stream-toggle"
              />
              Stream
            </label>
            {originalSpan && originalSpan.stream !== null && (
              <span className="muted small" data-testid="original-stream">
                (original: {originalSpan.stream ? "streamed" : "not streamed"})
              </span>
            )}
          </span>
        )}
        <button type="button" className="btn" onClick={() => void onSave()} disabled={busy !== null || blocked}>
          {busy === "saving" ? "Saving…" : "Save"}
        </button>
        <button type="button" className="btn btn-primary" onClick={() => void onRun()} disabled={busy !== null || blocked} data-testid="run-button">
          {busy === "running" ? "Running…" : "\u25b6 Run"}
        </button>
      </header>
      {!experiment && originalSpan && <SiblingExperiments spanId={originalSpan.span_id} />}
      <ErrorNote error={actionError} />
      {experiment?.error && experiment.status === "failed" && !actionError && <ErrorNote error={experiment.error} />}

      <div className="experiment-grid">
        <section className="panel editor-panel">
          <div className="panel-head">
            <div className="segmented" role="tablist" aria-label="Editor mode">
              <button type="button" role="tab" aria-selected={mode === "visual"} className={`seg ${mode === "visual" ? "active" : ""}`} onClick={() => switchMode("visual")}>
                Visual
              </button>
              <button type="button" role="tab" aria-selected={mode === "json"} className={`seg ${mode === "json" ? "active" : ""}`} onClick={() => switchMode("json")}>
                JSON
              </button>
            </div>
            <span className="muted small">{format === "anthropic" ? "Anthropic messages" : format === "chat" ? "OpenAI chat" : format}</span>
          </div>
          {mode === "visual" ? (
            <VisualEditor
              request={draft.request}
              format={format}
              models={models}
              modelError={modelError}
              onChange={(request) => {
                setModelError(null);
                update({ request });
              }}
            />
          ) : (
            <>
              <JsonEditor value={jsonText} onChange={onJsonChange} label="Request JSON" />
              {jsonError && (
                <div className="field-error" role="alert" data-testid="json-error">
                  {jsonError.error}
                </div>
              )}
            </>
          )}
          <div className="field-block">
            <h4>Variables</h4>
            <VariablesEditor names={variableNames} values={variables} onChange={(v) => update({ variables: { ...draft.variables, ...v } })} />
          </div>
          <div className="field-block">
            <h4>Headers</h4>
            <HeadersEditor rows={draft.headers} onChange={(headers) => update({ headers })} />
            <label className="stack api-key">
              <span className="small muted">API key for runs from this page (kept in memory only, never saved; not needed when the gateway has the provider's key)</span>
              <input ref={apiKeyInput} type="password" autoComplete="off" value={apiKey} onChange={(e) => setApiKey(e.target.value)} onBlur={() => setModelsKey(apiKey.trim())} aria-label="API key for runs" placeholder="sk-…" aria-invalid={keyError ? true : undefined} aria-describedby={keyError ? "key-error" : undefined} />
            </label>
            {keyError && (
              <div className="field-error key-error" id="key-error" role="alert" data-testid="key-error">
                {keyError}
              </div>
            )}
          </div>
          <div className="field-block">
            <h4>Notes</h4>
            <label className="stack">
              <span className="small muted">Description</span>
              <textarea value={draft.description} rows={2} onChange={(e) => update({ description: e.target.value })} aria-label="Description" />
            </label>
            <label className="stack">
              <span className="small muted">Tags (comma separated)</span>
              <input type="text" value={draft.tags} onChange={(e) => update({ tags: e.target.value })} aria-label="Tags" />
            </label>
          </div>
        </section>

        <section className="panel results-panel">
          <div className="panel-head">
            <h3>Comparison</h3>
          </div>
          {!originalSpan && spanError ? <ErrorNote error="The original call is no longer stored; only the new output is shown." /> : null}
          {id && (
            <ComparePicker
              runs={runs}
              a={baseRun ? baseRun.id : "original"}
              b={streamText === null ? (selectedRun?.id ?? null) : null}
              onA={setCompareA}
              onB={setSelectedRunId}
            />
          )}
          <Comparison original={originalSide} result={resultSide} titles={titles} requestChanges={changes} />
          <div className="field-block">
            <h4>Run history</h4>
            {id ? (
              <RunHistory runs={runs} selected={selectedRun?.id ?? null} onSelect={setSelectedRunId} originalRequest={originalRequest} />
            ) : (
              <p className="muted small">Runs appear here once the experiment is saved and run.</p>
            )}
          </div>
        </section>
      </div>
    </div>
  );
}
