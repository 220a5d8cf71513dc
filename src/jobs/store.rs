//! The job store: one SQLite table, so jobs survive a restart.
//!
//! Times are Unix milliseconds; `seq` orders jobs by creation (newest
//! first in listings) even when two share a millisecond. A job's filter is
//! kept as canonical JSON (fixed key order, timestamps normalized to UTC),
//! which is also the key that tells two filters apart.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use time::OffsetDateTime;

use super::{Job, JobError, JobStatus};

/// The SQLite connection holding the jobs table.
pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
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
";

const COLUMNS: &str =
    "id, batch_id, filter, status, created_at, finished_at, fingerprint, dump_dir, error, size, attempts";

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, JobError> {
        let conn = Connection::open(path)?;
        // WAL keeps readers and the writer out of each other's way, and a
        // busy timeout covers a second process (or a restarted engine in
        // tests) briefly holding the write lock.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Adds a new job.
    pub fn insert(&self, job: &Job) -> Result<(), JobError> {
        self.conn.execute(
            "INSERT INTO jobs (id, batch_id, filter, status, created_at, finished_at,
                fingerprint, dump_dir, error, size, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                job.id,
                job.batch_id,
                job.filter_key(),
                job.status.as_str(),
                millis(job.created_at),
                job.finished_at.map(millis),
                job.fingerprint,
                job.dump_dir.to_string_lossy(),
                job.error,
                job.size.map(|s| s as i64),
                job.attempts,
            ],
        )?;
        Ok(())
    }

    /// The job with this id.
    pub fn get(&self, id: &str) -> Result<Option<Job>, JobError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1");
        Ok(self.conn.query_row(&sql, [id], job_of).optional()?)
    }

    /// A batch's jobs, newest first.
    pub fn list(&self, batch_id: &str) -> Result<Vec<Job>, JobError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE batch_id = ?1 ORDER BY seq DESC");
        let mut stmt = self.conn.prepare(&sql)?;
        let jobs = stmt.query_map([batch_id], job_of)?;
        Ok(jobs.collect::<Result<_, _>>()?)
    }

    /// The generating job of a batch and filter, if any.
    pub fn generating(&self, batch_id: &str, filter: &str) -> Result<Option<Job>, JobError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE batch_id = ?1 AND filter = ?2
             AND status = 'generating' ORDER BY seq DESC LIMIT 1"
        );
        Ok(self
            .conn
            .query_row(&sql, [batch_id, filter], job_of)
            .optional()?)
    }

    /// The newest complete job of a batch and filter built from records
    /// with this fingerprint and created after `since` (strictly younger).
    pub fn reusable(
        &self,
        batch_id: &str,
        filter: &str,
        fingerprint: &str,
        since: OffsetDateTime,
    ) -> Result<Option<Job>, JobError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE batch_id = ?1 AND filter = ?2
             AND status = 'complete' AND fingerprint = ?3 AND created_at > ?4
             ORDER BY seq DESC LIMIT 1"
        );
        Ok(self
            .conn
            .query_row(
                &sql,
                params![batch_id, filter, fingerprint, millis(since)],
                job_of,
            )
            .optional()?)
    }

    /// How many jobs a batch has, whatever their state.
    pub fn count(&self, batch_id: &str) -> Result<usize, JobError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE batch_id = ?1",
            [batch_id],
            |row| row.get(0),
        )?;
        Ok(n as usize)
    }

    /// How many jobs each status has (every status, zeros included); also
    /// the service's health check, since it needs the database to answer.
    pub fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, JobError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut counts: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|&s| (s, 0)).collect();
        for row in rows {
            let (status, n) = row?;
            let status = status_of(&status);
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 += n as u64;
            }
        }
        Ok(counts)
    }

    /// Every job left generating, oldest first.
    pub fn all_generating(&self) -> Result<Vec<Job>, JobError> {
        let sql =
            format!("SELECT {COLUMNS} FROM jobs WHERE status = 'generating' ORDER BY seq ASC");
        let mut stmt = self.conn.prepare(&sql)?;
        let jobs = stmt.query_map([], job_of)?;
        Ok(jobs.collect::<Result<_, _>>()?)
    }

    /// Records that a generating job is being attempted once more.
    pub fn bump_attempts(&self, id: &str) -> Result<(), JobError> {
        self.conn.execute(
            "UPDATE jobs SET attempts = attempts + 1 WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Marks a generating job complete with an archive of `size` bytes.
    pub fn complete(&self, id: &str, at: OffsetDateTime, size: u64) -> Result<(), JobError> {
        self.conn.execute(
            "UPDATE jobs SET status = 'complete', finished_at = ?2, size = ?3, error = NULL
             WHERE id = ?1 AND status = 'generating'",
            params![id, millis(at), size as i64],
        )?;
        Ok(())
    }

    /// Marks a generating job failed, saying why.
    pub fn fail(&self, id: &str, at: OffsetDateTime, error: &str) -> Result<(), JobError> {
        self.conn.execute(
            "UPDATE jobs SET status = 'failed', finished_at = ?2, error = ?3
             WHERE id = ?1 AND status = 'generating'",
            params![id, millis(at), error],
        )?;
        Ok(())
    }

    /// The id and status of every job.
    pub fn statuses(&self) -> Result<Vec<(String, JobStatus)>, JobError> {
        let mut stmt = self.conn.prepare("SELECT id, status FROM jobs")?;
        let rows = stmt.query_map([], |row| {
            let status: String = row.get(1)?;
            Ok((row.get(0)?, status_of(&status)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a complete job failed (its archive is gone), saying why.
    pub fn lose(&self, id: &str, at: OffsetDateTime, error: &str) -> Result<(), JobError> {
        self.conn.execute(
            "UPDATE jobs SET status = 'failed', finished_at = ?2, error = ?3, size = NULL
             WHERE id = ?1 AND status = 'complete'",
            params![id, millis(at), error],
        )?;
        Ok(())
    }

    /// Removes a job that is not generating; false when there was none.
    pub fn delete_finished(&self, id: &str) -> Result<bool, JobError> {
        let n = self.conn.execute(
            "DELETE FROM jobs WHERE id = ?1 AND status != 'generating'",
            [id],
        )?;
        Ok(n > 0)
    }
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn job_of(row: &Row<'_>) -> rusqlite::Result<Job> {
    let filter: String = row.get(2)?;
    let status: String = row.get(3)?;
    let dump_dir: String = row.get(7)?;
    let size: Option<i64> = row.get(9)?;
    Ok(Job {
        id: row.get(0)?,
        batch_id: row.get(1)?,
        filter: super::filter::from_key(&filter),
        status: status_of(&status),
        created_at: from_millis(row.get(4)?),
        finished_at: row.get::<_, Option<i64>>(5)?.map(from_millis),
        fingerprint: row.get(6)?,
        dump_dir: dump_dir.into(),
        error: row.get(8)?,
        size: size.map(|s| s as u64),
        attempts: row.get(10)?,
    })
}

/// The status of a stored spelling; only the three of
/// [`JobStatus::as_str`] are ever written, anything else is safest failed.
fn status_of(text: &str) -> JobStatus {
    JobStatus::ALL
        .into_iter()
        .find(|status| status.as_str() == text)
        .unwrap_or(JobStatus::Failed)
}
