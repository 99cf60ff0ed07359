import { describe, expect, it } from "vitest";
import { latencyNote } from "./TraceSummary";

describe("latencyNote", () => {
  it("says when p50/p95 come from the rollup, and within what", () => {
    const note = latencyNote({ group_by: "total", data: [], approximate_percentiles: true, percentile_error: 0.0247 });
    expect(note).toBe("From the rollup: within 2.5% of the exact percentiles");
  });

  it("says nothing for an exact answer", () => {
    expect(latencyNote({ group_by: "total", data: [], approximate_percentiles: false, percentile_error: 0 })).toBeUndefined();
    expect(latencyNote(undefined)).toBeUndefined();
  });
});
