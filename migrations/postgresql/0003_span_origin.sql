-- PostgreSQL twin of migrations/sqlite/0003_span_origin.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- A span's origin: who made the call (gateway/capture/origin.py). Open text; in use:
-- 'app' (an application's call through the proxy, the default) and 'experiment' (a
-- replay made by an experiment run); later 'playground', 'judge'. The writer derives it
-- from the span's attributes; rows stored before this column are derived here the same
-- way (an experiment run's span carries the attribute "spanlab.experiment.id").
ALTER TABLE spans ADD COLUMN origin TEXT NOT NULL DEFAULT 'app';

-- The backfill of rows stored before this column. A text test first (a cast of text
-- that is not JSON would fail the migration; PostgreSQL has no json_valid before 16).
UPDATE spans SET origin = 'experiment'
WHERE attributes LIKE '{%'
  AND attributes LIKE '%"spanlab.experiment.id"%'
  AND (attributes::jsonb -> 'spanlab.experiment.id') IS NOT NULL;

-- The gateway's own calls, newest first: only they are in this index (an app's call
-- costs the writer nothing here), so listing replays does not read every app span.
-- A query uses it when its WHERE has the term "origin <> 'app'" (SpanFilter adds it).
CREATE INDEX spans_not_app ON spans (start_us DESC, span_id DESC) WHERE origin <> 'app';

-- The values each filter can take (model, provider, label, operation, origin), for the
-- UI's dropdowns (GET /spans/facets) without scanning the spans: every write of spans
-- adds theirs (ON CONFLICT DO NOTHING), a prune rebuilds it (gateway/capture/span_table.py).
CREATE TABLE span_facets (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);

INSERT INTO span_facets (kind, value)
SELECT 'model', request_model FROM spans WHERE request_model IS NOT NULL AND request_model != ''
UNION SELECT 'model', response_model FROM spans WHERE response_model IS NOT NULL AND response_model != ''
UNION SELECT 'provider', provider FROM spans WHERE provider IS NOT NULL AND provider != ''
UNION SELECT 'label', label FROM spans WHERE label IS NOT NULL AND label != ''
UNION SELECT 'operation', operation FROM spans WHERE operation != ''
UNION SELECT 'origin', origin FROM spans
ON CONFLICT DO NOTHING;
