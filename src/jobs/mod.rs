//! The export-job engine: requests, states, persistence, reuse.
//! No HTTP here; `http/` puts a web API on top of [`Jobs`].
//!
//! A job exports one batch with one [`ExportFilter`]. It starts
//! `generating` and ends `complete` (its archive is in the state folder)
//! or `failed` (with a reason). The engine guarantees:
//!
//! - at most one generating job per (batch, filter): a request while one
//!   runs returns that job, however many requests arrive at once;
//! - a complete job is reused only while the batch's records are unchanged
//!   (same [`fingerprint()`]) and it is younger than [`JobsConfig::max_age`];
//! - at most [`JobsConfig::max_jobs_per_batch`] jobs per batch;
//! - jobs live in SQLite ([`store`]): a job found generating at start-up
//!   is built again (builds are deterministic and atomic, so a rebuild is
//!   safe), or marked failed once it was interrupted too often.
//!
//! Every transition (queued, started, complete, failed, rebuilt after a
//! restart) is one `tracing` event with the export and batch ids; builds
//! are measured in [`BuildMetrics`].
//!
//! Builds run on a fixed pool of worker threads, through a [`Builder`] so
//! tests can slow or stop them; the time comes from a [`Clock`].
//!
//! # State folder
//!
//! ```text
//! jobs.sqlite3         the jobs (plus SQLite's -wal and -shm files)
//! exports/<id>.zip     the archive of each complete job
//! orphaned/<id>.zip    archives start-up found without a job (see `recovery`)
//! signing.key          the download-link secret (see `http::signing`), if the service uses it
//! ```

pub mod catalog;
pub mod clock;
mod engine;
pub mod filter;
pub mod fingerprint;
pub mod metrics;
pub mod reason;
pub mod recovery;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

pub use crate::wire::JobStatus;
pub use catalog::{BatchInfo, Catalog};
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Jobs, Requested};
pub use fingerprint::fingerprint;
pub use metrics::BuildMetrics;
pub use recovery::Recovery;

use crate::filter::FilterError;
use crate::{Dump, ExportFilter, ExportOptions};

/// Everything that can go wrong in the job engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A file or folder could not be read or written.
    #[error("{path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The SQLite job store failed.
    #[error("the job store failed")]
    Store(#[from] rusqlite::Error),
    /// The batch already has as many jobs as allowed.
    #[error("batch {batch_id} already has {cap} export jobs, the most allowed; delete some first")]
    TooManyJobs {
        /// The batch.
        batch_id: String,
        /// The cap.
        cap: usize,
    },
    /// The job is still generating, so it cannot be deleted.
    #[error("export {export_id} is still generating")]
    StillGenerating {
        /// The job.
        export_id: String,
    },
    /// No such job for this batch.
    #[error("export {export_id} not found")]
    NotFound {
        /// The job asked for.
        export_id: String,
    },
    /// A filter term is unusable.
    #[error("invalid filter: {0}")]
    InvalidFilter(#[from] FilterError),
    /// The service's configuration or state folder is unusable.
    #[error("{message}")]
    Config {
        /// What is wrong.
        message: String,
    },
}

impl JobError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> JobError {
        JobError::Io {
            path: path.into(),
            source,
        }
    }
}

/// One export job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The export id (a UUID).
    pub id: String,
    /// The batch exported.
    pub batch_id: String,
    /// Which responses the export holds (normalized).
    pub filter: ExportFilter,
    /// Where the job is.
    pub status: JobStatus,
    /// When the job was requested.
    pub created_at: OffsetDateTime,
    /// When it completed or failed.
    pub finished_at: Option<OffsetDateTime>,
    /// The dump's [`fingerprint()`] when the job was requested.
    pub fingerprint: String,
    /// The dump directory the job builds from.
    pub dump_dir: PathBuf,
    /// Why a failed job failed.
    pub error: Option<String>,
    /// The archive's size in bytes, once complete.
    pub size: Option<u64>,
    /// How many times a build was started (more than one after restarts).
    pub attempts: u32,
}

impl Job {
    /// The canonical JSON of the job's filter.
    pub fn filter_key(&self) -> String {
        filter::key(&self.filter)
    }

    /// The download file name ([`crate::naming::archive_file_name`]) at
    /// the job's creation time.
    pub fn file_name(&self) -> String {
        crate::naming::archive_file_name(&self.batch_id, self.created_at)
    }
}

/// Settings of the job engine. Every setter documents its default.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    state_dir: PathBuf,
    max_age: Duration,
    workers: usize,
    build_threads: Option<usize>,
    max_jobs_per_batch: usize,
    max_attempts: u32,
}

impl JobsConfig {
    /// Settings keeping the store and archives in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> JobsConfig {
        JobsConfig {
            state_dir: state_dir.into(),
            max_age: Duration::from_secs(24 * 3600),
            workers: 1,
            build_threads: None,
            max_jobs_per_batch: 10,
            max_attempts: 3,
        }
    }

    /// How old a complete export may be and still be reused. Default 24 hours.
    pub fn max_age(mut self, age: Duration) -> JobsConfig {
        self.max_age = age;
        self
    }

    /// How many builds run at once. Default 1 (at least 1).
    pub fn workers(mut self, workers: usize) -> JobsConfig {
        self.workers = workers.max(1);
        self
    }

    /// Threads of each build's own pool. Default: one per core.
    pub fn build_threads(mut self, threads: usize) -> JobsConfig {
        self.build_threads = Some(threads.max(1));
        self
    }

    /// The most jobs a batch may have. Default 10.
    pub fn max_jobs_per_batch(mut self, cap: usize) -> JobsConfig {
        self.max_jobs_per_batch = cap;
        self
    }

    /// How many times a job interrupted by restarts is started before it
    /// is marked failed. Default 3.
    pub fn max_attempts(mut self, attempts: u32) -> JobsConfig {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

/// What a worker hands a [`Builder`].
#[derive(Debug)]
pub struct BuildJob<'a> {
    /// The job's export id.
    pub export_id: &'a str,
    /// The dump directory.
    pub dump_dir: &'a Path,
    /// The job's filter.
    pub filter: &'a ExportFilter,
    /// Where the archive goes; it must appear there atomically.
    pub output: &'a Path,
    /// Set when the engine shuts down: stop soon with [`crate::Error::Cancelled`].
    pub cancel: &'a Arc<AtomicBool>,
    /// Threads for the build, if configured.
    pub threads: Option<usize>,
}

/// Builds a job's archive. [`DumpBuilder`] is the real one; tests wrap it
/// to hold a build at a gate.
pub trait Builder: Send + Sync {
    /// Writes the archive of `job` atomically at `job.output`.
    fn build(&self, job: &BuildJob<'_>) -> Result<(), crate::Error>;
}

/// Builds from the dump directory with [`Dump::export_to_path`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DumpBuilder;

impl Builder for DumpBuilder {
    fn build(&self, job: &BuildJob<'_>) -> Result<(), crate::Error> {
        let dump = Dump::open(job.dump_dir)?;
        let mut options = ExportOptions::new()
            .filter(job.filter.clone())
            .cancel_flag(Arc::clone(job.cancel));
        if let Some(threads) = job.threads {
            options = options.threads(threads);
        }
        dump.export_to_path(job.output, &options)?;
        Ok(())
    }
}
