//! [`Jobs`], the engine handle: requests, queries, the worker pool.
//!
//! One mutex around the SQLite connection serializes every decision
//! ("is one generating? is one reusable? is the batch at its cap? then
//! insert"), which is what makes a burst of identical requests produce a
//! single job. The decisions are short; builds run outside the lock on
//! worker threads fed by a channel of export ids.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use super::reason::{failure_reason, redact_paths};
use super::recovery::{self, Recovery};
use super::store::Store;
use super::{
    filter, fingerprint, BatchInfo, BuildJob, BuildMetrics, Builder, Clock, Job, JobError,
    JobStatus, JobsConfig,
};
use crate::error::display_chain;
use crate::ExportFilter;

/// What a request found or started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// A new job was started (or, when the dump could not even be read,
    /// recorded as failed at once, with the reason).
    Started(Job),
    /// A job for this batch and filter was already generating.
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
    // Taken (dropped) on shutdown, which ends the workers' loops.
    queue: Mutex<Option<Sender<String>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    // What start-up found wrong with the state folder and fixed.
    recovered: Vec<Recovery>,
}

/// What the workers need; never holds the queue's sender, so dropping the
/// last [`Jobs`] handle lets them finish.
struct Shared {
    store: Mutex<Store>,
    config: JobsConfig,
    builder: Arc<dyn Builder>,
    clock: Arc<dyn Clock>,
    metrics: BuildMetrics,
    // Set on shutdown: builds are cancelled and their jobs left generating,
    // as a crash would, to be resumed by the next start.
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

impl Jobs {
    /// Opens the engine on its state folder (created if needed), puts the
    /// folder in order ([`Jobs::recovered`] says what was fixed), starts
    /// the workers and resumes the jobs a previous run left generating.
    pub fn open(
        config: JobsConfig,
        builder: Arc<dyn Builder>,
        clock: Arc<dyn Clock>,
    ) -> Result<Jobs, JobError> {
        let exports = config.state_dir().join("exports");
        fs::create_dir_all(&exports).map_err(|e| JobError::io(&exports, e))?;
        let store_path = config.state_dir().join("jobs.sqlite3");
        let store_was_empty = recovery::store_is_empty(&store_path);
        let store = Store::open(&store_path)?;
        // Before any worker starts: nothing of this process is building yet.
        let recovered =
            recovery::reconcile(config.state_dir(), &store, store_was_empty, clock.now())?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            config,
            builder,
            clock,
            metrics: BuildMetrics::default(),
            stopping: Arc::new(AtomicBool::new(false)),
        });
        let (sender, receiver) = mpsc::channel::<String>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..shared.config.workers)
            .map(|_| {
                let shared = Arc::clone(&shared);
                let receiver = Arc::clone(&receiver);
                std::thread::spawn(move || work(&shared, &receiver))
            })
            .collect();
        let jobs = Jobs {
            inner: Arc::new(Inner {
                shared,
                queue: Mutex::new(Some(sender)),
                workers: Mutex::new(workers),
                recovered,
            }),
        };
        jobs.resume()?;
        Ok(jobs)
    }

    /// Requests an export of `batch` with `filter`: returns the generating
    /// job, or a reusable complete one, or starts a new job.
    pub fn request(&self, batch: &BatchInfo, filter: ExportFilter) -> Result<Requested, JobError> {
        let filter = filter.normalized()?;
        let key = filter::key(&filter);
        // Hashing the dump happens before taking the lock, so a burst of
        // requests hashes in parallel and only the decision is serialized.
        // A dump that cannot even be hashed cannot be built either: the
        // request gets a failed job saying why, not an error answer.
        let hashed = fingerprint(&batch.dir);
        let shared = &self.inner.shared;
        let now = shared.clock.now();
        let store = shared.lock_store();
        if let Some(job) = store.generating(&batch.id, &key)? {
            return Ok(Requested::Running(job));
        }
        let since = now - shared.config.max_age;
        let (fingerprint, unreadable) = match hashed {
            Ok(fingerprint) => (fingerprint, None),
            Err(err) => {
                let why = redact_paths(&display_chain(&err), Some(&batch.dir));
                (
                    String::new(),
                    Some(format!("the batch's dump is unreadable: {why}")),
                )
            }
        };
        if unreadable.is_none() {
            if let Some(job) = store.reusable(&batch.id, &key, &fingerprint, since)? {
                // An archive removed behind the engine's back is not reusable.
                if self.archive_path(&job.id).is_file() {
                    return Ok(Requested::Ready(job));
                }
            }
        }
        let cap = shared.config.max_jobs_per_batch;
        if store.count(&batch.id)? >= cap {
            return Err(JobError::TooManyJobs {
                batch_id: batch.id.clone(),
                cap,
            });
        }
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
            dump_dir: batch.dir.clone(),
            error: unreadable,
            size: None,
            attempts: 1,
        };
        store.insert(&job)?;
        drop(store);
        if job.status == JobStatus::Generating {
            tracing::info!(
                export_id = %job.id,
                batch_id = ?job.batch_id,
                filter = %job.filter_key(),
                "job queued"
            );
            self.enqueue(&job.id);
        } else {
            tracing::warn!(
                export_id = %job.id,
                batch_id = ?job.batch_id,
                reason = job.error.as_deref().unwrap_or_default(),
                "job failed"
            );
        }
        Ok(Requested::Started(job))
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
        self.inner.shared.lock_store().get(export_id)
    }

    /// A batch's jobs, newest first.
    pub fn list(&self, batch_id: &str) -> Result<Vec<Job>, JobError> {
        self.inner.shared.lock_store().list(batch_id)
    }

    /// Removes a finished job and its archive; refused while generating.
    pub fn delete(&self, batch_id: &str, export_id: &str) -> Result<(), JobError> {
        let store = self.inner.shared.lock_store();
        let job = match store.get(export_id)? {
            Some(job) if job.batch_id == batch_id => job,
            _ => {
                return Err(JobError::NotFound {
                    export_id: export_id.to_owned(),
                })
            }
        };
        if job.status == JobStatus::Generating || !store.delete_finished(export_id)? {
            return Err(JobError::StillGenerating {
                export_id: export_id.to_owned(),
            });
        }
        drop(store);
        // The row goes first: from then on no link to the archive verifies.
        let path = self.archive_path(export_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(JobError::io(path, e)),
        }
    }

    /// Where the archive of `export_id` is kept.
    pub fn archive_path(&self, export_id: &str) -> PathBuf {
        self.inner.shared.archive_path(export_id)
    }

    /// What [`Jobs::open`] found wrong with the state folder and fixed
    /// (see [`super::recovery`]), for the caller to log, one line each.
    pub fn recovered(&self) -> &[Recovery] {
        &self.inner.recovered
    }

    /// How many jobs each status has; an error when the store does not answer.
    pub fn count_by_status(&self) -> Result<Vec<(JobStatus, u64)>, JobError> {
        self.inner.shared.lock_store().count_by_status()
    }

    /// The engine's build measurements (shared handles).
    pub fn metrics(&self) -> &BuildMetrics {
        &self.inner.shared.metrics
    }

    /// The clock the engine reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.shared.clock
    }

    /// Stops the engine: running builds are cancelled and, like queued
    /// jobs, left generating for the next start to resume. Returns once
    /// every worker has stopped. Requests after this still record jobs,
    /// which the next start builds.
    pub fn shutdown(&self) {
        self.inner.shared.stopping.store(true, Ordering::SeqCst);
        lock(&self.inner.queue).take();
        let workers = std::mem::take(&mut *lock(&self.inner.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }

    fn enqueue(&self, export_id: &str) {
        if let Some(queue) = lock(&self.inner.queue).as_ref() {
            // A send fails only once every worker is gone, i.e. after
            // shutdown; the job then waits, generating, for the next start.
            let _ = queue.send(export_id.to_owned());
        }
    }

    /// Queues every job a previous run left generating, or fails it when
    /// it was already started `max_attempts` times.
    fn resume(&self) -> Result<(), JobError> {
        let shared = &self.inner.shared;
        let left = shared.lock_store().all_generating()?;
        for job in left {
            let store = shared.lock_store();
            if job.attempts >= shared.config.max_attempts {
                let reason = format!(
                    "the service stopped during this build {} times; request the export again",
                    job.attempts
                );
                store.fail(&job.id, shared.clock.now(), &reason)?;
                tracing::warn!(
                    export_id = %job.id,
                    batch_id = ?job.batch_id,
                    attempts = job.attempts,
                    "job failed: interrupted by restarts too often"
                );
            } else {
                store.bump_attempts(&job.id)?;
                drop(store);
                tracing::info!(
                    export_id = %job.id,
                    batch_id = ?job.batch_id,
                    attempt = job.attempts + 1,
                    "job rebuilt after restart"
                );
                self.enqueue(&job.id);
            }
        }
        Ok(())
    }
}

impl Shared {
    fn lock_store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn archive_path(&self, export_id: &str) -> PathBuf {
        self.config
            .state_dir()
            .join("exports")
            .join(format!("{export_id}.zip"))
    }
}

/// A poisoned lock only means another thread panicked while holding it;
/// the store and queue stay consistent (SQLite statements are atomic), so
/// carry on rather than take the whole service down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn work(shared: &Shared, receiver: &Mutex<Receiver<String>>) {
    loop {
        let next = lock(receiver).recv();
        let Ok(export_id) = next else { return };
        if shared.stopping.load(Ordering::SeqCst) {
            continue;
        }
        // A store error here leaves the job generating; the next start
        // resumes it, so nothing is lost for good.
        let _ = run(shared, &export_id);
    }
}

