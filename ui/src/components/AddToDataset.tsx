// "Add to dataset" from Traces: the selected calls become items of a dataset (an
// existing one or one made here) through POST /datasets/{id}/items/from-spans.

import { useState } from "react";
import useSWR from "swr";
import { sendJson } from "../lib/api";
import type { Dataset } from "../lib/datasets";
import { fmtInt } from "../lib/format";
import { Link } from "../lib/router";
import type { Page } from "../lib/types";
import { ErrorNote } from "./common";
import "../styles/lab.css";

const NEW = "\u0000new";

interface FromSpans {
  dataset: Dataset;
  added: number;
  skipped: { span_id: string; reason: string }[];
}

export function AddToDataset({ selected, onClear }: { selected: string[]; onClear: () => void }) {
  const [open, setOpen] = useState(false);
  const { data } = useSWR<Page<Dataset>>(open ? "/datasets?limit=1000" : null, { shouldRetryOnError: false });
  const [target, setTarget] = useState("");
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<FromSpans | null>(null);
  const datasets = data?.data ?? [];
  const choice = target || (datasets.length ? datasets[0]!.id : NEW);

  const add = async () => {
    setBusy(true);
    setError(null);
    try {
      let id = choice;
      if (choice === NEW) {
        if (!name.trim()) throw new Error("Name the new dataset");
        id = (await sendJson<Dataset>("POST", "/datasets", { name: name.trim() })).id;
      }
      const answer = await sendJson<FromSpans>("POST", `/datasets/${encodeURIComponent(id)}/items/from-spans`, { span_ids: selected });
      setDone(answer);
      setOpen(false);
      setName("");
      setTarget("");
      onClear();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (!selected.length) {
    if (!done) return null;
    return (
      <div className="selection-bar" role="status" data-testid="add-result">
        Added {fmtInt(done.added)} to <Link to={`/datasets?id=${encodeURIComponent(done.dataset.id)}`}>{done.dataset.name}</Link>
        {done.skipped.length > 0 && <span className="muted small"> ({fmtInt(done.skipped.length)} skipped: {done.skipped[0]!.reason})</span>}
        <button type="button" className="btn btn-small" onClick={() => setDone(null)} aria-label="Dismiss">
          {"\u2715"}
        </button>
      </div>
    );
  }
  return (
    <div className="selection-bar" data-testid="selection-bar">
      <span>
        <strong>{fmtInt(selected.length)}</strong> selected
      </span>
      {!open ? (
        <button type="button" className="btn btn-primary btn-small" onClick={() => setOpen(true)} data-testid="add-to-dataset">
          Add {fmtInt(selected.length)} to dataset
        </button>
      ) : (
        <form
          className="selection-form"
          onSubmit={(e) => {
            e.preventDefault();
            void add();
          }}
        >
          <label className="inline-field">
            Dataset
            <select value={choice} onChange={(e) => setTarget(e.target.value)} aria-label="Dataset" data-testid="dataset-choice" autoFocus>
              {datasets.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name} ({fmtInt(d.item_count)})
                </option>
              ))}
              <option value={NEW}>New dataset…</option>
            </select>
          </label>
          {choice === NEW && (
            <input value={name} onChange={(e) => setName(e.target.value)} placeholder="New dataset's name" aria-label="New dataset's name" data-testid="new-dataset-name" />
          )}
          <button type="submit" className="btn btn-primary btn-small" disabled={busy} data-testid="add-confirm">
            {busy ? "Adding…" : `Add ${fmtInt(selected.length)}`}
          </button>
          <button type="button" className="btn btn-small" onClick={() => setOpen(false)}>
            Cancel
          </button>
        </form>
      )}
      <button type="button" className="btn btn-small" onClick={onClear}>
        Clear selection
      </button>
      {error !== null && <ErrorNote error={error} />}
    </div>
  );
}
