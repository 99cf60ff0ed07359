// The grid of a matrix run: one row per input, one column per variant, each cell's
// repetitions stacked: status, output (truncated, expandable; as text, never markup),
// latency, cost, a word diff against the input's expected output when it has one, and
// a link to the cell's span.

import { diffWords } from "diff";
import { useState } from "react";
import { fmtCost, fmtMs, truncate } from "../lib/format";
import { expectedText, inputPreview, type GridModel, type GridSlot } from "../lib/matrix";
import { Link } from "../lib/router";
import { StatusBadge } from "./common";

const SHORT = 160;

function errorText(error: unknown): string | null {
  if (!error || typeof error !== "object") return typeof error === "string" ? error : null;
  const e = error as Record<string, unknown>;
  return typeof e.message === "string" ? e.message : JSON.stringify(error);
}

function Slot({ slot, expected, label }: { slot: GridSlot; expected: string | null; label: string }) {
  const [open, setOpen] = useState(false);
  const [diff, setDiff] = useState(false);
  const cell = slot.cell;
  if (!cell) {
    return (
      <div className="matrix-slot missing" data-testid="matrix-slot" data-status="missing">
        <StatusBadge status="not run" />
      </div>
    );
  }
  const output = cell.output_text ?? "";
  const long = output.length > SHORT;
  const error = errorText(cell.error);
  return (
    <div className="matrix-slot" data-testid="matrix-slot" data-status={cell.status} data-cell-id={cell.id}>
      <div className="matrix-slot-head">
        <StatusBadge status={cell.status} title={error ?? undefined} />
        <span className="small" title="latency">
          {fmtMs(cell.duration_ms)}
        </span>
        <span className="small" title="cost">
          {fmtCost(cell.cost_usd)}
        </span>
        {cell.result_span_id && (
          <Link className="small" to={`/spans/${encodeURIComponent(cell.result_span_id)}`} aria-label={`Span of ${label}`}>
            span
          </Link>
        )}
      </div>
      {diff && expected !== null ? (
        <div className="matrix-output diff" data-testid="matrix-diff">
          {diffWords(expected, output).map((part, i) =>
            part.added ? (
              <ins key={i}>{part.value}</ins>
            ) : part.removed ? (
              <del key={i}>{part.value}</del>
            ) : (
              <span key={i}>{part.value}</span>
            ),
          )}
        </div>
      ) : (
        output && (
          <div className="matrix-output" data-testid="matrix-output">
            {open || !long ? output : truncate(output, SHORT)}
          </div>
        )
      )}
      {error && cell.status !== "completed" && <div className="matrix-error small">{truncate(error, 200)}</div>}
      <div className="matrix-slot-tools">
        {long && !diff && (
          <button type="button" className="btn btn-small" aria-expanded={open} onClick={() => setOpen(!open)}>
            {open ? "Less" : "More"}
          </button>
        )}
        {expected !== null && output && (
          <button type="button" className="btn btn-small" aria-pressed={diff} onClick={() => setDiff(!diff)}>
            Diff vs expected
          </button>
        )}
      </div>
    </div>
  );
}

export function MatrixGrid({ grid }: { grid: GridModel }) {
  if (!grid.variants.length || !grid.inputs.length) {
    return <p className="muted small">Add variants and inputs to see the grid.</p>;
  }
  return (
    <div className="table-wrap matrix-grid-wrap">
      <table className="matrix-grid" data-testid="matrix-grid">
        <thead>
          <tr>
            <th scope="col">Input</th>
            {grid.variants.map((v) => (
              <th key={v.id} scope="col" data-testid="matrix-col">
                {v.name}
                {typeof v.config?.model === "string" && <div className="muted small">{v.config.model}</div>}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {grid.rows.map((row) => {
            const expected = expectedText(row.input);
            return (
              <tr key={row.input.id} data-testid="matrix-row" data-input-id={row.input.id}>
                <th scope="row">
                  <code>{row.input.key}</code>
                  <div className="small">{truncate(inputPreview(row.input), 100)}</div>
                  {expected !== null && <div className="muted small">expected: {truncate(expected, 80)}</div>}
                </th>
                {grid.variants.map((variant, col) => (
                  <td key={variant.id} data-variant-id={variant.id}>
                    {(row.slots[col] ?? []).map((slot) => (
                      <div key={slot.repetition} className="matrix-rep">
                        {grid.repetitions > 1 && <span className="muted small">#{slot.repetition}</span>}
                        <Slot slot={slot} expected={expected} label={`${row.input.key} on ${variant.name} #${slot.repetition}`} />
                      </div>
                    ))}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
