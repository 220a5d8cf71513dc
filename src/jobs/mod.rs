//! The export-job engine: requests, states, persistence, reuse.
//! No HTTP here; `http/` puts a web API on top of [`Jobs`].
//!
//! A job exports one batch with one [`ExportFilter`] and one set of
//! [`ArchiveOptions`]. It starts
//! `generating` and ends `complete` (its archive is in the state folder)
//! or `failed` (with a reason). Archives are published to a folder or,
//! with feature `s3`, to S3-compatible storage (see [`ObjectsSpec`]). The
//! engine guarantees:
//!
//! - at most one generating job per (batch, filter, options): a request
//!   while one runs returns that job, however many requests arrive at once;
//! - a complete job is reused only while the batch's records are unchanged
//!   (same [`fingerprint()`]) and it is younger than [`JobsConfig::max_age`],
//!   and never with [`ReusePolicy::Never`];
//! - at most [`JobsConfig::max_jobs_per_batch`] jobs per batch;
//! - these are decided by the job [`store`] (SQLite by default, or
//!   PostgreSQL shared by many processes), never by a lock in one process;
//! - a job is built by one worker at a time, under a lease it renews while
//!   building; a job whose worker stopped or vanished is taken over once
//!   its lease is given up or expires (builds are deterministic and
//!   atomic, so a rebuild is safe), and marked failed once it was started
//!   [`JobsConfig::max_attempts`] times; a worker that lost its lease can
//!   neither complete the job nor publish its archive.
//!
//! Every transition (queued, taken by a worker, complete, failed, lease
//! lost) is one `tracing` event with the export id; builds are measured in
//! [`BuildMetrics`].
//!
//! Builds run on this process's worker threads (any number, 0 included),
//! through a [`Builder`] so tests can slow or stop them; the time comes
//! from a [`Clock`].
//!
//! # State folder
//!
//! ```text
//! jobs.sqlite3         the jobs (plus SQLite's -wal and -shm files)
//! exports/<id>.zip     the archive of each complete job
//! exports/.<id>.attempt-<n>.zip  a built archive of attempt n, renamed to
//!                      <id>.zip when published
//! staging/.<id>.attempt-<n>.zip  the same, with archives in S3: uploaded,
//!                      then deleted
//! orphaned/<id>.zip    archives start-up found without a job (see `recovery`)
//! signing.key          the download-link secret (see `http::signing`), if the service uses it
//! ```

mod archives;
pub mod catalog;
pub mod clock;
mod engine;
pub mod filter;
pub mod fingerprint;
pub mod metrics;
pub mod reason;
pub mod recovery;
#[cfg(feature = "s3")]
pub mod s3_dumps;
pub mod store;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

pub use crate::wire::{ArchiveOptions, JobStatus};
pub use archives::ObjectsSpec;
pub use catalog::{BatchInfo, Catalog};
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Jobs, Requested};
pub use fingerprint::fingerprint;
pub use metrics::BuildMetrics;
pub use recovery::Recovery;
#[cfg(feature = "s3")]
pub use s3_dumps::{S3DumpBuilder, S3Dumps};
pub use store::{JobStore, StoreSpec};

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
    /// Object storage (S3) failed.
    #[cfg(feature = "s3")]
    #[error(transparent)]
    Objects(#[from] crate::s3::S3Error),
    /// The PostgreSQL job store failed.
    #[cfg(feature = "postgres")]
    #[error("the job store failed")]
    Postgres(#[from] postgres::Error),
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
    /// A job asked for pseudonymised participants, but the service has no key.
    #[error("this service has no pseudonymisation key, so it cannot pseudonymise")]
    NoPseudonymKey,
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
    /// What the archive holds beyond the default layout: with the filter,
    /// the job's identity.
    pub options: ArchiveOptions,
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

/// When a POST may answer with an existing complete export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReusePolicy {
    /// A recent complete export of unchanged records is returned (SPEC
    /// section 6). The default.
    #[default]
    Recent,
    /// Prolific's newer behaviour: every request starts a job, except that
    /// one of the same batch, filter and options still generating is
    /// returned; complete and failed jobs are never reused.
    Never,
}

impl std::str::FromStr for ReusePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<ReusePolicy, String> {
        match text {
            "recent" => Ok(ReusePolicy::Recent),
            "never" => Ok(ReusePolicy::Never),
            _ => Err(format!("{text:?} is neither recent nor never")),
        }
    }
}

