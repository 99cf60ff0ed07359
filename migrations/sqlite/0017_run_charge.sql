-- The key a matrix run's calls are charged to (quotas; gateway/quotas/): kept with the
-- run so that another gateway process (the background process `spanlab serve` runs
-- matrix cells in, or another worker) charges the cells it runs to the same key. A
-- key id, never a secret. NULL: no key (gateway keys off).
ALTER TABLE experiment_matrix_runs ADD COLUMN charged_key TEXT;
