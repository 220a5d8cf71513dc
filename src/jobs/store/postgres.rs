//! The PostgreSQL job store: one queue for any number of API processes
//! and workers.
//!
//! The blocking client of rust-postgres (tokio-postgres underneath) fits
//! the engine, whose decisions already run on blocking threads; a small
//! pool of connections lets concurrent requests and workers proceed at
//! once. Requests for one batch are serialized by a transaction-scoped
//! advisory lock on the batch id (so the cap and "one generating job"
//! are decided together); claims lock the job row with
//! `FOR UPDATE SKIP LOCKED`; completion holds the row lock while the
//! archive is published. Migrations run under a session advisory lock,
//! so processes starting together apply each one once.
//!
//! A request that queues a job, and a worker that gives a lease up, send
//! `NOTIFY batch_export_jobs` in the same transaction (so it is delivered
//! only once the job is visible); [`JobStore::notices`] opens a connection
//! of its own that `LISTEN`s on that channel and wakes idle workers of
//! every process. Notices carry no payload: a woken worker simply claims.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, GenericClient, NoTls, Row};
use time::OffsetDateTime;

use super::{
    gave_up_reason, millis, status_of, Claim, Decision, JobNotices, JobStore, Lease, NewRequest,
    Publish, RawJob, Removal, COLUMNS,
};
use crate::jobs::{Job, JobError, JobStatus};

/// The migrations, in order, each with its version number.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_jobs.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_options.sql"),
    ),
];

/// The advisory-lock key migrations run under (any constant of our own).
const MIGRATION_LOCK: i64 = 0x6261_7463_6865_7870; // "batchexp"

/// The channel of "a job can be claimed" notices.
const JOBS_CHANNEL: &str = "batch_export_jobs";

/// How many connections one process opens at most.
const DEFAULT_POOL_SIZE: usize = 8;

/// A PostgreSQL job store: a pool of connections to one database.
pub struct PostgresStore {
    url: String,
    pool: Mutex<Pool>,
    returned: Condvar,
    max: usize,
}

