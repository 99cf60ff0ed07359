-- PostgreSQL twin of migrations/sqlite/0008_evaluation.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- Evaluation: metric definitions, scores, feedback and the evaluators an experiment runs.
--
-- A metric (the seed's EvalMetricDefinition) is defined per project by its key: a kind
-- (numeric with an optional range, boolean, categorical with its categories listed worst
-- to best), a direction (is higher or lower better) and the seed's free-form scale. A
-- score names its metric; one used before it is defined creates it with defaults.
--
-- A score (the seed's EvalScore) is on an experiment run (a matrix cell or a seed-1 run)
-- and/or on a span: a score on a run also names the run's span, so the span shows it.
-- `source` is `human`, `api` or `evaluator:<name>`. An evaluator that could not judge
-- (a judge that failed or answered unparseably) leaves a row with `error` set and no
-- value: an evaluator error, never a low score. An evaluator's score on a run replaces
-- its previous one under that metric (re-running evaluators; a Python evaluator of the CLI
-- is `evaluator:<module:function>`), hence the partial unique index. A judge's
-- own call is a captured span (`judge_span_id`) whose cost is counted apart.
--
-- Feedback (the seed's thumbsUp / feedbackNote) is one current verdict per run, or per
-- span for a span that is no run's: changeable, with who and when; its history is in
-- the events table (`experiment.feedback.updated`).
--
-- Deleting an experiment deletes its runs, and with them their scores and feedback.
-- Times are ISO 8601 UTC text with microseconds.

CREATE TABLE metric_definitions (
    id TEXT PRIMARY KEY,
    project_id TEXT,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    kind TEXT NOT NULL DEFAULT 'numeric',   -- numeric, boolean, categorical
    direction TEXT NOT NULL DEFAULT 'higher', -- higher, lower: which is better
    min_value DOUBLE PRECISION,                         -- numeric: the range (NULL: unbounded)
    max_value DOUBLE PRECISION,
    categories TEXT,                        -- categorical: JSON list, worst to best
    scale TEXT,                             -- the seed's free-form description
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX metric_definitions_key ON metric_definitions (COALESCE(project_id, ''), key);

CREATE TABLE scores (
    id TEXT PRIMARY KEY,
    project_id TEXT,
    metric_id TEXT NOT NULL,
    metric_key TEXT NOT NULL,
    value DOUBLE PRECISION,                             -- numeric; boolean 1 or 0; categorical: its index
    label TEXT,                             -- categorical: the category
    note TEXT,                              -- the scorer's (or the judge's) reason
    error TEXT,                             -- JSON {type, message}: the evaluator failed
    source TEXT NOT NULL,                   -- human, api, evaluator:<name>
    run_id TEXT,
    span_id TEXT,
    experiment_id TEXT,
    variant_id TEXT,
    input_id TEXT,
    evaluator_id TEXT,
    judge_span_id TEXT,
    judge_cost_usd DOUBLE PRECISION,
    created_by TEXT,
    created_at TEXT NOT NULL,
    FOREIGN KEY (metric_id) REFERENCES metric_definitions(id) ON DELETE CASCADE,
    FOREIGN KEY (run_id) REFERENCES experiment_runs(id) ON DELETE CASCADE
);
CREATE INDEX scores_by_run ON scores (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX scores_by_span ON scores (span_id) WHERE span_id IS NOT NULL;
CREATE INDEX scores_by_experiment ON scores (experiment_id, metric_key)
    WHERE experiment_id IS NOT NULL;
CREATE INDEX scores_by_metric ON scores (metric_id);
CREATE UNIQUE INDEX scores_by_evaluator ON scores (run_id, source, metric_key)
    WHERE run_id IS NOT NULL AND source LIKE 'evaluator:%';

CREATE TABLE feedback (
    id TEXT PRIMARY KEY,
    project_id TEXT,
    run_id TEXT,
    span_id TEXT,
    experiment_id TEXT,
    variant_id TEXT,
    input_id TEXT,
    thumbs_up INTEGER,                      -- 1 up, 0 down, NULL: a note only
    note TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_by TEXT,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (run_id) REFERENCES experiment_runs(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX feedback_by_run ON feedback (run_id) WHERE run_id IS NOT NULL;
CREATE UNIQUE INDEX feedback_by_span ON feedback (span_id) WHERE run_id IS NULL;
CREATE INDEX feedback_by_experiment ON feedback (experiment_id) WHERE experiment_id IS NOT NULL;

-- An experiment's evaluators, run after each cell and re-runnable over its results:
-- `type` names a built-in (exact_match, contains, regex, json_schema, llm_judge, ...),
-- `params` its configuration, `metric_key` the metric its scores go under.
CREATE TABLE experiment_evaluators (
    id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    metric_key TEXT NOT NULL,
    params TEXT NOT NULL,                   -- JSON object
    enabled INTEGER NOT NULL DEFAULT 1,
    position INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (experiment_id) REFERENCES experiments(id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX experiment_evaluators_name ON experiment_evaluators (experiment_id, name);
