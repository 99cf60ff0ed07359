// The inputs of a matrix experiment: paste one per line, upload a file (JSONL, CSV,
// text), or take a dataset version's items; listed with their expected output and
// source span, each removable.

import { useId, useRef, useState } from "react";
import useSWR from "swr";
import { ApiError, sendJson } from "../lib/api";
import { fmtInt, truncate } from "../lib/format";
import { formatOf, locateError, parseInputFile } from "../lib/inputFile";
import { expectedText, inputPreview } from "../lib/matrix";
import { Link } from "../lib/router";
import type { Dataset, MatrixInput } from "../lib/types";
import { ErrorNote } from "./common";
import "../styles/inputs-upload.css";

/** Pasted text as inputs: one per non-blank line, trimmed. */
export function linesOf(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
}

/** Keys for new inputs that no existing input has (`input-N`, numbered on from the
 * list): the gateway numbers keyless inputs from 1 in each batch, so a second paste
 * would collide with the first. */
export function freshKeys(existing: string[], count: number): string[] {
  const used = new Set(existing);
  const keys: string[] = [];
  for (let n = existing.length + 1; keys.length < count; n++) {
    const key = `input-${n}`;
    if (!used.has(key)) keys.push(key);
  }
  return keys;
}

export function InputsPanel({
  experimentId,
  inputs,
  onChanged,
}: {
  experimentId: string;
  inputs: MatrixInput[];
  onChanged: () => Promise<unknown>;
}) {
  const [text, setText] = useState("");
  const [datasetId, setDatasetId] = useState("");
  const [version, setVersion] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [fileError, setFileError] = useState<string | null>(null);
  const [fileNote, setFileNote] = useState<string | null>(null);
  const fileField = useRef<HTMLInputElement>(null);
  const fileErrorId = useId();
  const { data: datasets } = useSWR<{ data: Dataset[] }>("/datasets?limit=200", { shouldRetryOnError: false });
  const base = `/experiments/${encodeURIComponent(experimentId)}/inputs`;
  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
      await onChanged();
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setBusy(false);
    }
  };
  const addLines = async () => {
    const lines = linesOf(text);
    if (!lines.length) {
      setError("Paste one input per line first.");
      return;
    }
    const keys = freshKeys(
      inputs.map((i) => i.key),
      lines.length,
    );
    const body = { inputs: lines.map((content, i) => ({ key: keys[i], content })) };
    if (await act(() => sendJson("POST", base, body))) setText("");
  };
  const addFile = async (file: File | undefined) => {
    setFileError(null);
    setFileNote(null);
    if (!file) return;
    const parsed = parseInputFile(await file.text(), formatOf(file.name));
    if (!parsed.ok) {
      setFileError(`${file.name}: ${parsed.error}`);
      return;
    }
    const keys = freshKeys(
      [...inputs.map((i) => i.key), ...parsed.inputs.flatMap((i) => (i.key ? [i.key] : []))],
      parsed.inputs.filter((i) => !i.key).length,
    );
    let next = 0;
    const body = { inputs: parsed.inputs.map((input) => (input.key ? input : { ...input, key: keys[next++] })) };
    setBusy(true);
    try {
      await sendJson("POST", base, body);
      await onChanged();
      setFileNote(`${fmtInt(parsed.inputs.length)} input${parsed.inputs.length === 1 ? "" : "s"} added from ${file.name}.`);
      if (fileField.current) fileField.current.value = "";
    } catch (err) {
      const message = err instanceof ApiError ? locateError(err.message, err.param, parsed) : err instanceof Error ? err.message : String(err);
      setFileError(`${file.name}: ${message}`);
    } finally {
      setBusy(false);
    }
  };
  const addDataset = async () => {
    if (!datasetId) return;
    const body: Record<string, string | number> = { datasetId };
    if (version.trim()) body.version = Number(version);
    await act(() => sendJson("POST", base, body));
  };
  const chosen = datasets?.data.find((d) => d.id === datasetId);
  return (
    <section className="section matrix-panel" data-testid="inputs-panel" aria-labelledby="inputs-title">
      <header className="section-head">
        <h3 id="inputs-title">Inputs ({fmtInt(inputs.length)})</h3>
      </header>
      <div className="matrix-inputs-add">
        <label className="matrix-wide">
          <span>Paste inputs, one per line</span>
          <textarea rows={3} value={text} onChange={(e) => setText(e.target.value)} aria-label="Inputs, one per line" />
        </label>
        <button type="button" className="btn btn-small" disabled={busy || !text.trim()} onClick={() => void addLines()}>
          Add {fmtInt(linesOf(text).length)} input{linesOf(text).length === 1 ? "" : "s"}
        </button>
        <div className="inputs-upload">
          <label>
            <span>Upload a file: JSONL, CSV or text (one input per line)</span>
            <input
              ref={fileField}
              type="file"
              accept=".jsonl,.ndjson,.csv,.txt,text/plain,text/csv,application/x-ndjson"
              disabled={busy}
              aria-invalid={fileError ? true : undefined}
              aria-describedby={fileError ? fileErrorId : undefined}
              aria-label="Upload inputs file"
              data-testid="inputs-file"
              onChange={(e) => void addFile(e.target.files?.[0])}
            />
          </label>
          {fileError && (
            <p id={fileErrorId} className="inputs-upload-error" role="alert" data-testid="inputs-file-error">
              {fileError}
            </p>
          )}
          {fileNote && (
            <p className="muted small" role="status" data-testid="inputs-file-note">
              {fileNote}
            </p>
          )}
        </div>
        <div className="matrix-dataset">
          <label>
            <span>Dataset</span>
            <select value={datasetId} onChange={(e) => setDatasetId(e.target.value)} aria-label="Dataset">
              <option value="">{datasets?.data.length ? "choose a dataset" : "no datasets"}</option>
              {(datasets?.data ?? []).map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name} ({fmtInt(d.item_count)} items, v{d.version})
                </option>
              ))}
            </select>
          </label>
          <label>
            <span>Version</span>
            <input type="number" min="1" step="1" value={version} placeholder={chosen ? String(chosen.version) : "latest"} onChange={(e) => setVersion(e.target.value)} aria-label="Dataset version" />
          </label>
          <button type="button" className="btn btn-small" disabled={busy || !datasetId} onClick={() => void addDataset()}>
            Add items
          </button>
        </div>
      </div>
      <ErrorNote error={error} />
      {inputs.length === 0 ? (
        <p className="muted small">No inputs yet.</p>
      ) : (
        <ul className="matrix-list" data-testid="input-list">
          {inputs.map((input) => {
            const expected = expectedText(input);
            return (
              <li key={input.id} data-testid="input-item" data-input-id={input.id}>
                <div className="matrix-item-main">
                  <code>{input.key}</code> <span>{truncate(inputPreview(input), 160)}</span>
                  {expected !== null && <div className="muted small">expected: {truncate(expected, 120)}</div>}
                  {input.dataset_id && (
                    <div className="muted small">
                      dataset {input.dataset_id} v{input.dataset_version}
                    </div>
                  )}
                  {input.source_span_id && (
                    <div className="small">
                      <Link to={`/spans/${encodeURIComponent(input.source_span_id)}`}>source span</Link>
                    </div>
                  )}
                </div>
                {input.id !== "original" && (
                  <button
                    type="button"
                    className="btn btn-small btn-danger"
                    disabled={busy}
                    aria-label={`Remove input ${input.key}`}
                    onClick={() => void act(() => sendJson("DELETE", `${base}/${encodeURIComponent(input.id)}`))}
                  >
                    Remove
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
