-- The jobs table as the first release of the service created it.
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    batch_id     TEXT NOT NULL,
    filter       TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    fingerprint  TEXT NOT NULL,
    dump_dir     TEXT NOT NULL,
    error        TEXT,
    size         INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS jobs_by_batch ON jobs (batch_id, filter, status);
