import { describe, expect, it } from "vitest";
import { limitReached, quotaLines, type QuotaUsage } from "./quotas";

const usage: QuotaUsage = {
  limits_in_force: { rpm: 60, tokens_per_day: null, usd_per_day: 2.5, usd_per_month: null },
  requests_this_minute: 12,
  requests_today: 340,
  tokens_today: 123456,
  usd_today: 0.0042,
  usd_this_month: 3.4,
};

describe("quotaLines", () => {
  it("shows every window's usage with its limit, through the one formatter", () => {
    expect(quotaLines(usage)).toEqual([
      { label: "requests this minute", used: "12", limit: "60", fraction: 0.2 },
      { label: "tokens today", used: "123,456", limit: null, fraction: null },
      { label: "cost today", used: "$0.0042", limit: "$2.50", fraction: 0.0042 / 2.5 },
      { label: "cost this month", used: "$3.40", limit: null, fraction: null },
    ]);
  });

  it("is empty without usage (an older gateway)", () => {
    expect(quotaLines(undefined)).toEqual([]);
  });

  it("says when a limit is reached", () => {
    expect(limitReached(usage)).toBe(false);
    expect(limitReached({ ...usage, requests_this_minute: 60 })).toBe(true);
  });
});
