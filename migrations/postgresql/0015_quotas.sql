-- Quotas: limits on keys and projects, and the usage counted against them (the twin
-- of migrations/sqlite/0015_quotas.sql; see it for the design).
--
-- Several gateway processes may share this store: each adds its increments with
--   INSERT INTO quota_usage AS t (...) VALUES (...)
--   ON CONFLICT (subject_kind, subject_id, window_kind, window_start) DO UPDATE SET
--     requests = t.requests + excluded.requests, tokens = t.tokens + excluded.tokens,
--     cost_usd = t.cost_usd + excluded.cost_usd
-- and reads the totals back periodically.

ALTER TABLE access_keys ADD COLUMN rpm BIGINT;
ALTER TABLE access_keys ADD COLUMN tokens_per_day BIGINT;
ALTER TABLE access_keys ADD COLUMN usd_per_day DOUBLE PRECISION;
ALTER TABLE access_keys ADD COLUMN usd_per_month DOUBLE PRECISION;

ALTER TABLE projects ADD COLUMN rpm BIGINT;
ALTER TABLE projects ADD COLUMN tokens_per_day BIGINT;
ALTER TABLE projects ADD COLUMN usd_per_day DOUBLE PRECISION;
ALTER TABLE projects ADD COLUMN usd_per_month DOUBLE PRECISION;

CREATE TABLE quota_usage (
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    window_kind TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (subject_kind, subject_id, window_kind, window_start)
);
