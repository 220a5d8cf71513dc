-- The jobs table. Times are Unix milliseconds written by the service (the
-- same clock decides leases in every process, so keep hosts in NTP sync).
CREATE TABLE jobs (
    seq          BIGSERIAL PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    batch_id     TEXT NOT NULL,
    filter       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('generating', 'complete', 'failed')),
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    fingerprint  TEXT NOT NULL,
    dump_dir     TEXT NOT NULL,
    error        TEXT,
    size         BIGINT,
    -- How many builds were started; the attempt number fences a lease.
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  BIGINT
);
CREATE INDEX jobs_by_batch ON jobs (batch_id, filter, status);
-- One generating job per batch and filter, decided by the database.
CREATE UNIQUE INDEX jobs_one_generating ON jobs (batch_id, filter) WHERE status = 'generating';
-- What idle workers scan for.
CREATE INDEX jobs_queue ON jobs (seq) WHERE status = 'generating';
