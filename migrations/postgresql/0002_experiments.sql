-- PostgreSQL twin of migrations/sqlite/0002_experiments.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- Experiments: a captured call, changed, replayed through the gateway and compared.
-- The first sixteen columns are the seed's `experiments` table exactly; the ones after
-- them are Spanlab's additions (tags, favourites, the last error, the API dialect, the
-- edit version). Times are ISO 8601 UTC text with microseconds, so they sort as text.

CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    original_span_id TEXT NOT NULL,
    original_trace_id TEXT NOT NULL,
    original_request TEXT NOT NULL,      -- JSON
    modified_request TEXT NOT NULL,      -- JSON
    headers TEXT,                        -- JSON
    prompt_variables TEXT,               -- JSON (Mustache variables)
    model_parameters TEXT,               -- JSON
    result_span_id TEXT,
    result_trace_id TEXT,
    status TEXT NOT NULL DEFAULT 'draft', -- draft, running, completed, failed
    project_id TEXT,
    created_at TEXT,
    updated_at TEXT,
    tags TEXT,                           -- JSON list of strings
    favorite INTEGER NOT NULL DEFAULT 0,
    error TEXT,                          -- JSON {type, code, message} of the last failed run
    operation TEXT NOT NULL DEFAULT 'chat', -- the API dialect: chat, messages, responses...
    version INTEGER NOT NULL DEFAULT 1,  -- bumped by every edit and run (see history)
    FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE
);

CREATE INDEX experiments_by_created ON experiments (created_at DESC, id DESC);
CREATE INDEX experiments_by_span ON experiments (original_span_id);
CREATE INDEX experiments_by_project ON experiments (project_id, created_at DESC);

-- Every run of an experiment: what was sent, which span it produced, how it ended.
CREATE TABLE experiment_runs (
    id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    status TEXT NOT NULL,                -- running, completed, failed
    request TEXT NOT NULL,               -- JSON: the body sent (rendered, merged)
    headers TEXT,                        -- JSON: the extra headers sent (rendered)
    stream INTEGER NOT NULL DEFAULT 0,
    result_span_id TEXT,
    result_trace_id TEXT,
    output_text TEXT,
    error TEXT,                          -- JSON
    started_at TEXT NOT NULL,
    ended_at TEXT,
    duration_ms DOUBLE PRECISION,
    FOREIGN KEY (experiment_id) REFERENCES experiments(id) ON DELETE CASCADE
);

CREATE INDEX experiment_runs_by_experiment ON experiment_runs (experiment_id, started_at DESC);
CREATE INDEX experiment_runs_running ON experiment_runs (status) WHERE status = 'running';

-- Version history: one entry per create, edit and finished run, with the experiment's
-- editable state after it.
CREATE TABLE experiment_history (
    experiment_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,                -- created, updated, run, duplicated
    at TEXT NOT NULL,
    changes TEXT,                        -- JSON {field: {"from": ..., "to": ...}}
    run_id TEXT,
    snapshot TEXT NOT NULL,              -- JSON
    PRIMARY KEY (experiment_id, version),
    FOREIGN KEY (experiment_id) REFERENCES experiments(id) ON DELETE CASCADE
);
