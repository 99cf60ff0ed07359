// A rating's pieces, shared by the grid's cells and the span detail: thumbs buttons,
// the note field, and score chips (value and source; the note — an LLM judge's reason —
// on hover, and shown under the chip on click or Enter). Everything is text, never markup.

import { useEffect, useRef, useState } from "react";
import { scoreText, sourceText, type Feedback, type MetricKind, type Score } from "../lib/feedback";

export function Thumbs({
  thumbs,
  label,
  onThumbs,
}: {
  thumbs: boolean | null;
  label: string;
  onThumbs: (pressed: boolean) => void;
}) {
  return (
    <span className="rating-thumbs">
      <button
        type="button"
        className={thumbs === true ? "btn btn-small thumb on-up" : "btn btn-small thumb"}
        aria-pressed={thumbs === true}
        aria-label={`Thumbs up for ${label}`}
        title="Thumbs up (1)"
        data-testid="thumbs-up"
        onClick={() => onThumbs(true)}
      >
        {"\u25b2 up"}
      </button>
      <button
        type="button"
        className={thumbs === false ? "btn btn-small thumb on-down" : "btn btn-small thumb"}
        aria-pressed={thumbs === false}
        aria-label={`Thumbs down for ${label}`}
        title="Thumbs down (2)"
        data-testid="thumbs-down"
        onClick={() => onThumbs(false)}
      >
        {"\u25bc down"}
      </button>
    </span>
  );
}

export function NoteField({
  initial,
  label,
  onSave,
  onCancel,
}: {
  initial: string;
  label: string;
  onSave: (note: string | null) => void;
  onCancel: () => void;
}) {
  const [text, setText] = useState(initial);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <form
      className="rating-note-form"
      onSubmit={(e) => {
        e.preventDefault();
        onSave(text.trim() ? text : null);
      }}
    >
      <input
        ref={input}
        type="text"
        value={text}
        aria-label={`Note for ${label}`}
        data-testid="note-input"
        maxLength={10000}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            e.preventDefault();
            e.stopPropagation();
            onCancel();
          }
        }}
      />
      <button type="submit" className="btn btn-small">
        Save
      </button>
      <button type="button" className="btn btn-small" onClick={onCancel}>
        Cancel
      </button>
    </form>
  );
}

export function ScoreChip({ score, kind }: { score: Score; kind?: MetricKind }) {
  const [open, setOpen] = useState(false);
  const reason = score.error?.message ?? score.note;
  const text = `${score.metric_key}: ${scoreText(score, kind)}`;
  return (
    <span className="score-chip-wrap">
      <button
        type="button"
        className={score.error ? "score-chip score-error" : "score-chip"}
        title={reason ?? undefined}
        aria-expanded={reason ? open : undefined}
        data-testid="score-chip"
        data-source={score.source}
        onClick={() => reason && setOpen(!open)}
      >
        {text} <span className="score-source">{sourceText(score.source)}</span>
      </button>
      {open && reason && (
        <span className="score-reason" data-testid="score-reason">
          {reason}
        </span>
      )}
    </span>
  );
}

export function CellRating({
  label,
  feedback,
  scores,
  noteOpen,
  onThumbs,
  onNote,
  onNoteOpen,
}: {
  label: string;
  feedback: Feedback | null;
  scores: Score[];
  noteOpen: boolean;
  onThumbs: (pressed: boolean) => void;
  onNote: (note: string | null) => void;
  onNoteOpen: (open: boolean) => void;
}) {
  return (
    <div className="cell-rating" data-testid="cell-rating">
      <div className="cell-rating-row">
        <Thumbs thumbs={feedback?.thumbs_up ?? null} label={label} onThumbs={onThumbs} />
        {!noteOpen && (
          <button type="button" className="btn btn-small" onClick={() => onNoteOpen(true)} title="Note (n)">
            {feedback?.note ? "Edit note" : "Note"}
          </button>
        )}
      </div>
      {noteOpen ? (
        <NoteField initial={feedback?.note ?? ""} label={label} onSave={onNote} onCancel={() => onNoteOpen(false)} />
      ) : (
        feedback?.note && (
          <div className="rating-note small" data-testid="cell-note">
            {feedback.note}
          </div>
        )
      )}
      {scores.length > 0 && (
        <div className="score-chips">
          {scores.map((s) => (
            <ScoreChip key={s.id} score={s} />
          ))}
        </div>
      )}
    </div>
  );
}
