// Quotas on the Keys page: a key's or project's limits (null: none) and its usage in
// the current windows, as GET /keys and GET /projects answer them. Read-only here;
// they are set with `spanlab keys update --rpm ...` or PATCH /keys/{id}.

import { fmtCost, fmtInt } from "./format";

export interface Limits {
  rpm: number | null;
  tokens_per_day: number | null;
  usd_per_day: number | null;
  usd_per_month: number | null;
}

export interface QuotaUsage {
  /** the limits applied: the subject's own, or the gateway's defaults for a key */
  limits_in_force: Limits;
  requests_this_minute: number;
  requests_today: number;
  tokens_today: number;
  usd_today: number;
  usd_this_month: number;
}

export interface QuotaLine {
  /** what is counted, e.g. "requests this minute" */
  label: string;
  /** the usage, formatted */
  used: string;
  /** the limit, formatted; null: none */
  limit: string | null;
  /** used / limit (0..1+), null without a limit */
  fraction: number | null;
}

function line(label: string, used: number, limit: number | null, fmt: (n: number) => string): QuotaLine {
  return {
    label,
    used: fmt(used),
    limit: limit === null ? null : fmt(limit),
    fraction: limit === null || limit <= 0 ? null : used / limit,
  };
}

/** The lines shown for one key or project: every window's usage, each with its limit. */
export function quotaLines(usage: QuotaUsage | undefined): QuotaLine[] {
  if (!usage) return [];
  const limits = usage.limits_in_force;
  return [
    line("requests this minute", usage.requests_this_minute, limits.rpm, fmtInt),
    line("tokens today", usage.tokens_today, limits.tokens_per_day, fmtInt),
    line("cost today", usage.usd_today, limits.usd_per_day, fmtCost),
    line("cost this month", usage.usd_this_month, limits.usd_per_month, fmtCost),
  ];
}

/** Whether any of the subject's limits is reached (its next call is refused). */
export function limitReached(usage: QuotaUsage | undefined): boolean {
  return quotaLines(usage).some((l) => l.fraction !== null && l.fraction >= 1);
}
