-- A matrix cell's answer can be tool calls rather than text (a replay of captured
-- traffic with tools): the calls it was answered with, in the OpenAI chat shape (a JSON
-- list, NULL when the answer asked for none), beside `output_text`. The same shape as
-- a dataset item's `expected_output.tool_calls`, so the two compare.
ALTER TABLE experiment_runs ADD COLUMN tool_calls TEXT;
