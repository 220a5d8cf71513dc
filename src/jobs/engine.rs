//! [`Jobs`], the engine handle: requests, queries, and this process's
//! workers.
//!
//! Every decision ("is one generating? is one reusable? is the batch at
//! its cap? then insert") is one transaction of the [`JobStore`], so a
//! burst of identical requests makes a single job however many processes
//! share the store. Builds run on worker threads ([`super::worker`]) that
//! claim jobs from the store under a lease; a request that inserted a job
//! wakes this process's idle workers at once, and workers of other
//! processes through the store's notices (PostgreSQL's `LISTEN`/`NOTIFY`),
//! or on their next poll where the store sends none.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::archives::ArchiveStore;
use super::reason::redact_paths;
use super::recovery::{self, Recovery};
use super::store::{Decision, JobStore, NewRequest, Removal, StoreSpec};
use super::{
    ArchiveOptions, BatchInfo, BuildMetrics, Builder, Clock, Job, JobError, JobStatus, JobsConfig,
    ReusePolicy,
};
use crate::error::display_chain;
use crate::ExportFilter;

/// What a request found or started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// A new job was started.
    Started(Job),
    /// A job for this batch, filter and options was already generating.
    Running(Job),
    /// A recent complete export of the current records exists.
    Ready(Job),
}

impl Requested {
    /// The job, whichever case.
    pub fn job(&self) -> &Job {
        match self {
            Requested::Started(job) | Requested::Running(job) | Requested::Ready(job) => job,
        }
    }
}

/// The job engine: a cheap, cloneable handle shared by every request.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    // What start-up found wrong with the state folder and fixed.
    recovered: Vec<Recovery>,
}

