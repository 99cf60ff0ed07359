-- PostgreSQL twin of migrations/sqlite/0001_spans.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- Spans: one row per call through the proxy.
-- Times are integer microseconds since the Unix epoch (sortable, exact); the API
-- presents them as ISO 8601. JSON columns hold orjson-encoded text.

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
);

CREATE TABLE spans (
    span_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    parent_span_id TEXT,
    project_id TEXT,
    thread_id TEXT,
    run_id TEXT,
    label TEXT,
    tags TEXT,                -- JSON object
    operation TEXT NOT NULL,  -- chat, completions, embeddings, responses, models, messages
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    provider TEXT,
    request_model TEXT,
    response_model TEXT,
    stream INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,     -- ok, error, client_aborted, interrupted
    http_status INTEGER,
    start_us BIGINT NOT NULL,
    end_us BIGINT,
    duration_ms DOUBLE PRECISION,
    ttft_ms DOUBLE PRECISION,
    request TEXT,             -- JSON, as sent upstream, redacted
    request_headers TEXT,     -- JSON, redacted
    query TEXT,
    response TEXT,            -- JSON: the whole response, or the stream assembled
    response_headers TEXT,    -- JSON
    input_preview TEXT,
    output_text TEXT,
    finish_reason TEXT,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    total_tokens BIGINT,
    cached_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    error TEXT,               -- JSON {type, message, code}
    attributes TEXT,          -- JSON object
    links TEXT                -- JSON list of {trace_id, span_id, attributes}
);

CREATE INDEX spans_by_start ON spans (start_us DESC, span_id DESC);
CREATE INDEX spans_by_trace ON spans (trace_id, start_us);
CREATE INDEX spans_by_thread ON spans (thread_id, start_us) WHERE thread_id IS NOT NULL;
