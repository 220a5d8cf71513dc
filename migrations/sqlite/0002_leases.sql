-- Leases: which worker builds a job, until when (Unix milliseconds). The
-- attempt number (attempts) is the fencing token of a lease.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
-- One generating job per batch and filter, decided by the database.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_generating ON jobs (batch_id, filter)
    WHERE status = 'generating';
