import { quotaLines, type QuotaUsage as Usage } from "../lib/quotas";
import "../styles/quotas.css";

/** A key's or project's usage in the current windows against its limits (read-only:
 * limits are set with `spanlab keys update` or PATCH /keys/{id}). Plain text and a
 * <meter> per limited window: readable by a screen reader, nothing to focus. */
export function QuotaUsage({ usage, name }: { usage: Usage | undefined; name: string }) {
  const lines = quotaLines(usage);
  if (lines.length === 0) return <span className="muted">{"\u2013"}</span>;
  return (
    <ul className="quota-usage" aria-label={`Usage and limits of ${name}`} data-testid="quota-usage">
      {lines.map((l) => {
        const reached = l.fraction !== null && l.fraction >= 1;
        return (
          <li key={l.label} className={reached ? "quota-reached" : undefined}>
            <span>
              {l.used}
              {l.limit !== null ? ` / ${l.limit}` : ""}
            </span>
            <span className="quota-label">{l.label}</span>
            {l.fraction !== null ? (
              <meter min={0} max={1} value={Math.min(l.fraction, 1)} aria-label={`${l.label}: ${l.used} of ${l.limit}`} />
            ) : (
              <span className="quota-none">(no limit)</span>
            )}
            {reached && <span>reached</span>}
          </li>
        );
      })}
    </ul>
  );
}
