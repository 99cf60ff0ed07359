-- The twin of migrations/sqlite/0017_run_charge.sql (the key a matrix run is charged to).
ALTER TABLE experiment_matrix_runs ADD COLUMN charged_key TEXT;
