//! The SQLite job store: one file, the embedded default.
//!
//! One connection behind a mutex serves the process; write transactions
//! are `BEGIN IMMEDIATE`, so a second process on the same file (a `worker`
//! beside a `serve`) waits its turn for the write lock instead of failing
//! half-way. The schema version is SQLite's `user_version`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use time::OffsetDateTime;

use super::{
    gave_up_reason, millis, status_of, Claim, Decision, JobStore, Lease, NewRequest, Publish,
    RawJob, Removal, COLUMNS,
};
use crate::jobs::{Job, JobError, JobStatus};

/// The migrations, in order; the schema version is how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_jobs.sql"),
    include_str!("../../../migrations/sqlite/0002_leases.sql"),
    include_str!("../../../migrations/sqlite/0003_options.sql"),
];

/// The SQLite connection holding the jobs table.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, JobError> {
        let mut conn = Connection::open(path)?;
        // WAL keeps readers and the writer out of each other's way, and a
        // busy timeout covers a second process (or a restarted engine in
        // tests) briefly holding the write lock.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock only means a thread panicked while holding it;
        // SQLite statements are atomic, so the connection is still sound.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the migrations the file has not seen, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<(), JobError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
    }
    tx.commit()?;
    Ok(())
}

fn job_of(row: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(RawJob {
        id: row.get(0)?,
        batch_id: row.get(1)?,
        filter: row.get(2)?,
        status: row.get(3)?,
        created_at: row.get(4)?,
        finished_at: row.get(5)?,
        fingerprint: row.get(6)?,
        dump_dir: row.get(7)?,
        error: row.get(8)?,
        size: row.get(9)?,
        attempts: row.get(10)?,
        options: row.get(11)?,
    }
    .into_job())
}

fn one(
    tx: &Connection,
    condition: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Option<Job>> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE {condition} ORDER BY seq DESC LIMIT 1");
    tx.query_row(&sql, args, job_of).optional()
}

