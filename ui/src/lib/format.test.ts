import { describe, expect, it } from "vitest";
import { captureNotes, fmtBytes, fmtCompact, fmtCost, fmtDelta, fmtInt, fmtMs, fmtPercent, fmtPrice } from "./format";

describe("captureNotes", () => {
  it("says how much of a truncated response the span keeps", () => {
    const notes = captureNotes({ truncated_capture: { max_capture_bytes: 8 * 1024 * 1024, response_bytes: 200_000_000 } });
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain("8.0 MiB");
    expect(notes[0]).toContain("190.7 MiB");
  });

  it("names what was left out for nesting", () => {
    expect(captureNotes({ "spanlab.capture.dropped": ["request"] })).toEqual([
      "Left out of the record (nested too deeply to store): request.",
    ]);
  });

  it("says nothing for an ordinary span or an odd value", () => {
    expect(captureNotes({ "spanlab.thread": "t" })).toEqual([]);
    expect(captureNotes(null)).toEqual([]);
    expect(captureNotes(["truncated_capture"])).toEqual([]);
  });
});

describe("fmtBytes", () => {
  it("picks a unit", () => {
    expect(fmtBytes(512)).toBe("512 B");
    expect(fmtBytes(2048)).toBe("2.0 KiB");
    expect(fmtBytes(null)).toBe("\u2013");
  });
});

describe("fmtCost", () => {
  it("shows sub-cent costs as money with enough significant digits, never exponent notation", () => {
    expect(fmtCost(0.0000041)).toBe("$0.0000041");
    expect(fmtCost(4.1e-6)).toBe("$0.0000041");
    expect(fmtCost(0.000123456)).toBe("$0.000123");
    expect(fmtCost(0.0012)).toBe("$0.0012");
    expect(fmtCost(1e-12)).toBe("$0.000000000001");
    for (const v of [1e-6, 3.3e-9, 7e-15, 0.00005]) expect(fmtCost(v)).not.toMatch(/e/i);
  });
  it("shows cents and dollars", () => {
    expect(fmtCost(0.0123)).toBe("$0.0123");
    expect(fmtCost(0.5)).toBe("$0.50");
    expect(fmtCost(0.01)).toBe("$0.01");
    expect(fmtCost(0.0099999)).toBe("$0.01");
    expect(fmtCost(4.1)).toBe("$4.10");
    expect(fmtCost(1234567.891)).toBe("$1,234,567.89");
  });
  it("shows zero, missing and negative values", () => {
    expect(fmtCost(0)).toBe("$0");
    expect(fmtCost(null)).toBe("\u2013");
    expect(fmtCost(undefined)).toBe("\u2013");
    expect(fmtCost(Number.NaN)).toBe("\u2013");
    expect(fmtCost(-0.0000041)).toBe("\u2212$0.0000041");
    expect(fmtCost(-4.1)).toBe("\u2212$4.10");
  });
});

describe("fmtPrice", () => {
  it("shows a price per million tokens", () => {
    expect(fmtPrice(4.1)).toBe("$4.10 per 1M");
    expect(fmtPrice(0.15)).toBe("$0.15 per 1M");
    expect(fmtPrice(0)).toBe("$0.00 per 1M");
    expect(fmtPrice(0.0025)).toBe("$0.0025 per 1M");
    expect(fmtPrice(null)).toBe("\u2013");
  });
});

describe("fmtDelta with money", () => {
  it("signs a negative cost delta and keeps it out of exponent notation", () => {
    expect(fmtDelta(0.0000082, 0.0000041, fmtCost)).toBe("\u2212$0.0000041 (\u221250.0%)");
    expect(fmtDelta(0.01, 0.0123, fmtCost)).toBe("+$0.0023 (+23.0%)");
    expect(fmtDelta(0, 0.0000041, fmtCost)).toBe("+$0.0000041 (n/a)");
    expect(fmtDelta(4.1, 4.1, fmtCost)).toBe("\u00b1$0 (0%)");
  });
});

describe("numbers", () => {
  it("groups large integers and keeps missing values as a dash", () => {
    expect(fmtInt(10_000_000)).toBe("10,000,000");
    expect(fmtInt(0)).toBe("0");
    expect(fmtInt(null)).toBe("\u2013");
    expect(fmtInt(Number.POSITIVE_INFINITY)).toBe("\u2013");
  });
  it("compacts counts for axes", () => {
    expect(fmtCompact(950)).toBe("950");
    expect(fmtCompact(1234)).toBe("1.2k");
    expect(fmtCompact(3_400_000)).toBe("3.4M");
    expect(fmtCompact(250_000)).toBe("250k");
    expect(fmtCompact(-1500)).toBe("\u22121.5k");
    expect(fmtCompact(0.25)).toBe("0.25");
  });
  it("shows fractions as percents and long latencies in minutes", () => {
    expect(fmtPercent(0.0412)).toBe("4.1%");
    expect(fmtPercent(0)).toBe("0.0%");
    expect(fmtPercent(-0.5)).toBe("\u221250.0%");
    expect(fmtMs(0.5)).toBe("0.50 ms");
    expect(fmtMs(1500)).toBe("1.50 s");
    expect(fmtMs(90_000)).toBe("1.5 min");
  });
});
