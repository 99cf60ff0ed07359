import { describe, expect, it } from "vitest";
import { buildWaterfall, type TraceSpanLike } from "./traceTree";

const span = (id: string, parent: string | null, start: number, ms: number | null): TraceSpanLike => ({
  span_id: id,
  parent_span_id: parent,
  start_us: start * 1000,
  end_us: ms === null ? null : (start + ms) * 1000,
  duration_ms: ms,
});

const layout = (spans: TraceSpanLike[]) => buildWaterfall(spans).rows.map((r) => `${r.span.span_id}@${r.depth}`);

describe("buildWaterfall", () => {
  it("nests children under parents, depth first, with bars offset and sized by time", () => {
    const w = buildWaterfall([
      span("c", "b", 20, 30),
      span("a", "agent-root", 0, 100),
      span("b", "a", 10, 60),
      span("d", "a", 80, 20),
    ]);
    expect(w.rows.map((r) => `${r.span.span_id}@${r.depth}`)).toEqual(["a@0", "b@1", "c@2", "d@1"]);
    expect(w.totalMs).toBe(100);
    const c = w.rows[2]!;
    expect(c.offset).toBeCloseTo(0.2);
    expect(c.width).toBeCloseTo(0.3);
    // the parent is the agent's span, not stored here: a root, marked as such
    expect(w.rows[0]!.orphan).toBe(true);
    expect(w.rows[1]!.orphan).toBe(false);
  });

  it("makes roots of orphans and of spans naming themselves", () => {
    expect(layout([span("x", "missing", 0, 5), span("y", "y", 1, 5), span("z", null, 2, 5)])).toEqual(["x@0", "y@0", "z@0"]);
  });

  it("shows every span of a cycle once and terminates", () => {
    const rows = layout([span("a", "b", 0, 5), span("b", "c", 1, 5), span("c", "a", 2, 5), span("r", null, 3, 1)]);
    expect(rows).toHaveLength(4);
    expect(new Set(rows.map((r) => r.split("@")[0]))).toEqual(new Set(["a", "b", "c", "r"]));
    expect(rows[0]).toBe("r@0");
    expect(rows.slice(1)).toEqual(["a@0", "c@1", "b@2"]);
  });

  it("keeps the first of duplicate ids, survives missing times and a 10,000-deep chain", () => {
    expect(layout([span("a", null, 0, 5), span("a", null, 1, 5)])).toEqual(["a@0"]);
    const open = buildWaterfall([span("a", null, 0, null), { ...span("b", "a", 1, null), start_us: Number.NaN }]);
    expect(open.rows).toHaveLength(1);
    expect(open.rows[0]!.width).toBe(0);
    const chain = Array.from({ length: 10_000 }, (_, i) => span(`s${i}`, i ? `s${i - 1}` : null, i, 1));
    const deep = buildWaterfall(chain);
    expect(deep.rows).toHaveLength(10_000);
    expect(deep.rows[9_999]!.depth).toBe(9_999);
    expect(buildWaterfall([]).rows).toEqual([]);
  });
});
