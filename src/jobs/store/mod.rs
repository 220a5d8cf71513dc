//! The job store: where jobs live, behind one seam ([`JobStore`]) with two
//! engines, SQLite ([`SqliteStore`], the embedded default) and PostgreSQL
//! ([`PostgresStore`], for many API processes and workers on one queue).
//!
//! Every decision that must hold across processes is taken by the
//! database, in one transaction, never by a lock inside one process:
//!
//! - [`JobStore::request`]: "is one generating? is one reusable? is the
//!   batch at its cap? then insert". SQLite serializes it with a write
//!   transaction (`BEGIN IMMEDIATE`), PostgreSQL with an advisory lock per
//!   batch; a partial unique index (one generating job per batch, filter
//!   and options) backs both.
//! - [`JobStore::claim`]: a worker takes the oldest generating job nobody
//!   holds (no lease, or an expired one) and leases it; on PostgreSQL with
//!   `FOR UPDATE SKIP LOCKED`, so idle workers never queue on each other.
//! - [`JobStore::complete`] and [`JobStore::fail`] are fenced: they act
//!   only while the caller's [`Lease`] (owner and attempt number) is still
//!   the job's, and `complete` publishes the archive while it holds the
//!   job's row, so a worker whose lease was taken over can neither finish
//!   the job nor put its archive in place.
//!
//! Idle workers learn of jobs other processes queue from
//! [`JobStore::notices`] where the store can tell (PostgreSQL's
//! `LISTEN`/`NOTIFY`), and by polling either way, as a fallback.
//!
//! Times are Unix milliseconds from the engine's [`Clock`](super::Clock),
//! passed in by the caller. Schemas are versioned migrations kept in the
//! repository (`migrations/sqlite/`, `migrations/postgres/`) and applied
//! on open. A job's filter is kept as canonical JSON, which is also the key
//! that tells two filters apart, and so are its archive options
//! ([`ArchiveOptions::key`]); `seq` orders jobs by creation. The
//! pseudonymisation key is never stored: a job only records that it uses
//! the service's.

#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;
use super::{ArchiveOptions, Job, JobError, JobStatus};

/// Which store to open: `sqlite:PATH` or `postgres://USER@HOST:PORT/DB`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (URL or `key=value` form).
    Postgres(String),
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            // A connection string may hold a password: never in a log.
            StoreSpec::Postgres(_) => f.write_str("Postgres(..)"),
        }
    }
}

impl std::str::FromStr for StoreSpec {
    type Err = JobError;

    /// Parses `sqlite:PATH`, `postgres://...` or `postgresql://...`.
    fn from_str(text: &str) -> Result<StoreSpec, JobError> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(config("--store sqlite: needs a path"));
            }
            return Ok(StoreSpec::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreSpec::Postgres(text.to_owned()));
        }
        Err(config(
            "a job store is sqlite:PATH or postgres://USER@HOST:PORT/DB",
        ))
    }
}

impl StoreSpec {
    /// Opens (creating and migrating if needed) the store.
    pub fn open(&self) -> Result<Arc<dyn JobStore>, JobError> {
        match self {
            StoreSpec::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => Ok(Arc::new(PostgresStore::connect(url)?)),
            #[cfg(not(feature = "postgres"))]
            StoreSpec::Postgres(_) => Err(config(
                "this build has no PostgreSQL support (the `postgres` feature)",
            )),
        }
    }
}

fn config(message: &str) -> JobError {
    JobError::Config {
        message: message.to_owned(),
    }
}

/// What a request asks the store to decide.
#[derive(Debug)]
pub struct NewRequest<'a> {
    /// The job to insert when nothing generating or reusable exists; it
    /// names the batch, canonical filter, options and fingerprint the
    /// store compares with.
    pub job: &'a Job,
    /// Complete jobs created at or before this are too old to reuse;
    /// `None` reuses no complete job ([`ReusePolicy::Never`](super::ReusePolicy::Never)).
    pub reuse_since: Option<OffsetDateTime>,
    /// The most jobs the batch may have.
    pub cap: usize,
}

/// What the store decided for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The new job was inserted.
    Inserted,
    /// A job of the same batch, filter and options is generating.
    Running(Job),
    /// A recent complete job of the same records exists.
    Ready(Job),
}

/// A worker's hold on a job: only its owner, on this attempt, may finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub export_id: String,
    /// The worker holding it (unique per worker thread and process).
    pub owner: String,
    /// The job's attempt number when claimed: the fencing token.
    pub attempt: u32,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nothing to build.
    Idle,
    /// A job to build, and the lease on it.
    Leased(Job, Lease),
    /// A job that was started `max_attempts` times already: the store
    /// marked it failed instead of leasing it.
    GaveUp(Job),
}

/// What removing a job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// No such job.
    NotFound,
    /// The job is generating and was kept.
    Generating,
    /// The job was removed (it is returned, so its archive can go too).
    Removed(Box<Job>),
}

/// Publishes a job's archive; run by [`JobStore::complete`] while the
/// store holds the job, so nobody can take the job over meanwhile.
pub type Publish<'a> = dyn FnMut() -> Result<(), JobError> + 'a;

/// Word from the store that some process queued a job (or gave one back),
/// so idle workers look for it at once instead of at their next poll.
pub trait JobNotices: Send {
    /// Waits up to `timeout` for word; true when some came (several
    /// notices are taken as one). An error means the notices are lost
    /// (e.g. the connection broke): ask the store for new ones.
    fn wait(&mut self, timeout: Duration) -> Result<bool, JobError>;
}

