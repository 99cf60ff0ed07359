// "New experiment" on the Experiments list: a name and a description make a matrix
// experiment (no span: its calls come from its variants and inputs), then open it.

import { useState } from "react";
import { sendJson } from "../lib/api";
import { navigate } from "../lib/router";
import type { Experiment } from "../lib/types";
import { ErrorNote } from "./common";
import "../styles/matrix.css";

export function NewExperiment() {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  if (!open) {
    return (
      <button type="button" className="btn btn-primary" onClick={() => setOpen(true)}>
        New experiment
      </button>
    );
  }
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const exp = await sendJson<Experiment>("POST", "/experiments", { kind: "matrix", name: name.trim() || undefined, description: description.trim() || undefined });
      navigate(`/experiment?id=${encodeURIComponent(exp.id)}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <form
      className="matrix-form new-experiment"
      role="dialog"
      aria-label="New experiment"
      data-testid="new-experiment"
      onSubmit={(e) => {
        e.preventDefault();
        void create();
      }}
    >
      <label className="matrix-wide">
        <span>Name</span>
        <input type="text" value={name} autoFocus onChange={(e) => setName(e.target.value)} aria-label="New experiment name" placeholder="Models on support questions" />
      </label>
      <label className="matrix-wide">
        <span>Description</span>
        <textarea rows={2} value={description} onChange={(e) => setDescription(e.target.value)} aria-label="New experiment description" />
      </label>
      <ErrorNote error={error} />
      <div className="matrix-actions">
        <button type="submit" className="btn btn-primary btn-small" disabled={busy}>
          Create
        </button>
        <button type="button" className="btn btn-small" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
