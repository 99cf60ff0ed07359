-- PostgreSQL twin of migrations/sqlite/0006_variants_inputs.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- Variants × inputs: experiments that run several variants over a set of inputs.
--
-- A seed-1 experiment (one captured call, changed, replayed) is kind `replay`; every
-- row that existed before this migration is one. An experiment created without a span
-- (name, description) is kind `matrix`: the seed's NOT NULL span and request columns
-- stay NOT NULL (the seed's table is unchanged) and hold empty values for it ('' for
-- the span and trace ids, '{}' for the requests); its calls come from its variants
-- and inputs. Either kind can hold variants and inputs; a replay experiment's
-- original call is its implicit first input.
ALTER TABLE experiments ADD COLUMN kind TEXT NOT NULL DEFAULT 'replay'; -- replay, matrix

-- A variant: a `template` (system prompt, messages with Mustache variables filled from
-- each input, model, parameters, tools) or an `override` of each input's own captured
-- request (model, parameters, system prompt replaced or prepended, tools added/removed).
CREATE TABLE experiment_variants (
    id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    system_prompt TEXT,
    config TEXT NOT NULL,                -- JSON object (see docs/api.md#variants)
    kind TEXT NOT NULL DEFAULT 'template', -- template, override
    position INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (experiment_id) REFERENCES experiments(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX experiment_variants_name ON experiment_variants (experiment_id, name);

-- An input: text content and Mustache variables, or a whole captured request; taken
-- from a dataset it names the dataset, the version and the item.
CREATE TABLE experiment_inputs (
    id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    key TEXT NOT NULL,
    content TEXT,
    variables TEXT,                      -- JSON object
    request TEXT,                        -- JSON object: a whole request
    operation TEXT,                      -- the request's API dialect
    expected_output TEXT,                -- JSON
    metadata TEXT,                       -- JSON object
    source_span_id TEXT,
    dataset_id TEXT,
    dataset_version INTEGER,
    dataset_item_id TEXT,
    position INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (experiment_id) REFERENCES experiments(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX experiment_inputs_key ON experiment_inputs (experiment_id, key);

-- A run of the matrix: which variants, inputs and repetitions it covers.
CREATE TABLE experiment_matrix_runs (
    id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    status TEXT NOT NULL,                -- running, completed, cancelled, interrupted
    variant_ids TEXT NOT NULL,           -- JSON list
    input_ids TEXT NOT NULL,             -- JSON list
    repetitions INTEGER NOT NULL,
    concurrency INTEGER NOT NULL,
    cells INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (experiment_id) REFERENCES experiments(id) ON DELETE CASCADE
);
CREATE INDEX experiment_matrix_runs_by_experiment
    ON experiment_matrix_runs (experiment_id, created_at DESC);

-- Cells: an experiment_runs row per variant × input × repetition. Seed-1 runs keep
-- these NULL (and their statuses running, completed, failed); a cell's status is also
-- pending, cancelled or interrupted. `started_at` of a pending cell is when it was
-- queued, set again when it starts.
ALTER TABLE experiment_runs ADD COLUMN matrix_run_id TEXT;
ALTER TABLE experiment_runs ADD COLUMN variant_id TEXT;
ALTER TABLE experiment_runs ADD COLUMN input_id TEXT;
ALTER TABLE experiment_runs ADD COLUMN repetition INTEGER;
ALTER TABLE experiment_runs ADD COLUMN config TEXT;        -- JSON: the variant as used
ALTER TABLE experiment_runs ADD COLUMN input_tokens BIGINT;
ALTER TABLE experiment_runs ADD COLUMN output_tokens BIGINT;
ALTER TABLE experiment_runs ADD COLUMN cost_usd DOUBLE PRECISION;
ALTER TABLE experiment_runs ADD COLUMN ttft_ms DOUBLE PRECISION;
ALTER TABLE experiment_runs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX experiment_runs_cell
    ON experiment_runs (matrix_run_id, variant_id, input_id, repetition)
    WHERE matrix_run_id IS NOT NULL;
CREATE INDEX experiment_runs_by_matrix ON experiment_runs (matrix_run_id, status)
    WHERE matrix_run_id IS NOT NULL;