fn run(shared: &Shared, export_id: &str) -> Result<(), JobError> {
    let Some(job) = shared.lock_store().get(export_id)? else {
        return Ok(());
    };
    if job.status != JobStatus::Generating {
        return Ok(());
    }
    let output = shared.archive_path(export_id);
    let build = BuildJob {
        export_id,
        dump_dir: &job.dump_dir,
        filter: &job.filter,
        output: &output,
        cancel: &shared.stopping,
        threads: shared.config.build_threads,
    };
    tracing::info!(export_id, batch_id = ?job.batch_id, attempt = job.attempts, "job started");
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| shared.builder.build(&build)));
    let took = started.elapsed();
    let now = shared.clock.now();
    let store = shared.lock_store();
    let failure = match result {
        Ok(Ok(())) => match fs::metadata(&output) {
            Ok(meta) => {
                store.complete(export_id, now, meta.len())?;
                shared.metrics.completed(took, meta.len());
                tracing::info!(
                    export_id,
                    batch_id = ?job.batch_id,
                    duration_ms = took.as_millis() as u64,
                    bytes = meta.len(),
                    "job finished"
                );
                return Ok(());
            }
            Err(e) => format!("the archive is missing: {e}"),
        },
        // Stopped by shutdown: leave it generating for the next start.
        Ok(Err(_)) if shared.stopping.load(Ordering::SeqCst) => {
            tracing::info!(export_id, batch_id = ?job.batch_id, "job interrupted by shutdown");
            return Ok(());
        }
        Ok(Err(err)) => failure_reason(&err, &job.dump_dir),
        Err(_) => "the build crashed".to_owned(),
    };
    store.fail(export_id, now, &failure)?;
    shared.metrics.failed(took);
    tracing::warn!(
        export_id,
        batch_id = ?job.batch_id,
        duration_ms = took.as_millis() as u64,
        reason = %failure,
        "job failed"
    );
    Ok(())
}