/// The operator's pseudonymisation key; its `Debug` shows nothing of it.
#[derive(Clone)]
struct PseudonymKey(Arc<[u8]>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<key hidden>")
    }
}

/// Settings of the job engine. Every setter documents its default.
#[derive(Clone)]
pub struct JobsConfig {
    state_dir: PathBuf,
    max_age: Duration,
    workers: usize,
    build_threads: Option<usize>,
    memory_budget: u64,
    max_jobs_per_batch: usize,
    max_attempts: u32,
    store_spec: Option<StoreSpec>,
    store: Option<Arc<dyn JobStore>>,
    lease: Duration,
    poll_interval: Duration,
    data_root: Option<PathBuf>,
    objects: Option<ObjectsSpec>,
    observer: Option<Arc<Observer>>,
    reuse: ReusePolicy,
    pseudonym_key: Option<PseudonymKey>,
}

/// What the engine tells an observer (see [`JobsConfig::observer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEvent<'a> {
    /// A worker took a job under a lease.
    Claimed {
        /// The job.
        export_id: &'a str,
        /// Its attempt number (1 for the first build).
        attempt: u32,
        /// The worker, as named in the store.
        owner: &'a str,
    },
    /// A job's archive was published.
    Completed {
        /// The job.
        export_id: &'a str,
        /// The archive's size in bytes.
        size: u64,
    },
    /// A build failed, and the job with it.
    Failed {
        /// The job.
        export_id: &'a str,
        /// Why.
        error: &'a str,
    },
    /// A worker found its lease taken over: its build was dropped and
    /// the job left to the new holder.
    LeaseLost {
        /// The job.
        export_id: &'a str,
        /// The attempt that lost it.
        attempt: u32,
    },
    /// A job started too often was marked failed.
    GaveUp {
        /// The job.
        export_id: &'a str,
        /// How many builds were started.
        attempts: u32,
    },
    /// The store could not be reached or refused a statement; the worker
    /// carries on and tries again.
    StoreError {
        /// The error.
        message: &'a str,
    },
}

/// A callback told of [`JobEvent`]s; called on worker threads.
pub type Observer = dyn Fn(&JobEvent<'_>) + Send + Sync;

impl std::fmt::Debug for JobsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsConfig")
            .field("state_dir", &self.state_dir)
            .field("max_age", &self.max_age)
            .field("workers", &self.workers)
            .field("max_jobs_per_batch", &self.max_jobs_per_batch)
            .field("max_attempts", &self.max_attempts)
            .field("store", &self.store_spec)
            .field("lease", &self.lease)
            .field("reuse", &self.reuse)
            .field("pseudonym_key", &self.pseudonym_key)
            .finish_non_exhaustive()
    }
}