/// The operations the job engine needs from a store. Every method is one
/// transaction; see the module docs for who decides what.
pub trait JobStore: Send + Sync {
    /// Decides a request: a generating job of the same batch, filter and
    /// options wins, then a reusable complete one (unless
    /// [`NewRequest::reuse_since`] is `None`) (`archive_exists` tells whether
    /// its archive is still there), then the cap; otherwise the new job is
    /// inserted. Refuses with [`JobError::TooManyJobs`] at the cap.
    fn request(
        &self,
        request: &NewRequest<'_>,
        archive_exists: &dyn Fn(&Job) -> bool,
    ) -> Result<Decision, JobError>;

    /// The job with this id.
    fn get(&self, export_id: &str) -> Result<Option<Job>, JobError>;

    /// A batch's jobs, newest first.
    fn list(&self, batch_id: &str) -> Result<Vec<Job>, JobError>;

    /// Leases the oldest generating job that nobody holds (no lease, or
    /// one that expired at or before `now`) to `owner` until
    /// `lease_until`, counting one more attempt. A job already started
    /// `max_attempts` times is failed instead ([`Claim::GaveUp`]).
    fn claim(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Claim, JobError>;

    /// Extends a lease; false when it is no longer the job's.
    fn renew(&self, lease: &Lease, until: OffsetDateTime) -> Result<bool, JobError>;

    /// Gives a lease up (the job stays generating, claimable at once);
    /// nothing happens when it is no longer the job's.
    fn release(&self, lease: &Lease) -> Result<(), JobError>;

    /// Marks the leased job complete with an archive of `size` bytes,
    /// after running `publish` while holding the job. False (and
    /// `publish` not run) when the lease is no longer the job's; an error
    /// of `publish` leaves the job as it was and is returned.
    fn complete(
        &self,
        lease: &Lease,
        at: OffsetDateTime,
        size: u64,
        publish: &mut Publish<'_>,
    ) -> Result<bool, JobError>;

    /// Marks the leased job failed, saying why; false when the lease is
    /// no longer the job's.
    fn fail(&self, lease: &Lease, at: OffsetDateTime, error: &str) -> Result<bool, JobError>;

    /// Removes a job unless it is generating.
    fn remove(&self, export_id: &str) -> Result<Removal, JobError>;

    /// The id and status of every job (for start-up's reconciliation).
    fn statuses(&self) -> Result<Vec<(String, JobStatus)>, JobError>;

    /// How many jobs each status has (every status, zeros included); also
    /// the service's health check, since it needs the database to answer.
    fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, JobError> {
        let mut counts: Vec<(JobStatus, u64)> = JobStatus::ALL.iter().map(|&s| (s, 0)).collect();
        for (_, status) in self.statuses()? {
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 += 1;
            }
        }
        Ok(counts)
    }

    /// Marks a complete job failed (its archive is gone), saying why.
    fn lose(&self, export_id: &str, at: OffsetDateTime, error: &str) -> Result<(), JobError>;

    /// A listener told whenever any process queues a job or gives a lease
    /// up; `None` (the default, and SQLite's answer) when the store cannot
    /// tell, so workers only poll.
    fn notices(&self) -> Result<Option<Box<dyn JobNotices>>, JobError> {
        Ok(None)
    }
}

/// The columns every query reads, in [`RawJob`]'s order.
const COLUMNS: &str = "id, batch_id, filter, status, created_at, finished_at, fingerprint, \
                       dump_dir, error, size, attempts, options";

/// A job row as both engines read it, before it becomes a [`Job`].
struct RawJob {
    id: String,
    batch_id: String,
    filter: String,
    status: String,
    created_at: i64,
    finished_at: Option<i64>,
    fingerprint: String,
    dump_dir: String,
    error: Option<String>,
    size: Option<i64>,
    attempts: i64,
    options: String,
}

impl RawJob {
    fn into_job(self) -> Job {
        Job {
            id: self.id,
            batch_id: self.batch_id,
            filter: super::filter::from_key(&self.filter),
            status: status_of(&self.status),
            created_at: from_millis(self.created_at),
            finished_at: self.finished_at.map(from_millis),
            fingerprint: self.fingerprint,
            dump_dir: self.dump_dir.into(),
            error: self.error,
            size: self.size.map(|s| s as u64),
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            options: ArchiveOptions::from_key(&self.options),
        }
    }
}

/// The status of a stored spelling; only the three of
/// [`JobStatus::as_str`] are ever written, anything else is safest failed.
fn status_of(text: &str) -> JobStatus {
    JobStatus::ALL
        .into_iter()
        .find(|status| status.as_str() == text)
        .unwrap_or(JobStatus::Failed)
}

/// The reason a job is failed with once it was started too often.
fn gave_up_reason(attempts: u32) -> String {
    format!(
        "the build was interrupted {attempts} times (the service stopped or its worker \
         lost the lease); request the export again"
    )
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs() {
        assert_eq!(
            "sqlite:/tmp/j.db".parse::<StoreSpec>().unwrap(),
            StoreSpec::Sqlite("/tmp/j.db".into())
        );
        let pg: StoreSpec = "postgres://u:secret@h:5432/db".parse().unwrap();
        assert_eq!(format!("{pg:?}"), "Postgres(..)");
        assert!("mysql://x".parse::<StoreSpec>().is_err());
        assert!("sqlite:".parse::<StoreSpec>().is_err());
    }
}