struct Pool {
    idle: Vec<Client>,
    open: usize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// A pooled connection, given back when dropped (unless it broke).
struct Conn<'a> {
    store: &'a PostgresStore,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut pool = self.store.lock();
        match self.client.take() {
            Some(client) if !client.is_closed() => pool.idle.push(client),
            _ => pool.open -= 1,
        }
        self.store.returned.notify_one();
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and applies the migrations it has
    /// not seen.
    pub fn connect(url: &str) -> Result<PostgresStore, JobError> {
        let store = PostgresStore {
            url: url.to_owned(),
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            max: DEFAULT_POOL_SIZE,
        };
        {
            let mut conn = store.conn()?;
            migrate(&mut conn)?;
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, a new one while under the pool's size, or the
    /// next one given back.
    fn conn(&self) -> Result<Conn<'_>, JobError> {
        let mut pool = self.lock();
        loop {
            while let Some(client) = pool.idle.pop() {
                if client.is_closed() {
                    pool.open -= 1;
                } else {
                    return Ok(Conn {
                        store: self,
                        client: Some(client),
                    });
                }
            }
            if pool.open < self.max {
                pool.open += 1;
                drop(pool);
                return match Client::connect(&self.url, NoTls) {
                    Ok(client) => Ok(Conn {
                        store: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(e.into())
                    }
                };
            }
            pool = self
                .returned
                .wait_timeout(pool, Duration::from_secs(1))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn migrate(client: &mut Client) -> Result<(), JobError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let result = (|| -> Result<(), JobError> {
        client.batch_execute(
            "CREATE TABLE IF NOT EXISTS batch_export_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )?;
        let row = client.query_one(
            "SELECT COALESCE(MAX(version), 0) FROM batch_export_migrations",
            &[],
        )?;
        let done: i32 = row.get(0);
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > done) {
            let mut tx = client.transaction()?;
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO batch_export_migrations (version) VALUES ($1)",
                &[version],
            )?;
            tx.commit()?;
        }
        Ok(())
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
    result
}

fn job_of(row: &Row) -> Job {
    RawJob {
        id: row.get(0),
        batch_id: row.get(1),
        filter: row.get(2),
        status: row.get(3),
        created_at: row.get(4),
        finished_at: row.get(5),
        fingerprint: row.get(6),
        dump_dir: row.get(7),
        error: row.get(8),
        size: row.get(9),
        attempts: i64::from(row.get::<_, i32>(10)),
        options: row.get(11),
    }
    .into_job()
}

fn one(
    client: &mut impl GenericClient,
    condition: &str,
    args: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Option<Job>, postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE {condition} ORDER BY seq DESC LIMIT 1");
    Ok(client.query_opt(&sql, args)?.as_ref().map(job_of))
}

fn attempt(lease: &Lease) -> i32 {
    i32::try_from(lease.attempt).unwrap_or(i32::MAX)
}

impl JobStore for PostgresStore {
    fn request(
        &self,
        request: &NewRequest<'_>,
        archive_exists: &dyn Fn(&Job) -> bool,
    ) -> Result<Decision, JobError> {
        let job = request.job;
        let key = job.filter_key();
        let options = job.options.key();
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // Every request for this batch waits here until the one before
        // committed: the cap and "one generating job" are decided on
        // committed rows. The partial unique index backs the latter.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&job.batch_id],
        )?;
        let generating = one(
            &mut tx,
            "batch_id = $1 AND filter = $2 AND options = $3 AND status = 'generating'",
            &[&job.batch_id, &key, &options],
        )?;
        if let Some(running) = generating {
            return Ok(Decision::Running(running));
        }
        if let Some(since) = request.reuse_since {
            let reusable = one(
                &mut tx,
                "batch_id = $1 AND filter = $2 AND options = $3 AND status = 'complete'
                 AND fingerprint = $4 AND created_at > $5",
                &[
                    &job.batch_id,
                    &key,
                    &options,
                    &job.fingerprint,
                    &millis(since),
                ],
            )?;
            if let Some(ready) = reusable.filter(|j| archive_exists(j)) {
                return Ok(Decision::Ready(ready));
            }
        }
        let count: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM jobs WHERE batch_id = $1",
                &[&job.batch_id],
            )?
            .get(0);
        if count as usize >= request.cap {
            return Err(JobError::TooManyJobs {
                batch_id: job.batch_id.clone(),
                cap: request.cap,
            });
        }
        tx.execute(
            "INSERT INTO jobs (id, batch_id, filter, status, created_at, finished_at,
                fingerprint, dump_dir, error, size, attempts, options)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &job.id,
                &job.batch_id,
                &key,
                &job.status.as_str(),
                &millis(job.created_at),
                &job.finished_at.map(millis),
                &job.fingerprint,
                &job.dump_dir.to_string_lossy().as_ref(),
                &job.error,
                &job.size.map(|s| s as i64),
                &i32::try_from(job.attempts).unwrap_or(0),
                &options,
            ],
        )?;
        if job.status == JobStatus::Generating {
            notify(&mut tx)?;
        }
        tx.commit()?;
        Ok(Decision::Inserted)
    }

    fn get(&self, export_id: &str) -> Result<Option<Job>, JobError> {
        Ok(one(&mut *self.conn()?, "id = $1", &[&export_id])?)
    }

    fn list(&self, batch_id: &str) -> Result<Vec<Job>, JobError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE batch_id = $1 ORDER BY seq DESC");
        let rows = self.conn()?.query(&sql, &[&batch_id])?;
        Ok(rows.iter().map(job_of).collect())
    }

    fn claim(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Claim, JobError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // SKIP LOCKED: a job another worker is claiming (or completing)
        // right now is passed over rather than waited for.
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'generating'
             AND (lease_until IS NULL OR lease_until <= $1)
             ORDER BY seq ASC LIMIT 1 FOR UPDATE SKIP LOCKED"
        );
        let Some(mut job) = tx.query_opt(&sql, &[&millis(now)])?.as_ref().map(job_of) else {
            return Ok(Claim::Idle);
        };
        if job.attempts >= max_attempts {
            let reason = gave_up_reason(job.attempts);
            tx.execute(
                "UPDATE jobs SET status = 'failed', finished_at = $2, error = $3,
                 lease_owner = NULL, lease_until = NULL WHERE id = $1",
                &[&job.id, &millis(now), &reason],
            )?;
            tx.commit()?;
            job.status = JobStatus::Failed;
            job.finished_at = Some(now);
            job.error = Some(reason);
            return Ok(Claim::GaveUp(job));
        }
        job.attempts += 1;
        let attempts = i32::try_from(job.attempts).unwrap_or(i32::MAX);
        tx.execute(
            "UPDATE jobs SET attempts = $2, lease_owner = $3, lease_until = $4 WHERE id = $1",
            &[&job.id, &attempts, &owner, &millis(lease_until)],
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
        let n = self.conn()?.execute(
            "UPDATE jobs SET lease_until = $4 WHERE id = $1 AND status = 'generating'
             AND lease_owner = $2 AND attempts = $3",
            &[
                &lease.export_id,
                &lease.owner,
                &attempt(lease),
                &millis(until),
            ],
        )?;
        Ok(n > 0)
    }

