-- PostgreSQL twin of migrations/sqlite/0007_playground_events.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- The playground's sessions and messages, and the events table.
--
-- A playground session is an ad-hoc, multi-turn chat with one or several models at
-- once (the seed's PlaygroundSession / PlaygroundMessage). `config` snapshots what the
-- session was started with (models, parameters) as JSON; each message names the model
-- that answered (NULL for the user's turns, which every model of the session saw) and
-- the span its call was captured as. Deleting a session deletes its messages; the
-- spans stay (they are captured calls like any other).
--
-- `events` is an append-only log of what happened in the gateway (`playground.completion`
-- today; the audit log builds on it): a type, when, the project, the ids it is about
-- (`subject_id`, the main one, e.g. a session; `related_ids`, a JSON array, e.g. span
-- ids) and a JSON payload. Times are ISO 8601 UTC text with microseconds.

CREATE TABLE playground_sessions (
    id TEXT PRIMARY KEY,
    project_id TEXT,
    title TEXT NOT NULL,
    system_prompt TEXT,
    config TEXT NOT NULL,                 -- JSON: {"models": [...], "temperature": ..., ...}
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX playground_sessions_by_created ON playground_sessions (created_at DESC, id DESC);

CREATE TABLE playground_messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,                 -- order within the session
    role TEXT NOT NULL,                   -- user, assistant
    content TEXT NOT NULL,
    model TEXT,                           -- the model that answered (assistant turns)
    span_id TEXT,                         -- the captured call (assistant turns)
    created_at TEXT NOT NULL,
    FOREIGN KEY (session_id) REFERENCES playground_sessions(id) ON DELETE CASCADE
);

CREATE INDEX playground_messages_by_session ON playground_messages (session_id, seq);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    project_id TEXT,
    subject_id TEXT,
    related_ids TEXT,                     -- JSON array of ids
    payload TEXT                          -- JSON object
);

CREATE INDEX events_by_at ON events (at DESC, id DESC);
CREATE INDEX events_by_type ON events (type, at DESC);
CREATE INDEX events_by_subject ON events (subject_id, at DESC);
