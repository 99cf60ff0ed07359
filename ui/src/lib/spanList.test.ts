import { describe, expect, it } from "vitest";
import { filtersFrom, isReplay, matchesFilters, spansQuery, timeBounds } from "./spanList";
import type { SpanSummary } from "./types";

const span = (extra: Partial<SpanSummary> = {}): SpanSummary =>
  ({
    span_id: "s1",
    request_model: "gpt-4o-mini",
    response_model: "gpt-4o-mini-2024",
    provider: "openai",
    status: "ok",
    thread_id: "t1",
    label: "prod",
    start_us: 1_700_000_000_000_000,
    input_preview: "Hello World",
    output_text: "Hi",
    ...extra,
  }) as SpanSummary;

describe("filters", () => {
  it("reads filters from the URL and ignores other parameters", () => {
    expect(filtersFrom(new URLSearchParams("model=a&status=ok&span=x&q="))).toEqual({ model: "a", status: "ok" });
  });

  it("matches live spans the way the server filters", () => {
    expect(matchesFilters(span(), {})).toBe(true);
    expect(matchesFilters(span(), { model: "gpt-4o-mini-2024" })).toBe(true);
    expect(matchesFilters(span(), { model: "other" })).toBe(false);
    expect(matchesFilters(span(), { status: "error" })).toBe(false);
    expect(matchesFilters(span(), { thread: "t1", label: "prod", provider: "openai" })).toBe(true);
    expect(matchesFilters(span(), { q: "world" })).toBe(true);
    expect(matchesFilters(span(), { q: "absent" })).toBe(false);
    const now = 1_700_000_000_000 + 60_000;
    expect(matchesFilters(span(), { range: "15m" }, now)).toBe(true);
    expect(matchesFilters(span(), { range: "15m" }, now + 3_600_000)).toBe(false);
  });

  it("turns a preset range into since, and custom times into since/until", () => {
    const now = 1_700_000_000_000;
    expect(timeBounds({ range: "1h" }, now)).toEqual({ sinceUs: (now - 3_600_000) * 1000, untilUs: null });
    expect(timeBounds({ since: "2024-01-01T00:00:00Z", until: "2024-01-02T00:00:00Z" })).toEqual({
      sinceUs: 1_704_067_200_000_000,
      untilUs: 1_704_153_600_000_000,
    });
    expect(spansQuery({ model: "m", q: "a b" }, 50, "c1")).toBe("?model=m&q=a+b&limit=50&cursor=c1");
  });
});

describe("replays", () => {
  it("keeps the replays filter in the URL and sends it as an origin filter", () => {
    expect(filtersFrom(new URLSearchParams("replays=hide"))).toEqual({ replays: "hide" });
    expect(spansQuery({ replays: "hide" }, 50)).toBe("?exclude_origin=experiment&limit=50");
    expect(spansQuery({ replays: "only" }, 50)).toBe("?origin=experiment&limit=50");
    expect(spansQuery({}, 50)).toBe("?limit=50");
  });

  it("matches live replays the way the server does", () => {
    const replay = span({ origin: "experiment" });
    expect(matchesFilters(replay, {})).toBe(true);
    expect(matchesFilters(replay, { replays: "hide" })).toBe(false);
    expect(matchesFilters(span({ origin: "app" }), { replays: "hide" })).toBe(true);
    expect(matchesFilters(replay, { replays: "only" })).toBe(true);
    expect(matchesFilters(span({ origin: "app" }), { replays: "only" })).toBe(false);
    expect(isReplay(replay)).toBe(true);
    expect(isReplay(span({ origin: "app" }))).toBe(false);
    expect(isReplay(span())).toBe(false); // an older gateway's span has no origin
  });
});

