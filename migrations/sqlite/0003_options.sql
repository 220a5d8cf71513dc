-- Archive options (SPEC section 8): with the filter, a job's identity.
-- Jobs made before options existed were built with the defaults, which is
-- what they get; the key is the canonical JSON of `wire::ArchiveOptions`.
ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL
    DEFAULT '{"tables":false,"include_files":true,"pseudonymise":false}';
-- One generating job per batch, filter and options, decided by the database.
DROP INDEX IF EXISTS jobs_one_generating;
CREATE UNIQUE INDEX jobs_one_generating ON jobs (batch_id, filter, options)
    WHERE status = 'generating';
DROP INDEX IF EXISTS jobs_by_batch;
CREATE INDEX jobs_by_identity ON jobs (batch_id, filter, options, status);
