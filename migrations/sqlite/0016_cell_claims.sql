-- Matrix cells claimed by gateway processes (several processes on one database).
-- A process claims a pending cell atomically (status 'running', claimed_by its claimer
-- id, lease_until a Unix time) and renews its leases while it runs them; a cell whose
-- lease passed (its process died) goes back to pending (takeovers + 1) for a live
-- process. claimed_by is kept after the cell ends (which process ran it).
-- A run's cancel is stored (cancel_requested) so every process running its cells sees
-- it; shared = 0: only the process that started the run may run its cells (the
-- credentials came with the caller's request and exist nowhere else).
-- gateway/store/cell_claims.py holds the SQL.
ALTER TABLE experiment_runs ADD COLUMN claimed_by TEXT;
ALTER TABLE experiment_runs ADD COLUMN lease_until REAL;
ALTER TABLE experiment_runs ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiment_matrix_runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiment_matrix_runs ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
CREATE INDEX experiment_matrix_runs_running ON experiment_matrix_runs (status)
    WHERE status = 'running';
