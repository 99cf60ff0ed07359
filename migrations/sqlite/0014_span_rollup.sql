-- The spans rollup: per-minute, per-hour and per-day aggregates by the filters'
-- dimensions, so /stats (the Traces summary strip) answers without reading every span.
-- What each table and column means, the histogram's buckets and their error:
-- gateway/capture/rollup.py.
--
-- Kept OFF the span insert: the writer process folds the spans stored after the
-- watermark (`span_rollup_state.watermark`, a spans rowid) into the rollup when it is
-- idle, and at least every `rollup.FOLD_EVERY` spans under sustained load, a chunk per
-- transaction (`rollup.fold`). /stats reads the rollup for the spans up to the
-- watermark and the spans after it exactly, in one statement (one snapshot): the answer
-- is the same whether or not the fold has caught up. Spans are only ever appended (a
-- new row's rowid is above every other) and deleted by retention, which keeps the
-- watermark at or below the largest rowid left. Nothing is backfilled here: after
-- this migration the writer folds the spans stored before it, chunk by chunk.

CREATE TABLE span_rollup_keys (
    id INTEGER PRIMARY KEY,
    project_id TEXT,
    provider TEXT,
    request_model TEXT,
    response_model TEXT,
    status TEXT,
    origin TEXT,
    operation TEXT,
    label TEXT
);
-- A key is found by "col IS ?" on every column (NULLs included): this index answers it.
CREATE INDEX span_rollup_keys_dims ON span_rollup_keys (project_id, provider, request_model,
    response_model, status, origin, operation, label);

CREATE TABLE span_rollup (
    level INTEGER NOT NULL,        -- the piece's width in seconds: 60, 3600, 86400
    start_us INTEGER NOT NULL,     -- the piece's start (UTC, aligned on its width)
    key_id INTEGER NOT NULL,       -- span_rollup_keys.id; 0: the totals over every key
    calls INTEGER NOT NULL,
    errors INTEGER NOT NULL,       -- status != 'ok'
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,        -- the sum of the costs known,
    cost_n INTEGER NOT NULL,       -- and how many (none: the cost is unknown, NULL)
    duration_ms REAL NOT NULL,
    duration_n INTEGER NOT NULL,
    ttft_ms REAL NOT NULL,
    ttft_n INTEGER NOT NULL,
    first_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL,
    PRIMARY KEY (level, key_id, start_us)
) WITHOUT ROWID;

-- Latency histogram: bucket b counts the durations with 1.05^b <= d < 1.05^(b+1).
CREATE TABLE span_rollup_latency (
    level INTEGER NOT NULL,
    start_us INTEGER NOT NULL,
    key_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (level, key_id, start_us, bucket)
) WITHOUT ROWID;

-- The spans folded in so far: every span with rowid <= watermark, none after it.
CREATE TABLE span_rollup_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    watermark INTEGER NOT NULL
);
INSERT INTO span_rollup_state (id, watermark) VALUES (1, 0);