    fn release(&self, lease: &Lease) -> Result<(), JobError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let released = tx.execute(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE id = $1
             AND status = 'generating' AND lease_owner = $2 AND attempts = $3",
            &[&lease.export_id, &lease.owner, &attempt(lease)],
        )?;
        // Claimable at once: an idle worker elsewhere may take it now.
        if released > 0 {
            notify(&mut tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn complete(
        &self,
        lease: &Lease,
        at: OffsetDateTime,
        size: u64,
        publish: &mut Publish<'_>,
    ) -> Result<bool, JobError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // The row lock is held until commit: a claim skips the row, so
        // nobody takes the job over while its archive is put in place.
        let held = tx.query_opt(
            "SELECT 1 FROM jobs WHERE id = $1 AND status = 'generating'
             AND lease_owner = $2 AND attempts = $3 FOR UPDATE",
            &[&lease.export_id, &lease.owner, &attempt(lease)],
        )?;
        if held.is_none() {
            return Ok(false);
        }
        publish()?;
        tx.execute(
            "UPDATE jobs SET status = 'complete', finished_at = $2, size = $3, error = NULL,
             lease_owner = NULL, lease_until = NULL WHERE id = $1",
            &[&lease.export_id, &millis(at), &(size as i64)],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn fail(&self, lease: &Lease, at: OffsetDateTime, error: &str) -> Result<bool, JobError> {
        let n = self.conn()?.execute(
            "UPDATE jobs SET status = 'failed', finished_at = $4, error = $5,
             lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND status = 'generating' AND lease_owner = $2 AND attempts = $3",
            &[
                &lease.export_id,
                &lease.owner,
                &attempt(lease),
                &millis(at),
                &error,
            ],
        )?;
        Ok(n > 0)
    }

    fn remove(&self, export_id: &str) -> Result<Removal, JobError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE");
        let Some(job) = tx.query_opt(&sql, &[&export_id])?.as_ref().map(job_of) else {
            return Ok(Removal::NotFound);
        };
        if job.status == JobStatus::Generating {
            return Ok(Removal::Generating);
        }
        tx.execute("DELETE FROM jobs WHERE id = $1", &[&export_id])?;
        tx.commit()?;
        Ok(Removal::Removed(Box::new(job)))
    }

    fn statuses(&self) -> Result<Vec<(String, JobStatus)>, JobError> {
        let rows = self.conn()?.query("SELECT id, status FROM jobs", &[])?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), status_of(row.get(1))))
            .collect())
    }

    fn notices(&self) -> Result<Option<Box<dyn JobNotices>>, JobError> {
        // Its own connection, outside the pool: it stays in LISTEN and
        // only ever waits.
        let mut client = Client::connect(&self.url, NoTls)?;
        client.batch_execute(&format!("LISTEN {JOBS_CHANNEL}"))?;
        Ok(Some(Box::new(PostgresNotices { client })))
    }

    fn lose(&self, export_id: &str, at: OffsetDateTime, error: &str) -> Result<(), JobError> {
        self.conn()?.execute(
            "UPDATE jobs SET status = 'failed', finished_at = $2, error = $3, size = NULL
             WHERE id = $1 AND status = 'complete'",
            &[&export_id, &millis(at), &error],
        )?;
        Ok(())
    }
}

/// Sends the "a job can be claimed" notice, delivered when `tx` commits.
fn notify(tx: &mut impl GenericClient) -> Result<(), postgres::Error> {
    tx.execute("SELECT pg_notify($1, '')", &[&JOBS_CHANNEL])?;
    Ok(())
}

/// A connection listening on [`JOBS_CHANNEL`].
struct PostgresNotices {
    client: Client,
}

impl JobNotices for PostgresNotices {
    fn wait(&mut self, timeout: Duration) -> Result<bool, JobError> {
        if self.client.is_closed() {
            // A closed connection waits for nothing; asking it something
            // turns that into the error the caller reconnects on.
            self.client.batch_execute("SELECT 1")?;
        }
        let mut notifications = self.client.notifications();
        let woken = notifications.timeout_iter(timeout).next()?.is_some();
        // A burst of notices is one wake-up: the woken workers claim all.
        while notifications.iter().next()?.is_some() {}
        Ok(woken)
    }
}
