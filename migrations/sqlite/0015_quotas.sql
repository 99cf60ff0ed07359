-- Quotas: limits on keys and projects, and the usage counted against them.
--
-- Limits are columns of `access_keys` and `projects` (NULL: no limit): requests per
-- minute, tokens per UTC day, cost in USD per UTC day and per UTC month (cost from the
-- price table, as the spans' cost_usd).
--
-- `quota_usage`: one row per subject (kind 'key' or 'project', and its id), window
-- kind ('minute', 'day', 'month') and window start (Unix seconds, UTC-aligned), with
-- the requests admitted in it and the tokens and cost of the calls that ended in it.
-- A gateway counts in memory and adds its increments here in batches (an upsert that
-- adds, so several processes sharing the store add up); it reads the current windows
-- back at start and periodically. Rows of past windows are deleted by the gateway.

ALTER TABLE access_keys ADD COLUMN rpm INTEGER;
ALTER TABLE access_keys ADD COLUMN tokens_per_day INTEGER;
ALTER TABLE access_keys ADD COLUMN usd_per_day REAL;
ALTER TABLE access_keys ADD COLUMN usd_per_month REAL;

ALTER TABLE projects ADD COLUMN rpm INTEGER;
ALTER TABLE projects ADD COLUMN tokens_per_day INTEGER;
ALTER TABLE projects ADD COLUMN usd_per_day REAL;
ALTER TABLE projects ADD COLUMN usd_per_month REAL;

CREATE TABLE quota_usage (
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    window_kind TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (subject_kind, subject_id, window_kind, window_start)
);
