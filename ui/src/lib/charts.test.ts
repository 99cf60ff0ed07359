import { describe, expect, it } from "vitest";
import {
  barRects,
  bucketKey,
  describeSeries,
  fillBuckets,
  keyStart,
  linePath,
  pickBucket,
  type StatsRow,
} from "./charts";

const HOUR = 3_600_000;
const row = (group: string, calls: number, extra: Partial<StatsRow> = {}): StatsRow => ({
  group,
  calls,
  errors: 0,
  total_tokens: 0,
  cost_usd: null,
  latency_p50_ms: null,
  latency_p95_ms: null,
  ...extra,
});

describe("pickBucket", () => {
  it("picks minutes up to 3 h, hours up to 8 days, then days", () => {
    expect(pickBucket(0, 15 * 60_000)).toBe("minute");
    expect(pickBucket(0, 3 * HOUR)).toBe("minute");
    expect(pickBucket(0, 24 * HOUR)).toBe("hour");
    expect(pickBucket(0, 7 * 24 * HOUR)).toBe("hour");
    expect(pickBucket(0, 30 * 24 * HOUR)).toBe("day");
    expect(pickBucket(5, 5)).toBe("minute"); // one instant of data
  });
});

describe("bucketKey", () => {
  it("writes each bucket as the server's SQL strftime groups it (UTC)", () => {
    const t = Date.UTC(2026, 11, 2, 14, 37, 12);
    expect(bucketKey(t, "minute")).toBe("2026-12-02T14:37:00Z");
    expect(bucketKey(t, "hour")).toBe("2026-12-02T14:00:00Z");
    expect(bucketKey(t, "day")).toBe("2026-12-02");
    expect(keyStart("2026-12-02", "day")).toBe(Date.UTC(2026, 11, 2));
    expect(keyStart("2026-12-02T14:00:00Z", "hour")).toBe(Date.UTC(2026, 11, 2, 14));
  });
});

describe("fillBuckets", () => {
  const from = Date.UTC(2026, 0, 1, 10, 20);
  const to = Date.UTC(2026, 0, 1, 13, 5);
  it("gives every bucket of the range, oldest first, a missing one as no row", () => {
    const points = fillBuckets([row("2026-01-01T12:00:00Z", 7), row("2026-01-01T10:00:00Z", 2)], "hour", from, to);
    expect(points.map((p) => p.key)).toEqual([
      "2026-01-01T10:00:00Z",
      "2026-01-01T11:00:00Z",
      "2026-01-01T12:00:00Z",
      "2026-01-01T13:00:00Z",
    ]);
    expect(points.map((p) => p.row?.calls ?? null)).toEqual([2, null, 7, null]);
  });

  it("keeps rows outside the range, and only the rows past maxBuckets", () => {
    const outside = fillBuckets([row("2026-01-01T09:00:00Z", 1)], "hour", from, to);
    expect(outside.map((p) => p.key)[0]).toBe("2026-01-01T09:00:00Z");
    expect(outside).toHaveLength(5);
    const sparse = fillBuckets([row("2026-01-01T12:00:00Z", 3), row("2026-01-01T10:00:00Z", 1)], "minute", from, to + 400 * 60_000, 100);
    expect(sparse.map((p) => p.row?.calls)).toEqual([1, 3]);
  });
});

describe("SVG geometry", () => {
  it("scales bars to the largest value and leaves zeros out", () => {
    const rects = barRects([2, 0, 4, null], 100, 40);
    expect(rects).toHaveLength(2);
    expect(rects[1]).toMatchObject({ y: 0, height: 40 });
    expect(rects[0]).toMatchObject({ y: 20, height: 20 });
    expect(rects[0]!.x).toBeLessThan(rects[1]!.x);
    expect(barRects([0, 0], 100, 40)).toEqual([]);
  });

  it("breaks a line where a bucket has no value", () => {
    expect(linePath([10, 20, null, 20], 40, 20)).toBe("M5 10 L15 0 M35 0 h0");
    expect(linePath([null, 5, null, null], 40, 20)).toBe("M15 0 h0");
    expect(linePath([null, null], 40, 20)).toBe("");
  });
});

describe("describeSeries", () => {
  it("says the total and the peak, and when", () => {
    const points = fillBuckets([], "hour", Date.UTC(2026, 0, 1, 10), Date.UTC(2026, 0, 1, 12));
    const text = describeSeries("calls", points, [3, 9, 1], (n) => String(n), "hour");
    expect(text).toMatch(/^calls 13 in all, peak 9 at /);
    expect(describeSeries("p50", points, [null, 120, 80], (n) => `${n} ms`, "hour", { total: false })).toMatch(
      /^p50 from 80 ms, peak 120 ms at /,
    );
    expect(describeSeries("cost", points, [null, null, null], String, "hour")).toBe("cost: none");
  });
});
