// The Traces summary's charts, as plain functions: which time bucket a range gets, the
// buckets filled in (a bucket with no call is a zero, not a gap in time), SVG geometry,
// and the text a screen reader gets instead of the picture.

export type Bucket = "minute" | "hour" | "day";

export const BUCKET_MS: Record<Bucket, number> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/** One row of GET /stats (a group's totals). */
export interface StatsRow {
  group: string | null;
  calls: number;
  errors: number | null;
  prompt_tokens?: number | null;
  completion_tokens?: number | null;
  total_tokens: number | null;
  cost_usd: number | null;
  latency_avg_ms?: number | null;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  ttft_avg_ms?: number | null;
  first_time?: string | null;
  last_time?: string | null;
}

/** The bucket for a time range: about 15 to 200 of them across it. */
export function pickBucket(fromMs: number, toMs: number): Bucket {
  const span = Math.max(0, toMs - fromMs);
  if (span <= 3 * BUCKET_MS.hour) return "minute";
  if (span <= 8 * BUCKET_MS.day) return "hour";
  return "day";
}

/** The start (ms, UTC) of the bucket holding ``ms``. */
export function bucketStart(ms: number, bucket: Bucket): number {
  return Math.floor(ms / BUCKET_MS[bucket]) * BUCKET_MS[bucket];
}

/** The group the server gives a bucket (its SQL strftime, UTC). */
export function bucketKey(ms: number, bucket: Bucket): string {
  const iso = new Date(ms).toISOString();
  if (bucket === "day") return iso.slice(0, 10);
  if (bucket === "hour") return `${iso.slice(0, 13)}:00:00Z`;
  return `${iso.slice(0, 16)}:00Z`;
}

/** A server group back to its start in ms (NaN when it is not a time). */
export function keyStart(key: string, bucket: Bucket): number {
  return Date.parse(bucket === "day" ? `${key}T00:00:00Z` : key);
}

export interface Point {
  key: string;
  startMs: number;
  row: StatsRow | null;
}

/** Time buckets from ``fromMs`` to ``toMs``, oldest first, each with its row or none.
 * More than ``maxBuckets`` (a range far wider than its data): only the rows, in order. */
export function fillBuckets(rows: StatsRow[], bucket: Bucket, fromMs: number, toMs: number, maxBuckets = 400): Point[] {
  const byKey = new Map<string, StatsRow>();
  for (const row of rows) if (row.group) byKey.set(row.group, row);
  const first = bucketStart(Math.min(fromMs, toMs), bucket);
  const last = bucketStart(Math.max(fromMs, toMs), bucket);
  const count = Math.floor((last - first) / BUCKET_MS[bucket]) + 1;
  const points: Point[] = [];
  if (count <= maxBuckets) {
    for (let t = first; t <= last; t += BUCKET_MS[bucket]) {
      const key = bucketKey(t, bucket);
      points.push({ key, startMs: t, row: byKey.get(key) ?? null });
      byKey.delete(key);
    }
  }
  // Rows outside the range (or every row, past maxBuckets) are kept, in time order.
  for (const [key, row] of byKey) points.push({ key, startMs: keyStart(key, bucket), row });
  return points.sort((a, b) => a.startMs - b.startMs);
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Bars for ``values`` in a ``width`` x ``height`` box, scaled to ``max`` (default:
 * the largest value). A zero or missing value has no bar. */
export function barRects(values: (number | null)[], width: number, height: number, max?: number): Rect[] {
  const top = max ?? Math.max(0, ...values.map((v) => v ?? 0));
  if (!values.length || top <= 0) return [];
  const slot = width / values.length;
  const gap = slot > 4 ? Math.min(2, slot * 0.2) : 0;
  const rects: Rect[] = [];
  values.forEach((v, i) => {
    if (!v || v <= 0) return;
    const h = Math.max(1, (Math.min(v, top) / top) * height);
    rects.push({ x: round(i * slot + gap / 2), y: round(height - h), width: round(slot - gap), height: round(h) });
  });
  return rects;
}

/** An SVG path through ``values`` (x at each slot's middle), scaled to ``max``; a
 * missing value breaks the line (no call in that bucket: no latency to draw). A value
 * alone between gaps is a zero-length segment ("h0"): a dot, with round line caps. */
export function linePath(values: (number | null)[], width: number, height: number, max?: number): string {
  const top = max ?? Math.max(0, ...values.map((v) => v ?? 0));
  if (!values.length || top <= 0) return "";
  const slot = width / values.length;
  let path = "";
  let run = 0; // points in the current segment
  const end = () => {
    if (run === 1) path += "h0 ";
    run = 0;
  };
  values.forEach((v, i) => {
    if (v === null || v === undefined || Number.isNaN(v)) {
      end();
      return;
    }
    const x = round(i * slot + slot / 2);
    const y = round(height - (Math.min(v, top) / top) * height);
    path += `${run ? "L" : "M"}${x} ${y} `;
    run += 1;
  });
  end();
  return path.trim();
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** "14:00", "Dec 2", "14:05": a bucket's start as the axis and the summary say it. */
export function bucketLabel(startMs: number, bucket: Bucket): string {
  const d = new Date(startMs);
  if (bucket === "day") return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
}

/** The figures of a series in words, for a chart's title and aria-label: its total
 * (when a sum makes sense), its peak and when. */
export function describeSeries(
  name: string,
  points: Point[],
  values: (number | null)[],
  format: (n: number) => string,
  bucket: Bucket,
  { total = true }: { total?: boolean } = {},
): string {
  const present = values.map((v, i) => [v, i] as const).filter((p): p is readonly [number, number] => p[0] !== null);
  if (!present.length) return `${name}: none`;
  const sum = present.reduce((acc, [v]) => acc + v, 0);
  const [peak, at] = present.reduce((best, cur) => (cur[0] > best[0] ? cur : best));
  const low = present.reduce((best, cur) => (cur[0] < best[0] ? cur : best))[0];
  const when = points[at] ? bucketLabel(points[at].startMs, bucket) : "";
  const head = total ? `${name} ${format(sum)} in all` : `${name} from ${format(low)}`;
  return `${head}, peak ${format(peak)}${when ? ` at ${when}` : ""}`;
}