/// True when the lease is still the job's; run inside the transaction
/// that acts on it.
fn holds(tx: &Transaction<'_>, lease: &Lease) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT COUNT(*) FROM jobs WHERE id = ?1 AND status = 'generating'
         AND lease_owner = ?2 AND attempts = ?3",
        params![lease.export_id, lease.owner, lease.attempt],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

impl JobStore for SqliteStore {
    fn request(
        &self,
        request: &NewRequest<'_>,
        archive_exists: &dyn Fn(&Job) -> bool,
    ) -> Result<Decision, JobError> {
        let job = request.job;
        let key = job.filter_key();
        let options = job.options.key();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let generating = one(
            &tx,
            "batch_id = ?1 AND filter = ?2 AND options = ?3 AND status = 'generating'",
            params![job.batch_id, key, options],
        )?;
        if let Some(running) = generating {
            return Ok(Decision::Running(running));
        }
        if let Some(since) = request.reuse_since {
            let reusable = one(
                &tx,
                "batch_id = ?1 AND filter = ?2 AND options = ?3 AND status = 'complete'
                 AND fingerprint = ?4 AND created_at > ?5",
                params![job.batch_id, key, options, job.fingerprint, millis(since)],
            )?;
            if let Some(ready) = reusable.filter(|j| archive_exists(j)) {
                return Ok(Decision::Ready(ready));
            }
        }
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM jobs WHERE batch_id = ?1",
            [&job.batch_id],
            |row| row.get(0),
        )?;
        if count as usize >= request.cap {
            return Err(JobError::TooManyJobs {
                batch_id: job.batch_id.clone(),
                cap: request.cap,
            });
        }
        tx.execute(
            "INSERT INTO jobs (id, batch_id, filter, status, created_at, finished_at,
                fingerprint, dump_dir, error, size, attempts, options)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                job.id,
                job.batch_id,
                key,
                job.status.as_str(),
                millis(job.created_at),
                job.finished_at.map(millis),
                job.fingerprint,
                job.dump_dir.to_string_lossy(),
                job.error,
                job.size.map(|s| s as i64),
                job.attempts,
                options,
            ],
        )?;
        tx.commit()?;
        Ok(Decision::Inserted)
    }

    fn get(&self, export_id: &str) -> Result<Option<Job>, JobError> {
        Ok(one(&self.conn(), "id = ?1", [export_id])?)
    }

    fn list(&self, batch_id: &str) -> Result<Vec<Job>, JobError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE batch_id = ?1 ORDER BY seq DESC");
        let mut stmt = conn.prepare(&sql)?;
        let jobs = stmt.query_map([batch_id], job_of)?;
        Ok(jobs.collect::<Result<_, _>>()?)
    }

    fn claim(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Claim, JobError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'generating'
             AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY seq ASC LIMIT 1"
        );
        let Some(mut job) = tx.query_row(&sql, [millis(now)], job_of).optional()? else {
            return Ok(Claim::Idle);
        };
        if job.attempts >= max_attempts {
            let reason = gave_up_reason(job.attempts);
            tx.execute(
                "UPDATE jobs SET status = 'failed', finished_at = ?2, error = ?3,
                 lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                params![job.id, millis(now), reason],
            )?;
            tx.commit()?;
            job.status = JobStatus::Failed;
            job.finished_at = Some(now);
            job.error = Some(reason);
            return Ok(Claim::GaveUp(job));
        }
        job.attempts += 1;
        tx.execute(
            "UPDATE jobs SET attempts = ?2, lease_owner = ?3, lease_until = ?4 WHERE id = ?1",
            params![job.id, job.attempts, owner, millis(lease_until)],
        )?;
        tx.commit()?;
        let lease = Lease {
            export_id: job.id.clone(),
            owner: owner.to_owned(),
            attempt: job.attempts,
        };
        Ok(Claim::Leased(job, lease))
    }

    fn renew(&self, lease: &Lease, until: OffsetDateTime) -> Result<bool, JobError> {
        let n = self.conn().execute(
            "UPDATE jobs SET lease_until = ?4 WHERE id = ?1 AND status = 'generating'
             AND lease_owner = ?2 AND attempts = ?3",
            params![lease.export_id, lease.owner, lease.attempt, millis(until)],
        )?;
        Ok(n > 0)
    }

    fn release(&self, lease: &Lease) -> Result<(), JobError> {
        self.conn().execute(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE id = ?1
             AND status = 'generating' AND lease_owner = ?2 AND attempts = ?3",
            params![lease.export_id, lease.owner, lease.attempt],
        )?;
        Ok(())
    }

    fn complete(
        &self,
        lease: &Lease,
        at: OffsetDateTime,
        size: u64,
        publish: &mut Publish<'_>,
    ) -> Result<bool, JobError> {
        let mut conn = self.conn();
        // The write lock is held from the check to the commit: no other
        // process can claim the job while its archive is put in place.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !holds(&tx, lease)? {
            return Ok(false);
        }
        publish()?;
        tx.execute(
            "UPDATE jobs SET status = 'complete', finished_at = ?2, size = ?3, error = NULL,
             lease_owner = NULL, lease_until = NULL WHERE id = ?1",
            params![lease.export_id, millis(at), size as i64],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn fail(&self, lease: &Lease, at: OffsetDateTime, error: &str) -> Result<bool, JobError> {
        let n = self.conn().execute(
            "UPDATE jobs SET status = 'failed', finished_at = ?4, error = ?5,
             lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND status = 'generating' AND lease_owner = ?2 AND attempts = ?3",
            params![
                lease.export_id,
                lease.owner,
                lease.attempt,
                millis(at),
                error
            ],
        )?;
        Ok(n > 0)
    }

    fn remove(&self, export_id: &str) -> Result<Removal, JobError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(job) = one(&tx, "id = ?1", [export_id])? else {
            return Ok(Removal::NotFound);
        };
        if job.status == JobStatus::Generating {
            return Ok(Removal::Generating);
        }
        tx.execute("DELETE FROM jobs WHERE id = ?1", [export_id])?;
        tx.commit()?;
        Ok(Removal::Removed(Box::new(job)))
    }

    fn statuses(&self) -> Result<Vec<(String, JobStatus)>, JobError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, status FROM jobs")?;
        let rows = stmt.query_map([], |row| {
            let status: String = row.get(1)?;
            Ok((row.get(0)?, status_of(&status)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn lose(&self, export_id: &str, at: OffsetDateTime, error: &str) -> Result<(), JobError> {
        self.conn().execute(
            "UPDATE jobs SET status = 'failed', finished_at = ?2, error = ?3, size = NULL
             WHERE id = ?1 AND status = 'complete'",
            params![export_id, millis(at), error],
        )?;
        Ok(())
    }
}
