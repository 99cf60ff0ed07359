import { describe, expect, it } from "vitest";
import { captureNotes, fmtBytes } from "./format";

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
