-- PostgreSQL twin of migrations/sqlite/0013_access.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- Access: gateway keys, and projects as rows with a default one.
--
-- `projects` exists since 0001 (experiments and datasets reference it; their stores
-- insert a project row the first time a project_id is named). The default project is
-- `default`: a NULL project_id anywhere (spans, experiments, datasets, sessions,
-- events) means it, so rows written before this migration, and by a local gateway
-- that never names a project, stay where they were. Its row is inserted as other
-- projects' are, the first time something names it (a key bound to it); the project
-- list shows it always.
--
-- `access_keys`: one row per key. Only the SHA-256 of the key is stored (`hash`) and
-- its recognisable prefix (`prefix`, "slk_<id>"); the key itself is shown once, when
-- it is created. `scopes` is a space-separated list of proxy, read, write, admin.
-- `project_id` NULL: not bound to a project. Times are ISO 8601 UTC text; `revoked_at`
-- set means the key no longer works (rows are kept, so the audit log can name them).

CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    project_id TEXT,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT,
    FOREIGN KEY (project_id) REFERENCES projects(id)
);

CREATE INDEX access_keys_by_created ON access_keys (created_at DESC, id DESC);
