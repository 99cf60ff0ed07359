import { useRef, useState } from "react";
import useSWRInfinite from "swr/infinite";
import { ErrorNote, StatusBadge } from "../components/common";
import { NewExperiment } from "../components/NewExperiment";
import { ApiError, getJson, query, sendJson } from "../lib/api";
import { fmtCost, fmtDelta, fmtInt, fmtMs, fmtRelative, fmtTime } from "../lib/format";
import { Link, navigate, setSearch, useLocation } from "../lib/router";
import type { Experiment, LatestRun, MetricDelta, Page } from "../lib/types";
import "../styles/experiment.css";

function Delta({ name, metric, format }: { name: string; metric: MetricDelta; format: (n: number) => string }) {
  if (metric.original === null && metric.result === null) return null;
  const trend = metric.delta === null || metric.delta === 0 ? "" : metric.delta < 0 ? "down" : "up";
  return (
    <span className={trend} title={`${name}: original ${metric.original === null ? "unknown" : format(metric.original)}, run ${metric.result === null ? "unknown" : format(metric.result)}`}>
      {name} {fmtDelta(metric.original, metric.result, format)}
    </span>
  );
}

/** The latest run's status and how it compares with the original call. */
function LatestRunCell({ run }: { run: LatestRun | null | undefined }) {
  if (!run) return <span className="muted small">not run</span>;
  return (
    <div className="exp-deltas" data-testid="latest-run">
      <span>
        <StatusBadge status={run.status} /> <span className="muted">{fmtRelative(run.started_at)}</span>
      </span>
      <Delta name="latency" metric={run.latency_ms} format={fmtMs} />
      <Delta name="cost" metric={run.cost_usd} format={fmtCost} />
      <Delta name="tokens" metric={run.total_tokens} format={fmtInt} />
    </div>
  );
}

function download(filename: string, data: unknown): void {
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "experiment";
}

function modelOf(exp: Experiment): string {
  const model = exp.modified_request?.model;
  return typeof model === "string" ? model : "\u2013";
}

function Row({ exp, onChanged, onError }: { exp: Experiment; onChanged: () => Promise<unknown>; onError: (e: unknown) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await work();
      await onChanged();
    } catch (err) {
      onError(err);
    } finally {
      setBusy(false);
    }
  };
  const openHref = `/experiment?id=${encodeURIComponent(exp.id)}`;
  return (
    <tr data-testid="experiment-row" data-experiment-id={exp.id}>
      <td>
        <button
          type="button"
          className={`star ${exp.favorite ? "on" : ""}`}
          aria-pressed={Boolean(exp.favorite)}
          aria-label={exp.favorite ? "Remove from favourites" : "Add to favourites"}
          disabled={busy}
          onClick={() => void act(() => sendJson("PUT", `/experiments/${encodeURIComponent(exp.id)}`, { favorite: !exp.favorite }))}
        >
          {exp.favorite ? "\u2605" : "\u2606"}
        </button>
      </td>
      <td>
        <Link to={openHref} className="exp-name">
          {exp.name}
        </Link>
        {exp.description && <div className="muted small">{exp.description}</div>}
      </td>
      <td>
        <Link to={`/spans/${encodeURIComponent(exp.original_span_id)}`} className="mono small" data-testid="original-link" aria-label={`Original call of ${exp.name}`}>
          {exp.original_span_id.slice(0, 8)}
        </Link>
      </td>
      <td>
        <StatusBadge status={exp.status} />
      </td>
      <td>
        <LatestRunCell run={exp.latest_run} />
      </td>
      <td>{modelOf(exp)}</td>
      <td className="nowrap" title={exp.created_at ?? ""}>
        {fmtTime(exp.created_at)}
      </td>
      <td className="nowrap" title={exp.updated_at ?? ""}>
        {fmtRelative(exp.updated_at)}
      </td>
      <td>
        {(exp.tags ?? []).map((t) => (
          <button key={t} type="button" className="tag" onClick={() => setSearch({ tag: t })} title={`Only tag ${t}`}>
            {t}
          </button>
        ))}
      </td>
      <td className="actions nowrap">
        {confirming ? (
          <span className="confirm" role="group" aria-label="Confirm delete">
            Delete?{" "}
            <button
              type="button"
              className="btn btn-small btn-danger"
              disabled={busy}
              onClick={() => void act(() => sendJson("DELETE", `/experiments/${encodeURIComponent(exp.id)}`))}
            >
              Delete
            </button>{" "}
            <button type="button" className="btn btn-small" onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </span>
        ) : (
          <>
            <button type="button" className="btn btn-small" onClick={() => navigate(openHref)}>
              Open
            </button>{" "}
            <button
              type="button"
              className="btn btn-small"
              disabled={busy}
              onClick={() => void act(() => sendJson("POST", `/experiments/${encodeURIComponent(exp.id)}/duplicate`))}
            >
              Duplicate
            </button>{" "}
            <button
              type="button"
              className="btn btn-small"
              onClick={() =>
                void getJson(`/experiments/${encodeURIComponent(exp.id)}/export`)
                  .then((data) => download(`${slug(exp.name)}.json`, data))
                  .catch(onError)
              }
            >
              Export
            </button>{" "}
            <button type="button" className="btn btn-small btn-danger" aria-label={`Delete ${exp.name}`} onClick={() => setConfirming(true)}>
              Delete
            </button>
          </>
        )}
      </td>
    </tr>
  );
}

