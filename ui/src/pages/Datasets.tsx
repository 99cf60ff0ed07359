import { useRef, useState } from "react";
import useSWR from "swr";
import { ErrorNote } from "../components/common";
import { getJson, query, sendJson } from "../lib/api";
import { expectedPreview, importBody, inputPreview, type Dataset, type DatasetItem, type ImportFormat } from "../lib/datasets";
import { fmtInt, fmtRelative, truncate } from "../lib/format";
import { Link, navigate, useLocation } from "../lib/router";
import type { Page } from "../lib/types";
import "../styles/lab.css";

const PAGE_SIZE = 50;

function CreateDataset({ onCreated }: { onCreated: (d: Dataset) => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="filters ds-create"
      aria-label="New dataset"
      onSubmit={(e) => {
        e.preventDefault();
        if (!name.trim()) return;
        setBusy(true);
        setError(null);
        sendJson<Dataset>("POST", "/datasets", { name: name.trim(), ...(description.trim() ? { description: description.trim() } : {}) })
          .then((d) => {
            setName("");
            setDescription("");
            onCreated(d);
          })
          .catch(setError)
          .finally(() => setBusy(false));
      }}
    >
      <label className="filter">
        <span>Name</span>
        <input value={name} onChange={(e) => setName(e.target.value)} aria-label="Dataset name" data-testid="ds-new-name" />
      </label>
      <label className="filter">
        <span>Description</span>
        <input value={description} onChange={(e) => setDescription(e.target.value)} aria-label="Dataset description" placeholder="optional" />
      </label>
      <button type="submit" className="btn btn-primary" disabled={busy || !name.trim()} data-testid="ds-create">
        Create dataset
      </button>
      {error !== null && <ErrorNote error={error} />}
    </form>
  );
}

