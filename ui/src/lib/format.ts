// Display formatting. Missing values show as an en dash, never as 0.

export const DASH = "\u2013";

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

const MINUS = "\u2212";

/** Money in US dollars, never in exponent notation: two decimals from a cent up
 * (`$4.10`, `$1,234.50`), three significant digits below it (`$0.0123`, `$0.0000041`),
 * so a sub-cent call cost is still told apart from zero. */
export function fmtCost(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || !Number.isFinite(usd)) return DASH;
  if (usd === 0) return "$0";
  const abs = Math.abs(usd);
  const sign = usd < 0 ? MINUS : "";
  if (abs >= 0.01) {
    return `${sign}$${abs.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: abs >= 1 ? 2 : 4 })}`;
  }
  // three significant digits, capped so a float's noise never turns into 30 zeros
  const decimals = Math.min(20, Math.max(2, 2 - Math.floor(Math.log10(abs))));
  let text = abs.toFixed(decimals);
  if (text.includes(".")) text = text.replace(/0+$/, "");
  const [whole, frac = ""] = text.split(".");
  return `${sign}$${whole}.${frac.padEnd(2, "0")}`;
}

/** A price per million tokens, e.g. `$4.10 per 1M`. */
export function fmtPrice(usdPerMillion: number | null | undefined): string {
  if (usdPerMillion === null || usdPerMillion === undefined || !Number.isFinite(usdPerMillion)) return DASH;
  const abs = Math.abs(usdPerMillion);
  const money =
    abs >= 0.01 || abs === 0
      ? `${usdPerMillion < 0 ? MINUS : ""}$${abs.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`
      : fmtCost(usdPerMillion);
  return `${money} per 1M`;
}

export function fmtInt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
  return n.toLocaleString("en-US");
}

/** A count in a few characters, for chart axes and tight cells: 950, 1.2k, 3.4M. */
export function fmtCompact(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
  const abs = Math.abs(n);
  const sign = n < 0 ? MINUS : "";
  for (const [size, unit] of [[1e9, "B"], [1e6, "M"], [1e3, "k"]] as const) {
    if (abs >= size) {
      const v = abs / size;
      return `${sign}${v >= 100 ? Math.round(v) : Number(v.toFixed(1))}${unit}`;
    }
  }
  return `${sign}${Number.isInteger(abs) ? abs : Number(abs.toFixed(2))}`;
}

/** A fraction as a percent, e.g. 0.0412 -> "4.1%". */
export function fmtPercent(fraction: number | null | undefined, digits = 1): string {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return DASH;
  const text = (Math.abs(fraction) * 100).toFixed(digits);
  return `${fraction < 0 && Number(text) !== 0 ? MINUS : ""}${text}%`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const time = d.toLocaleTimeString(undefined, { hour12: false });
  return sameDay ? time : `${d.toLocaleDateString()} ${time}`;
}

export function fmtUs(us: number | null | undefined): string {
  if (us === null || us === undefined) return DASH;
  return fmtTime(new Date(us / 1000).toISOString());
}

export function fmtRelative(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  const seconds = Math.round((Date.now() - d.getTime()) / 1000);
  if (Number.isNaN(seconds)) return iso;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return d.toLocaleDateString();
}

/** A span's tags as "k=v, k2=v2". Tolerant of what an older or odd record may hold
 * (a list, a non-string value), so one record can never break the page. */
export function fmtTags(tags: unknown): string {
  if (tags === null || tags === undefined) return DASH;
  let parts: string[];
  if (Array.isArray(tags)) parts = tags.map((t) => (typeof t === "string" ? t : JSON.stringify(t)));
  else if (typeof tags === "object")
    parts = Object.entries(tags).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  else parts = [String(tags)];
  return parts.length ? parts.join(", ") : DASH;
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return DASH;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/** What the gateway says it left out of a span's record, as one sentence per fact
 * (`truncated_capture`, `spanlab.capture.dropped`), or none. Tolerant of odd values. */
export function captureNotes(attributes: unknown): string[] {
  if (attributes === null || typeof attributes !== "object" || Array.isArray(attributes)) return [];
  const attrs = attributes as Record<string, unknown>;
  const notes: string[] = [];
  const cut = attrs["truncated_capture"];
  if (cut !== null && typeof cut === "object" && !Array.isArray(cut)) {
    const { max_capture_bytes: kept, response_bytes: whole } = cut as Record<string, unknown>;
    const num = (v: unknown) => (typeof v === "number" ? v : null);
    notes.push(
      `Output truncated in the record: the span keeps ${fmtBytes(num(kept))} of a ${fmtBytes(num(whole))} response (max_capture_bytes); the client got all of it.`,
    );
  }
  const dropped = attrs["spanlab.capture.dropped"];
  if (dropped !== undefined && dropped !== null) {
    const what = Array.isArray(dropped) ? dropped.map(String).join(", ") : String(dropped);
    notes.push(`Left out of the record (nested too deeply to store): ${what}.`);
  }
  return notes;
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}\u2026` : text;
}

/** Signed delta and percent change, e.g. "+12 (+8.5%)". */
export function fmtDelta(
  before: number | null | undefined,
  after: number | null | undefined,
  format: (n: number) => string = (n) => fmtInt(n),
): string {
  if (before === null || before === undefined || after === null || after === undefined) return DASH;
  const delta = after - before;
  const sign = delta > 0 ? "+" : delta < 0 ? "\u2212" : "\u00b1";
  const pct = delta === 0 ? "0%" : before === 0 ? "n/a" : `${((delta / before) * 100).toFixed(1)}%`;
  const pctSigned = pct.startsWith("-") ? `\u2212${pct.slice(1)}` : delta > 0 && pct !== "n/a" ? `+${pct}` : pct;
  return `${sign}${format(Math.abs(delta))} (${pctSigned})`;
}

/** A score or other plain figure: two significant digits under 1 (0.12, 0.0034), up to
 * two decimals below 100 (1.5, 12.34), whole numbers beyond; the sign as a minus. */
export function fmtScore(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
  const abs = Math.abs(n);
  if (abs === 0) return "0";
  const sign = n < 0 ? MINUS : "";
  if (abs >= 100) return `${sign}${Math.round(abs).toLocaleString("en-US")}`;
  if (abs >= 1) return `${sign}${Number(abs.toFixed(2))}`;
  if (abs >= 0.0001) return `${sign}${Number(abs.toPrecision(2))}`;
  return `${sign}${abs.toExponential(1)}`;
}
