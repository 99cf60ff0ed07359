// The grid of a matrix run: one row per input, one column per variant, each cell's
// repetitions stacked: status, output (truncated, expandable; as text, never markup),
// latency, cost, a word diff against the input's expected output when it has one, and
// a link to the cell's span; and its rating (CellRating): thumbs, a note, its scores.
//
// Keyboard: the cells are one roving tab stop; on a focused cell j/k move to the next
// or previous cell (row by row), 1/2 give thumbs up/down (again: clear), n opens the
// note field (Enter saves, Escape closes).

import { diffWords } from "diff";
import { useCallback, useMemo, useRef, useState, type KeyboardEvent } from "react";
import useSWR from "swr";
import { byRun, gridKey, moveIndex, sendFeedback, toggledThumbs, type Feedback, type Score } from "../lib/feedback";
import { fmtCost, fmtMs, truncate } from "../lib/format";
import { expectedText, inputPreview, toolCallLines, type GridModel, type GridSlot } from "../lib/matrix";
import { Link } from "../lib/router";
import { CellRating } from "./CellRating";
import { ErrorNote, StatusBadge } from "./common";
import "../styles/feedback.css";

const SHORT = 160;

function errorText(error: unknown): string | null {
  if (!error || typeof error !== "object") return typeof error === "string" ? error : null;
  const e = error as Record<string, unknown>;
  return typeof e.message === "string" ? e.message : JSON.stringify(error);
}

interface SlotRating {
  feedback: Feedback | null;
  scores: Score[];
  active: boolean;
  noteOpen: boolean;
  register: (el: HTMLDivElement | null) => void;
  onFocus: () => void;
  onKey: (e: KeyboardEvent<HTMLDivElement>) => void;
  onThumbs: (pressed: boolean) => void;
  onNote: (note: string | null) => void;
  onNoteOpen: (open: boolean) => void;
}

