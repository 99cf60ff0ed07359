-- Matrix cells claimed by gateway processes (several processes on one database): the
-- twin of migrations/sqlite/0016_cell_claims.sql (what each column means is said there).
-- Claims take the pending cells with FOR UPDATE SKIP LOCKED (gateway/store/cell_claims.py).
ALTER TABLE experiment_runs ADD COLUMN claimed_by TEXT;
ALTER TABLE experiment_runs ADD COLUMN lease_until DOUBLE PRECISION;
ALTER TABLE experiment_runs ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiment_matrix_runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiment_matrix_runs ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
CREATE INDEX experiment_matrix_runs_running ON experiment_matrix_runs (status)
    WHERE status = 'running';