/// What the workers need.
pub(super) struct Shared {
    pub(super) store: Arc<dyn JobStore>,
    pub(super) config: JobsConfig,
    /// Where archives are built and published.
    pub(super) archives: ArchiveStore,
    pub(super) builder: Arc<dyn Builder>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) metrics: BuildMetrics,
    /// Set on shutdown: builds are cancelled and their leases given up,
    /// so the job waits, generating, for the next worker.
    pub(super) stopping: Arc<AtomicBool>,
    /// Counts the jobs this process inserted; idle workers wait for it to
    /// move (or for the poll interval to pass).
    wake: Mutex<u64>,
    woken: Condvar,
    /// This process's name in leases (a random id, so two processes on
    /// one host never share one).
    pub(super) owner: String,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// Opens the engine on its store and state folder (created if needed),
    /// puts the folder in order ([`Jobs::recovered`] says what was fixed)
    /// and starts its workers, which also take over the jobs a previous
    /// run left generating.
    pub fn open(
        config: JobsConfig,
        builder: Arc<dyn Builder>,
        clock: Arc<dyn Clock>,
    ) -> Result<Jobs, JobError> {
        let archives = ArchiveStore::new(config.objects_spec(), config.state_dir());
        archives.prepare()?;
        let spec = config.store_spec();
        let empty_store = match (&config.store, &spec) {
            (None, StoreSpec::Sqlite(path)) if recovery::store_is_empty(path) => Some(path.clone()),
            _ => None,
        };
        let store = match &config.store {
            Some(store) => Arc::clone(store),
            None => spec.open()?,
        };
        // Before this process's workers start. Other processes may be
        // building meanwhile: a build in progress is a dot file, and its
        // archive is renamed into place only while its job is still
        // generating, so neither is taken for an orphan. (Objects in S3
        // are not reconciled, only their staging folder: see
        // docs/deploy.md.)
        let recovered = match archives.folder() {
            Some(exports) => recovery::reconcile(
                config.state_dir(),
                exports,
                &*store,
                empty_store,
                clock.now(),
            )?,
            None => recovery::reconcile_staging(archives.build_dir(), &*store)?,
        };
        let owner = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let shared = Arc::new(Shared {
            store,
            config,
            archives,
            builder,
            clock,
            metrics: BuildMetrics::default(),
            stopping: Arc::new(AtomicBool::new(false)),
            wake: Mutex::new(0),
            woken: Condvar::new(),
            owner,
        });
        let mut workers: Vec<JoinHandle<()>> = (0..shared.config.workers)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || super::worker::run(&shared, index))
            })
            .collect();
        if shared.config.workers > 0 {
            // Listening before `open` returns: a job queued elsewhere from
            // then on wakes these workers.
            let notices = shared.store.notices();
            let shared = Arc::clone(&shared);
            workers.push(std::thread::spawn(move || {
                super::worker::listen(&shared, notices)
            }));
        }
        Ok(Jobs {
            inner: Arc::new(Inner {
                shared,
                workers: Mutex::new(workers),
                recovered,
            }),
        })
    }

    /// Requests an export of `batch` with `filter` and the default archive
    /// options: see [`Jobs::request_with`].
    pub fn request(&self, batch: &BatchInfo, filter: ExportFilter) -> Result<Requested, JobError> {
        self.request_with(batch, filter, ArchiveOptions::default())
    }

    /// Requests an export of `batch` with `filter` and `options`: returns
    /// the generating job of the three, or (under [`ReusePolicy::Recent`])
    /// a reusable complete one, or starts a new job.
    pub fn request_with(
        &self,
        batch: &BatchInfo,
        filter: ExportFilter,
        options: ArchiveOptions,
    ) -> Result<Requested, JobError> {
        let shared = &self.inner.shared;
        if options.pseudonymise && !shared.config.can_pseudonymise() {
            return Err(JobError::NoPseudonymKey);
        }
        let filter = filter.normalized()?;
        // Hashing the dump happens outside the store's transaction, so a
        // burst of requests hashes in parallel and only the decision is
        // serialized.
        // A dump that cannot even be hashed cannot be built either: the
        // request gets a failed job saying why, not an error answer (its
        // empty fingerprint matches no complete job, so nothing is reused).
        let (fingerprint, unreadable) = match self.inner.shared.builder.fingerprint(&batch.dir) {
            Ok(fingerprint) => (fingerprint, None),
            Err(err) => {
                let why = redact_paths(&display_chain(&err), Some(&batch.dir));
                (
                    String::new(),
                    Some(format!("the batch's dump is unreadable: {why}")),
                )
            }
        };
        let now = shared.clock.now();
        let job = Job {
            id: uuid::Uuid::new_v4().to_string(),
            batch_id: batch.id.clone(),
            filter,
            status: if unreadable.is_some() {
                JobStatus::Failed
            } else {
                JobStatus::Generating
            },
            created_at: now,
            finished_at: unreadable.as_ref().map(|_| now),
            fingerprint,
            dump_dir: shared.config.stored_dump_dir(&batch.dir),
            error: unreadable,
            size: None,
            attempts: 0,
            options,
        };
        let request = NewRequest {
            job: &job,
            reuse_since: match shared.config.reuse {
                ReusePolicy::Recent => Some(now - shared.config.max_age),
                ReusePolicy::Never => None,
            },
            cap: shared.config.max_jobs_per_batch,
        };
        // An archive removed behind the engine's back is not reusable.
        let exists = |job: &Job| shared.archives.exists(&job.id);
        match shared.store.request(&request, &exists)? {
            Decision::Inserted if job.status == JobStatus::Generating => {
                tracing::info!(
                    export_id = %job.id,
                    batch_id = ?job.batch_id,
                    filter = %job.filter_key(),
                    options = %job.options.key(),
                    "job queued"
                );
                shared.wake_workers();
                Ok(Requested::Started(job))
            }
            Decision::Inserted => {
                tracing::warn!(
                    export_id = %job.id,
                    batch_id = ?job.batch_id,
                    reason = job.error.as_deref().unwrap_or_default(),
                    "job failed"
                );
                Ok(Requested::Started(job))
            }
            Decision::Running(job) => Ok(Requested::Running(job)),
            Decision::Ready(job) => Ok(Requested::Ready(job)),
        }
    }

    /// The job `export_id` of `batch_id`.
    pub fn get(&self, batch_id: &str, export_id: &str) -> Result<Job, JobError> {
        match self.find(export_id)? {
            Some(job) if job.batch_id == batch_id => Ok(job),
            _ => Err(JobError::NotFound {
                export_id: export_id.to_owned(),
            }),
        }
    }

    /// The job `export_id`, whatever its batch.
    pub fn find(&self, export_id: &str) -> Result<Option<Job>, JobError> {
        self.inner.shared.store.get(export_id)
    }

    /// A batch's jobs, newest first.
    pub fn list(&self, batch_id: &str) -> Result<Vec<Job>, JobError> {
        self.inner.shared.store.list(batch_id)
    }

    /// Removes a finished job and its archive; refused while generating.
    pub fn delete(&self, batch_id: &str, export_id: &str) -> Result<(), JobError> {
        let not_found = || JobError::NotFound {
            export_id: export_id.to_owned(),
        };
        // Another batch's job is "not found" and is left alone.
        if self
            .find(export_id)?
            .is_none_or(|job| job.batch_id != batch_id)
        {
            return Err(not_found());
        }
        match self.inner.shared.store.remove(export_id)? {
            Removal::NotFound => Err(not_found()),
            Removal::Generating => Err(JobError::StillGenerating {
                export_id: export_id.to_owned(),
            }),
            Removal::Removed(_) => {
                // The row goes first: from then on no link to the archive
                // verifies, and no poll presigns a new one.
                self.inner.shared.archives.remove(export_id)
            }
        }
    }

    /// Where the archive of `export_id` is kept, when archives are in a
    /// folder (with archives in S3, a path that does not exist).
    pub fn archive_path(&self, export_id: &str) -> PathBuf {
        self.inner.shared.archives.local_path(export_id)
    }

    /// A presigned GET of a complete job's archive valid for `lifetime`,
    /// naming its file, when archives are in S3; None when they are in a
    /// folder (the service signs its own links then).
    pub fn presigned_link(
        &self,
        job: &Job,
        lifetime: Duration,
    ) -> Result<Option<String>, JobError> {
        self.inner.shared.archives.presigned_link(job, lifetime)
    }

    /// What [`Jobs::open`] found wrong with the state folder and fixed
    /// (see [`super::recovery`]), for the caller to log, one line each.
    pub fn recovered(&self) -> &[Recovery] {
        &self.inner.recovered
    }

    /// How many jobs each status has; an error when the store does not answer.
    pub fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, JobError> {
        self.inner.shared.store.count_by_status()
    }

    /// The engine's build measurements (shared handles).
    pub fn metrics(&self) -> &BuildMetrics {
        &self.inner.shared.metrics
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.shared.clock
    }

    /// The job store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.shared.store
    }

    /// Stops the engine: running builds are cancelled and their leases
    /// given up, so they (like queued jobs) wait, generating, for the next
    /// worker. Returns once every worker of this process has stopped.
    /// Requests after this still record jobs, which the next worker builds.
    pub fn shutdown(&self) {
        let shared = &self.inner.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        shared.wake_workers();
        let workers = std::mem::take(&mut *lock(&self.inner.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

impl Shared {
    /// A ticket to compare with after looking for work: see [`Shared::idle`].
    pub(super) fn wake_ticket(&self) -> u64 {
        *lock(&self.wake)
    }

    pub(super) fn wake_workers(&self) {
        *lock(&self.wake) += 1;
        self.woken.notify_all();
    }

    /// Waits until a job was inserted since `ticket` was taken, the engine
    /// stops, or `poll` passed (jobs of other processes are found then).
    pub(super) fn idle(&self, ticket: u64, poll: Duration) {
        let guard = lock(&self.wake);
        let _ = self.woken.wait_timeout_while(guard, poll, |now| {
            *now == ticket && !self.stopping.load(Ordering::SeqCst)
        });
    }
}

/// A poisoned lock only means another thread panicked while holding it;
/// what it guards stays consistent, so carry on rather than take the whole
/// service down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