export function ExperimentsPage() {
  const { search } = useLocation();
  const q = search.get("q") ?? "";
  const status = search.get("status") ?? "";
  const tag = search.get("tag") ?? "";
  const favorite = search.get("favorite") === "true";
  const [text, setText] = useState(q);
  const [actionError, setActionError] = useState<unknown>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const base = { q, status, tag, favorite: favorite ? "true" : "", limit: 50, include: "latest_run" };
  const { data, error, size, setSize, mutate, isLoading, isValidating } = useSWRInfinite<Page<Experiment>>(
    (index, previous: Page<Experiment> | null) => {
      if (previous && !previous.next_cursor) return null;
      return `/experiments${query({ ...base, cursor: index === 0 ? null : previous?.next_cursor })}`;
    },
    getJson,
  );
  const experiments = (data ?? []).flatMap((p) => p.data);
  const hasMore = Boolean(data?.[data.length - 1]?.next_cursor);
  const noBackend = error instanceof ApiError && error.noRoute;

  const onImport = async (file: File) => {
    setActionError(null);
    try {
      const body: unknown = JSON.parse(await file.text());
      // an experiment that already exists here is imported as a copy, never overwritten
      await sendJson("POST", "/experiments/import?on_conflict=copy", body);
      await mutate();
    } catch (err) {
      setActionError(err instanceof SyntaxError ? `${file.name} is not valid JSON: ${err.message}` : err);
    }
  };

  return (
    <div className="page">
      <header className="page-head">
        <h1>Experiments</h1>
        <span className="spacer" />
        <NewExperiment />
        <input
          ref={fileInput}
          type="file"
          accept="application/json,.json"
          hidden
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) void onImport(file);
            e.target.value = "";
          }}
          data-testid="import-input"
        />
        <button type="button" className="btn" onClick={() => fileInput.current?.click()}>
          Import JSON
        </button>
        <button
          type="button"
          className="btn"
          disabled={!experiments.length}
          onClick={() =>
            void getJson(`/experiments/export${query({ q, status, tag, favorite: favorite ? "true" : "" })}`)
              .then((data) => download("experiments.json", data))
              .catch(setActionError)
          }
        >
          Export all
        </button>
      </header>
      <div className="filters" role="search">
        <label className="filter">
          <span>Search</span>
          <input
            type="search"
            value={text}
            placeholder="name or description"
            onChange={(e) => setText(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter") setSearch({ q: text.trim() || null });
            }}
            onBlur={() => setSearch({ q: text.trim() || null })}
            aria-label="Search experiments"
          />
        </label>
        <label className="filter">
          <span>Status</span>
          <select value={status} onChange={(e) => setSearch({ status: e.target.value || null })} aria-label="Experiment status">
            <option value="">any</option>
            <option value="draft">draft</option>
            <option value="running">running</option>
            <option value="completed">completed</option>
            <option value="failed">failed</option>
          </select>
        </label>
        <label className="filter checkbox">
          <input type="checkbox" checked={favorite} onChange={(e) => setSearch({ favorite: e.target.checked ? "true" : null })} />
          <span>{"\u2605"} favourites only</span>
        </label>
        {tag && (
          <span className="filter">
            <span>Tag</span>
            <button type="button" className="tag on" onClick={() => setSearch({ tag: null })} title="Remove tag filter">
              {tag} {"\u2715"}
            </button>
          </span>
        )}
      </div>
      <ErrorNote error={actionError} />
      {noBackend ? (
        <ErrorNote error="The experiments API is not available on this gateway." />
      ) : (
        <ErrorNote error={error} onRetry={() => void mutate()} />
      )}
      <div className="table-wrap">
        <table className="spans-table experiments-table" data-testid="experiments-table">
          <thead>
            <tr>
              <th aria-label="Favourite" />
              <th>Name</th>
              <th>Original</th>
              <th>Status</th>
              <th>Latest run vs original</th>
              <th>Model</th>
              <th>Created</th>
              <th>Updated</th>
              <th>Tags</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {experiments.map((exp) => (
              <Row key={exp.id} exp={exp} onChanged={() => mutate()} onError={setActionError} />
            ))}
          </tbody>
        </table>
        {!isLoading && !error && experiments.length === 0 && (
          <div className="empty">
            <p>
              No experiments{q || status || tag || favorite ? " match" : " yet"}. Open a call on the <Link to="/">Traces</Link> page and
              press <strong>Experiment</strong>.
            </p>
          </div>
        )}
        <div className="list-foot">
          {hasMore && (
            <button type="button" className="btn" disabled={isValidating} onClick={() => void setSize(size + 1)}>
              Load more
            </button>
          )}
        </div>
      </div>
    </div>
  );
}
