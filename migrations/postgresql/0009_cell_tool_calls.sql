-- PostgreSQL twin of migrations/sqlite/0009_cell_tool_calls.sql: the same tables, columns, indexes and
-- constraints (types: TEXT; BIGINT for microseconds and counters; DOUBLE PRECISION for
-- REAL; INTEGER 0/1 for booleans, as on SQLite, so the stores' code is shared; JSON
-- columns stay TEXT, encoded the same on both: one code path. JSONB later, if a query
-- needs to look inside).

-- A matrix cell's answer can be tool calls rather than text (a replay of captured
-- traffic with tools): the calls it was answered with, in the OpenAI chat shape (a JSON
-- list, NULL when the answer asked for none), beside `output_text`. The same shape as
-- a dataset item's `expected_output.tool_calls`, so the two compare.
ALTER TABLE experiment_runs ADD COLUMN tool_calls TEXT;