function DatasetList() {
  const { data, error, mutate } = useSWR<Page<Dataset>>("/datasets?limit=200", { shouldRetryOnError: false });
  return (
    <div className="page ds-page" data-testid="datasets-page">
      <header className="page-head">
        <h1>Datasets</h1>
      </header>
      <CreateDataset onCreated={(d) => navigate(`/datasets?id=${encodeURIComponent(d.id)}`)} />
      {error !== null && error !== undefined && <ErrorNote error={error} onRetry={() => void mutate()} />}
      <div className="table-wrap">
        <table className="spans-table">
          <thead>
            <tr>
              <th>Name</th>
              <th className="num">Items</th>
              <th className="num">Version</th>
              <th>Updated</th>
              <th className="col-preview">Description</th>
            </tr>
          </thead>
          <tbody>
            {(data?.data ?? []).map((d) => (
              <tr key={d.id} data-testid="dataset-row" data-dataset-id={d.id}>
                <td>
                  <Link to={`/datasets?id=${encodeURIComponent(d.id)}`}>{d.name}</Link>
                </td>
                <td className="num" data-testid="dataset-count">
                  {fmtInt(d.item_count)}
                </td>
                <td className="num">v{d.version}</td>
                <td className="nowrap">{fmtRelative(d.updated_at)}</td>
                <td className="preview col-preview">{d.description ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {data && data.data.length === 0 && (
          <div className="empty">
            <p>No datasets yet. Create one above, import a file into it, or select calls in Traces and add them.</p>
          </div>
        )}
        {!data && !error && <div className="list-foot muted small">Loading…</div>}
      </div>
    </div>
  );
}

function ImportForm({ dataset, onImported }: { dataset: Dataset; onImported: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [format, setFormat] = useState<ImportFormat | "">("");
  const [expected, setExpected] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    const file = input.current?.files?.[0];
    if (!file) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const { body, error: bad } = importBody({ name: file.name, type: file.type, text: await file.text() }, { format, expectedColumn: expected });
      if (!body) {
        setError(bad);
        return;
      }
      const answer = await sendJson<{ added: number; updated: number; skipped: string[]; version: number }>(
        "POST",
        `/datasets/${encodeURIComponent(dataset.id)}/import`,
        body,
      );
      setResult(`Imported ${fmtInt(answer.added)} item(s)${answer.updated ? `, updated ${fmtInt(answer.updated)}` : ""} · version ${answer.version}`);
      if (input.current) input.current.value = "";
      onImported();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="filters ds-import"
      aria-label="Import a file"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <label className="filter">
        <span>File (JSONL or CSV)</span>
        <input ref={input} type="file" accept=".jsonl,.ndjson,.csv,text/csv,application/x-ndjson" aria-label="File to import" data-testid="ds-file" />
      </label>
      <label className="filter">
        <span>Format</span>
        <select value={format} onChange={(e) => setFormat(e.target.value as ImportFormat | "")} aria-label="Format">
          <option value="">from the file name</option>
          <option value="jsonl">JSONL</option>
          <option value="csv">CSV</option>
        </select>
      </label>
      <label className="filter">
        <span>Expected column (CSV)</span>
        <input value={expected} onChange={(e) => setExpected(e.target.value)} aria-label="Expected column" placeholder="none" />
      </label>
      <button type="submit" className="btn" disabled={busy} data-testid="ds-import">
        {busy ? "Importing…" : "Import"}
      </button>
      {result && (
        <span className="muted small" role="status" data-testid="ds-import-result">
          {result}
        </span>
      )}
      {error !== null && <ErrorNote error={error} />}
    </form>
  );
}

function DatasetView({ id }: { id: string }) {
  const { data: dataset, error, mutate } = useSWR<Dataset>(`/datasets/${encodeURIComponent(id)}`, { shouldRetryOnError: false });
  // pages by cursor: the cursors of the pages before this one, to go back
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const itemsKey = dataset ? `/datasets/${encodeURIComponent(id)}/items${query({ limit: PAGE_SIZE, cursor, v: dataset.version })}` : null;
  const items = useSWR<Page<DatasetItem>>(itemsKey, (key: string) => getJson(key.replace(/[?&]v=\d+/, "")), { shouldRetryOnError: false });
  const [confirming, setConfirming] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);

  if (error) {
    return (
      <div className="page ds-page">
        <p className="crumbs">
          <Link to="/datasets">Datasets</Link>
        </p>
        <ErrorNote error={error} onRetry={() => void mutate()} />
      </div>
    );
  }
  if (!dataset) return <div className="page muted">Loading dataset…</div>;
  const base = `/datasets/${encodeURIComponent(id)}`;
  const remove = () => {
    sendJson("DELETE", base)
      .then(() => navigate("/datasets"))
      .catch(setDeleteError);
  };
  return (
    <div className="page ds-page" data-testid="dataset-page" data-dataset-id={dataset.id}>
      <p className="crumbs">
        <Link to="/datasets">Datasets</Link> /
      </p>
      <header className="page-head ds-head">
        <h1>{dataset.name}</h1>
        <span className="muted small" data-testid="dataset-summary">
          {fmtInt(dataset.item_count)} items · version {dataset.version}
        </span>
        <span className="spacer" />
        <a className="btn btn-small" href={`${base}/export?format=jsonl`} download data-testid="export-jsonl">
          Export JSONL
        </a>
        <a className="btn btn-small" href={`${base}/export?format=csv`} download>
          Export CSV
        </a>
        {confirming ? (
          <span className="ds-confirm">
            <span className="confirm">Delete {dataset.name} and its {fmtInt(dataset.item_count)} items?</span>
            <button type="button" className="btn btn-small btn-danger" onClick={remove} data-testid="ds-delete-confirm">
              Delete
            </button>
            <button type="button" className="btn btn-small" onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </span>
        ) : (
          <button type="button" className="btn btn-small btn-danger" onClick={() => setConfirming(true)} data-testid="ds-delete">
            Delete…
          </button>
        )}
      </header>
      {dataset.description && <p className="muted">{dataset.description}</p>}
      <ErrorNote error={deleteError} />
      <ImportForm
        dataset={dataset}
        onImported={() => {
          setCursors([]);
          void mutate();
        }}
      />
      <div className="table-wrap">
        <table className="spans-table ds-items" data-testid="ds-items">
          <thead>
            <tr>
              <th>Key</th>
              <th className="col-preview">Input</th>
              <th className="col-preview">Expected output</th>
              <th>Source span</th>
            </tr>
          </thead>
          <tbody>
            {(items.data?.data ?? []).map((item) => (
              <tr key={item.id} data-testid="ds-item">
                <td className="mono small nowrap">{truncate(item.key, 40)}</td>
                <td className="preview col-preview">{truncate(inputPreview(item), 160)}</td>
                <td className="preview col-preview">{truncate(expectedPreview(item.expected_output), 160)}</td>
                <td className="nowrap">
                  {item.source_span_id ? (
                    <Link to={`/spans/${encodeURIComponent(item.source_span_id)}`} className="mono small">
                      {item.source_span_id}
                    </Link>
                  ) : (
                    <span className="muted">{"\u2013"}</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {items.data && items.data.data.length === 0 && (
          <div className="empty">
            <p>No items. Import a JSONL or CSV file above, or select calls in Traces and use “Add to dataset”.</p>
          </div>
        )}
        {items.error !== undefined && <ErrorNote error={items.error} onRetry={() => void items.mutate()} />}
        <div className="list-foot small">
          {cursors.length > 0 && (
            <button type="button" className="btn btn-small" onClick={() => setCursors(cursors.slice(0, -1))}>
              Previous
            </button>
          )}
          <span className="muted">
            {items.data ? `Items ${fmtInt(cursors.length * PAGE_SIZE + 1)}–${fmtInt(cursors.length * PAGE_SIZE + items.data.data.length)} of ${fmtInt(dataset.item_count)}` : "Loading…"}
          </span>
          {items.data?.next_cursor && (
            <button type="button" className="btn btn-small" onClick={() => setCursors([...cursors, items.data!.next_cursor!])}>
              Next
            </button>
          )}
        </div>
      </div>
    </div>
  );
}

export default function DatasetsPage() {
  const { search } = useLocation();
  const id = search.get("id");
  return id ? <DatasetView key={id} id={id} /> : <DatasetList />;
}