impl JobsConfig {
    /// Settings keeping the store and archives in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> JobsConfig {
        JobsConfig {
            state_dir: state_dir.into(),
            max_age: Duration::from_secs(24 * 3600),
            workers: 1,
            build_threads: None,
            memory_budget: crate::options::DEFAULT_MEMORY_BUDGET,
            max_jobs_per_batch: 10,
            max_attempts: 3,
            store_spec: None,
            store: None,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            data_root: None,
            objects: None,
            observer: None,
            reuse: ReusePolicy::Recent,
            pseudonym_key: None,
        }
    }

    /// When a complete export is reused. Default [`ReusePolicy::Recent`].
    pub fn reuse(mut self, reuse: ReusePolicy) -> JobsConfig {
        self.reuse = reuse;
        self
    }

    /// The key jobs with `pseudonymise` use; it is kept in memory only,
    /// never in the store or a log. Default: none, and such jobs are refused.
    pub fn pseudonym_key(mut self, key: impl AsRef<[u8]>) -> JobsConfig {
        self.pseudonym_key = Some(PseudonymKey(key.as_ref().into()));
        self
    }

    /// True when jobs may ask for pseudonymised archives.
    pub fn can_pseudonymise(&self) -> bool {
        self.pseudonym_key.is_some()
    }

    /// The key, for a worker's build only.
    fn key_for_builds(&self) -> Option<&[u8]> {
        self.pseudonym_key.as_ref().map(|key| &*key.0)
    }

    /// How old a complete export may be and still be reused. Default 24 hours.
    pub fn max_age(mut self, age: Duration) -> JobsConfig {
        self.max_age = age;
        self
    }

    /// How many builds this process runs at once. Default 1; 0 makes an
    /// engine that only records and answers requests, for workers of
    /// other processes to build.
    pub fn workers(mut self, workers: usize) -> JobsConfig {
        self.workers = workers;
        self
    }

    /// Threads of each build's own pool. Default: one per core.
    pub fn build_threads(mut self, threads: usize) -> JobsConfig {
        self.build_threads = Some(threads.max(1));
        self
    }

    /// The memory budget of each build
    /// ([`ExportOptions::memory_budget`]). Default:
    /// [`DEFAULT_MEMORY_BUDGET`](crate::options::DEFAULT_MEMORY_BUDGET).
    pub fn memory_budget(mut self, bytes: u64) -> JobsConfig {
        self.memory_budget = bytes;
        self
    }

    /// The most jobs a batch may have. Default 10.
    pub fn max_jobs_per_batch(mut self, cap: usize) -> JobsConfig {
        self.max_jobs_per_batch = cap;
        self
    }

    /// How many builds of one job are started (after restarts or lost
    /// leases) before it is marked failed. Default 3.
    pub fn max_attempts(mut self, attempts: u32) -> JobsConfig {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Which job store to open. Default: SQLite at
    /// `<state_dir>/jobs.sqlite3`.
    pub fn store(mut self, spec: StoreSpec) -> JobsConfig {
        self.store_spec = Some(spec);
        self
    }

    /// An already open job store (for tests wrapping one). Default: open
    /// [`JobsConfig::store`].
    pub fn store_instance(mut self, store: Arc<dyn JobStore>) -> JobsConfig {
        self.store = Some(store);
        self
    }

    /// How long a worker's lease on a job lasts without renewal; it is
    /// renewed every third of that while the build runs. Default 60 s.
    pub fn lease(mut self, lease: Duration) -> JobsConfig {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// How often an idle worker looks for jobs inserted by other
    /// processes (its own process wakes it at once). Default 1 s.
    pub fn poll_interval(mut self, every: Duration) -> JobsConfig {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// The data folder: jobs record their dump relative to it, and a
    /// worker finds the dump under its own data folder, so processes may
    /// mount it at different paths. Default: none (absolute paths).
    pub fn data_root(mut self, root: impl Into<PathBuf>) -> JobsConfig {
        self.data_root = Some(root.into());
        self
    }

    /// The folder archives are kept in. Default `<state_dir>/exports`.
    pub fn objects_dir(mut self, dir: impl Into<PathBuf>) -> JobsConfig {
        self.objects = Some(ObjectsSpec::Folder(dir.into()));
        self
    }

    /// Keeps archives in S3-compatible storage instead of a folder: each
    /// is built in `<state_dir>/staging`, uploaded by a multipart upload
    /// and published whole when the upload is completed; links to it are
    /// presigned GETs. Default: the folder of [`JobsConfig::objects_dir`].
    #[cfg(feature = "s3")]
    pub fn objects_s3(mut self, objects: crate::s3::S3Objects) -> JobsConfig {
        self.objects = Some(ObjectsSpec::S3(objects));
        self
    }

    /// Told of what workers do (a job taken, published, failed, a lease
    /// lost), e.g. to log it. Default: none.
    pub fn observer(mut self, observer: Arc<Observer>) -> JobsConfig {
        self.observer = Some(observer);
        self
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The job store to open.
    pub fn store_spec(&self) -> StoreSpec {
        self.store_spec
            .clone()
            .unwrap_or_else(|| StoreSpec::Sqlite(self.state_dir.join("jobs.sqlite3")))
    }

    /// Where archives are published.
    pub fn objects_spec(&self) -> ObjectsSpec {
        self.objects
            .clone()
            .unwrap_or_else(|| ObjectsSpec::Folder(self.state_dir.join("exports")))
    }

    fn emit(&self, event: &JobEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    /// The dump directory as a job records it.
    fn stored_dump_dir(&self, dir: &Path) -> PathBuf {
        match &self.data_root {
            Some(root) => dir.strip_prefix(root).unwrap_or(dir).to_path_buf(),
            None => dir.to_path_buf(),
        }
    }

    /// The dump directory a recorded one means here.
    fn resolve_dump_dir(&self, recorded: &Path) -> PathBuf {
        match &self.data_root {
            Some(root) => root.join(recorded),
            None => recorded.to_path_buf(),
        }
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
    /// The job's archive options.
    pub options: &'a ArchiveOptions,
    /// The service's pseudonymisation key, for a job with `pseudonymise`.
    pub pseudonym_key: Option<&'a [u8]>,
    /// Where the archive goes; it must appear there atomically.
    pub output: &'a Path,
    /// Set when the engine shuts down: stop soon with [`crate::Error::Cancelled`].
    pub cancel: &'a Arc<AtomicBool>,
    /// Threads for the build, if configured.
    pub threads: Option<usize>,
    /// The build's memory budget in bytes.
    pub memory_budget: u64,
}

/// Builds a job's archive. [`DumpBuilder`] is the real one; tests wrap it
/// to hold a build at a gate.
pub trait Builder: Send + Sync {
    /// Writes the archive of `job` atomically at `job.output`.
    fn build(&self, job: &BuildJob<'_>) -> Result<(), crate::Error>;

    /// The [`fingerprint()`] of the dump this builder would build from
    /// at `dump_dir`, taken when a job is requested. Default: the dump
    /// directory's.
    fn fingerprint(&self, dump_dir: &Path) -> Result<String, JobError> {
        fingerprint(dump_dir)
    }
}

/// Builds from the dump directory with [`Dump::build`], within the job's
/// memory budget.
#[derive(Debug, Clone, Copy, Default)]
pub struct DumpBuilder;

impl BuildJob<'_> {
    /// The export options of the job: its filter, archive options,
    /// pseudonymisation key, cancel flag and threads.
    pub fn export_options(&self) -> Result<ExportOptions, crate::Error> {
        let mut options = ExportOptions::new()
            .filter(self.filter.clone())
            .cancel_flag(Arc::clone(self.cancel))
            .tables(self.options.tables)
            .include_files(self.options.include_files)
            .memory_budget(self.memory_budget);
        if self.options.pseudonymise {
            // The engine refuses such jobs without a key; refusing here too
            // keeps a custom engine from shipping real ids by mistake.
            let key = self.pseudonym_key.ok_or(crate::Error::InvalidOption {
                option: "pseudonymise",
                message: "the service has no pseudonymisation key".to_owned(),
            })?;
            options = options.pseudonymise(key);
        }
        if let Some(threads) = self.threads {
            options = options.threads(threads);
        }
        Ok(options)
    }
}

impl Builder for DumpBuilder {
    fn build(&self, job: &BuildJob<'_>) -> Result<(), crate::Error> {
        let options = job.export_options()?.progress(Arc::new(SpillLog::of(job)));
        Dump::build(job.dump_dir, job.output, &options)?;
        Ok(())
    }
}

/// Logs, as `build spills past the memory budget`, that a job's dump is
/// past the budget: the operator then knows why the build takes disk
/// beside its archive and longer than one in memory.
pub(crate) struct SpillLog {
    export_id: String,
}

impl SpillLog {
    /// The log of `job`'s build.
    pub(crate) fn of(job: &BuildJob<'_>) -> SpillLog {
        SpillLog {
            export_id: job.export_id.to_owned(),
        }
    }
}

impl crate::Progress for SpillLog {
    fn event(&self, event: crate::ProgressEvent) {
        if let crate::ProgressEvent::Spilling {
            estimated_bytes,
            budget_bytes,
        } = event
        {
            tracing::info!(
                export_id = %self.export_id,
                estimated_mib = estimated_bytes >> 20,
                budget_mib = budget_bytes >> 20,
                "build spills past the memory budget"
            );
        }
    }
}
