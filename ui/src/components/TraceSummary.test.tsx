import { cleanup, render } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { fillBuckets } from "../lib/charts";
import { fmtCost } from "../lib/format";
import { MiniChart, summaryFigures } from "./TraceSummary";

afterEach(cleanup);

describe("summaryFigures", () => {
  it("formats the total row with the shared formatters", () => {
    const f = summaryFigures({
      group: null,
      calls: 1234,
      errors: 12,
      total_tokens: 56789,
      cost_usd: 0.0000041,
      latency_p50_ms: 420,
      latency_p95_ms: 2100,
    });
    expect(f.calls).toBe("1,234");
    expect(f.errors).toBe("12 (0.97%)");
    expect(f.tokens).toBe("56,789");
    expect(f.cost.startsWith("$")).toBe(true);
    expect(f.latency).toBe("420 ms / 2.10 s");
  });

  it("shows zeros, not dashes, when nothing matches", () => {
    const f = summaryFigures(undefined);
    expect([f.calls, f.errors, f.tokens, f.cost]).toEqual(["0", "0", "0", fmtCost(0)]);
  });
});

describe("MiniChart", () => {
  const points = fillBuckets([], "hour", Date.UTC(2026, 0, 1, 10), Date.UTC(2026, 0, 1, 13));

  it("draws bars and names itself with its figures", () => {
    const { getByRole, container } = render(
      <MiniChart
        title="Calls and errors"
        kind="bars"
        points={points}
        bucket="hour"
        series={[
          { name: "calls", values: [4, 0, 10, 2], className: "series-calls", format: String },
          { name: "errors", values: [1, 0, 0, 0], className: "series-errors", format: String },
        ]}
      />,
    );
    const svg = getByRole("img");
    const label = svg.getAttribute("aria-label") ?? "";
    expect(label).toContain("Calls and errors, 4 hours from");
    expect(label).toContain("calls 16 in all, peak 10");
    expect(label).toContain("errors 1 in all");
    expect(svg.querySelector("title")?.textContent).toBe(label);
    expect(container.querySelectorAll(".series-calls rect")).toHaveLength(3);
    expect(container.querySelectorAll(".series-errors rect")).toHaveLength(1);
    expect(svg.getAttribute("tabindex")).toBe("0");
  });

  it("draws lines with gaps where a bucket had no call", () => {
    const { container, getByRole } = render(
      <MiniChart
        title="Latency"
        kind="lines"
        points={points}
        bucket="hour"
        series={[{ name: "p50", values: [100, null, 300, 200], className: "series-p50", format: (n) => `${n} ms`, total: false }]}
      />,
    );
    const d = container.querySelector("path.series-p50")?.getAttribute("d") ?? "";
    expect(d.match(/M/g)).toHaveLength(2);
    expect(getByRole("img").getAttribute("aria-label")).toContain("p50 from 100 ms, peak 300 ms");
  });
});