function Slot({
  slot,
  expected,
  label,
  rating,
}: {
  slot: GridSlot;
  expected: string | null;
  label: string;
  rating: SlotRating | null;
}) {
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
  const calls = toolCallLines(cell.tool_calls);
  const long = output.length > SHORT;
  const error = errorText(cell.error);
  return (
    <div
      className={rating?.active ? "matrix-slot rating-active" : "matrix-slot"}
      data-testid="matrix-slot"
      data-status={cell.status}
      data-cell-id={cell.id}
      data-thumbs={rating?.feedback?.thumbs_up === true ? "up" : rating?.feedback?.thumbs_up === false ? "down" : "none"}
      role="group"
      aria-label={label}
      tabIndex={rating ? (rating.active ? 0 : -1) : undefined}
      ref={rating?.register}
      onFocus={(e) => {
        if (e.target === e.currentTarget) rating?.onFocus();
      }}
      onKeyDown={rating?.onKey}
    >
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
      {calls.length > 0 && (
        <ul className="matrix-tool-calls small" data-testid="matrix-tool-calls" aria-label="Tool calls">
          {calls.map((line, i) => (
            <li key={i}>
              <code>{truncate(line, SHORT)}</code>
            </li>
          ))}
        </ul>
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
      {rating && (
        <CellRating
          label={label}
          feedback={rating.feedback}
          scores={rating.scores}
          noteOpen={rating.noteOpen}
          onThumbs={rating.onThumbs}
          onNote={rating.onNote}
          onNoteOpen={rating.onNoteOpen}
        />
      )}
    </div>
  );
}

/** The experiment's feedback and scores, fetched for the grid's cells. */
function useRatings(experimentId: string | null) {
  const base = experimentId ? `/experiments/${encodeURIComponent(experimentId)}` : null;
  const feedback = useSWR<{ data: Feedback[] }>(base ? `${base}/feedback` : null, { shouldRetryOnError: false });
  const scores = useSWR<{ data: Score[] }>(base ? `${base}/scores` : null, { shouldRetryOnError: false });
  const index = useMemo(() => byRun(feedback.data?.data ?? [], scores.data?.data ?? []), [feedback.data, scores.data]);
  return { index, feedback, scores };
}

export function MatrixGrid({ grid }: { grid: GridModel }) {
  const experimentId = grid.run?.experiment_id ?? null;
  const { index, feedback } = useRatings(experimentId);
  const [activeId, setActiveId] = useState<string | null>(null);
  const [noteFor, setNoteFor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const elements = useRef(new Map<string, HTMLDivElement>());
  // The cells in reading order: row by row, variant by variant, repetition by repetition.
  const order = useMemo(
    () => grid.rows.flatMap((row) => row.slots.flatMap((reps) => reps.flatMap((slot) => (slot.cell ? [slot.cell.id] : [])))),
    [grid.rows],
  );
  const current = activeId !== null && order.includes(activeId) ? activeId : (order[0] ?? null);

  const focusCell = useCallback((id: string | undefined) => {
    if (!id) return;
    setActiveId(id);
    elements.current.get(id)?.focus();
  }, []);

  const save = useCallback(
    async (runId: string, change: { thumbsUp?: boolean | null; note?: string | null }) => {
      setError(null);
      try {
        const stored = await sendFeedback({ run: runId }, change);
        if (stored) {
          await feedback.mutate(
            (old) => ({ data: [...(old?.data ?? []).filter((f) => f.run_id !== runId), stored] }),
            { revalidate: false },
          );
        }
      } catch (err) {
        setError(err);
      }
    },
    [feedback],
  );

  if (!grid.variants.length || !grid.inputs.length) {
    return <p className="muted small">Add variants and inputs to see the grid.</p>;
  }

  const ratingFor = (runId: string): SlotRating => {
    const entry = index.get(runId);
    const thumbs = entry?.feedback?.thumbs_up ?? null;
    return {
      feedback: entry?.feedback ?? null,
      scores: entry?.scores ?? [],
      active: runId === current,
      noteOpen: noteFor === runId,
      register: (el) => {
        if (el) elements.current.set(runId, el);
        else elements.current.delete(runId);
      },
      onFocus: () => setActiveId(runId),
      onKey: (e) => {
        // Keys typed into the note field (or any field) are text, not commands.
        const target = e.target as HTMLElement;
        if (target.closest("input, textarea, select")) return;
        const action = gridKey(e);
        if (action === null) return;
        e.preventDefault();
        const at = order.indexOf(runId);
        if (action === "next") focusCell(order[moveIndex(at, 1, order.length)]);
        else if (action === "prev") focusCell(order[moveIndex(at, -1, order.length)]);
        else if (action === "up" || action === "down") void save(runId, { thumbsUp: toggledThumbs(thumbs, action === "up") });
        else setNoteFor(runId);
      },
      onThumbs: (pressed) => void save(runId, { thumbsUp: toggledThumbs(thumbs, pressed) }),
      onNote: (note) => {
        setNoteFor(null);
        void save(runId, { note }).then(() => elements.current.get(runId)?.focus());
      },
      onNoteOpen: (open) => {
        setNoteFor(open ? runId : null);
        if (!open) elements.current.get(runId)?.focus();
      },
    };
  };

  return (
    <div className="table-wrap matrix-grid-wrap">
      {experimentId && (
        <p className="muted small rating-help" id="rating-help">
          Rate cells: focus one (Tab), then <kbd>j</kbd>/<kbd>k</kbd> next/previous, <kbd>1</kbd>/<kbd>2</kbd> thumbs
          up/down, <kbd>n</kbd> a note.
        </p>
      )}
      {error !== null && <ErrorNote error={error} />}
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
                        <Slot
                          slot={slot}
                          expected={expected}
                          label={`${row.input.key} on ${variant.name} #${slot.repetition}`}
                          rating={experimentId && slot.cell ? ratingFor(slot.cell.id) : null}
                        />
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
