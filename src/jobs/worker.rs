//! A worker thread: claim a job under a lease, build it while a heartbeat
//! renews the lease, publish the archive fenced by that lease.
//!
//! Each attempt builds into its own file (`.<id>.attempt-<n>.zip`), so
//! two workers that both believe they hold a job never write the same
//! file. With archives in S3 the file is then uploaded as the parts of a
//! multipart upload, still under the renewed lease. The archive reaches
//! `<id>.zip` (the rename, or the upload's completion) only inside
//! [`JobStore::complete`](super::store::JobStore::complete), which
//! publishes while the store holds the job and only when the lease is
//! still this attempt's; a worker that lost its lease deletes its own file
//! (aborts its upload) and leaves the job to the worker that took it over.
//! A lease that can no longer be renewed also cancels the build or upload
//! at once.
//!
//! Beside the workers, one thread per process ([`listen`]) waits on the
//! store's notices and wakes idle workers when another process queues a
//! job; they still poll, in case a notice is lost (a reconnect) or the
//! store sends none (SQLite).

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::archives::{publish_reason, StageError, Staged};
use super::engine::Shared;
use super::reason::failure_reason;
use super::recovery::remove_superseded_attempts;
use super::store::{Claim, JobNotices, Lease};
use super::{BuildJob, Job, JobError, JobEvent};
use crate::error::display_chain;

/// The worker loop of thread `index`; returns once the engine stops.
pub(super) fn run(shared: &Shared, index: usize) {
    let owner = format!("{}/{index}", shared.owner);
    while !shared.stopping.load(Ordering::SeqCst) {
        let ticket = shared.wake_ticket();
        let now = shared.clock.now();
        let claim = shared.store.claim(
            &owner,
            now,
            now + shared.config.lease,
            shared.config.max_attempts,
        );
        match claim {
            Ok(Claim::Idle) => shared.idle(ticket, shared.config.poll_interval),
            Ok(Claim::GaveUp(job)) => {
                tracing::warn!(
                    export_id = %job.id,
                    batch_id = ?job.batch_id,
                    attempts = job.attempts,
                    "job failed: interrupted too often"
                );
                shared.config.emit(&JobEvent::GaveUp {
                    export_id: &job.id,
                    attempts: job.attempts,
                });
            }
            Ok(Claim::Leased(job, lease)) => {
                tracing::info!(
                    export_id = %job.id,
                    batch_id = ?job.batch_id,
                    attempt = lease.attempt,
                    owner = %owner,
                    "job started"
                );
                if lease.attempt > 1 {
                    rebuilding(shared, &job, &lease);
                }
                shared.config.emit(&JobEvent::Claimed {
                    export_id: &job.id,
                    attempt: lease.attempt,
                    owner: &owner,
                });
                if let Err(err) = attempt(shared, &job, &lease) {
                    // The job stays generating; once the lease expires any
                    // worker (this one included) takes it again.
                    shared.config.emit(&JobEvent::StoreError {
                        message: &display_chain(&err),
                    });
                }
            }
            Err(err) => {
                shared.config.emit(&JobEvent::StoreError {
                    message: &display_chain(&err),
                });
                shared.idle(ticket, shared.config.poll_interval);
            }
        }
    }
}

/// How long one wait for notices lasts: how soon the listener sees
/// shutdown.
const NOTICE_WAIT: Duration = Duration::from_millis(200);

/// The listener loop on `first` (the store's first answer to
/// [`JobStore::notices`](super::JobStore::notices)): wakes this process's
/// idle workers whenever the store says a job can be claimed; returns once
/// the engine stops, or at once when the store sends no notices.
pub(super) fn listen(shared: &Shared, first: Result<Option<Box<dyn JobNotices>>, JobError>) {
    let mut opened = Some(first);
    let mut notices = None;
    while !shared.stopping.load(Ordering::SeqCst) {
        let listening = match &mut notices {
            Some(listening) => listening,
            None => match opened.take().unwrap_or_else(|| shared.store.notices()) {
                Ok(Some(opened)) => notices.insert(opened),
                Ok(None) => return,
                Err(err) => {
                    shared.config.emit(&JobEvent::StoreError {
                        message: &display_chain(&err),
                    });
                    shared.idle(shared.wake_ticket(), shared.config.poll_interval);
                    continue;
                }
            },
        };
        match listening.wait(NOTICE_WAIT) {
            Ok(true) => shared.wake_workers(),
            Ok(false) => {}
            Err(err) => {
                shared.config.emit(&JobEvent::StoreError {
                    message: &display_chain(&err),
                });
                // Notices sent while listening again are lost: look now.
                notices = None;
                shared.wake_workers();
            }
        }
    }
}

/// How a build ended, as the heartbeat saw it.
#[derive(Default)]
struct Watch {
    /// Set to stop the build: shutdown, or the lease is lost.
    cancel: Arc<AtomicBool>,
    /// The store said the lease is no longer ours.
    lost: AtomicBool,
}

/// One attempt at a leased job: build, stage (upload, for S3), then
/// publish or give up.
fn attempt(shared: &Shared, job: &Job, lease: &Lease) -> Result<(), JobError> {
    let output = shared.archives.build_path(&job.id, lease.attempt);
    let dump_dir = shared.config.resolve_dump_dir(&job.dump_dir);
    let watch = Watch::default();
    let (done, finished) = mpsc::channel::<()>();
    let started = Instant::now();
    let (result, staged) = std::thread::scope(|scope| {
        let watching = &watch;
        scope.spawn(move || heartbeat(shared, lease, watching, finished));
        let build = BuildJob {
            export_id: &job.id,
            dump_dir: &dump_dir,
            filter: &job.filter,
            options: &job.options,
            pseudonym_key: shared.config.key_for_builds(),
            output: &output,
            cancel: &watch.cancel,
            threads: shared.config.build_threads,
            memory_budget: shared.config.memory_budget,
        };
        let result = catch_unwind(AssertUnwindSafe(|| shared.builder.build(&build)));
        // Staging (an upload to S3) runs while the lease is still renewed.
        let staged = match &result {
            Ok(Ok(())) if !watch.lost.load(Ordering::SeqCst) => {
                Some(stage(shared, job, &output, &watch.cancel))
            }
            _ => None,
        };
        let _ = done.send(());
        (result, staged)
    });
    let took = started.elapsed();
    let now = shared.clock.now();
    let discard = || {
        let _ = fs::remove_file(&output);
    };
    if watch.lost.load(Ordering::SeqCst) {
        discard();
        if let Some(Ok((staged, _))) = staged {
            staged.discard();
        }
        tracing::warn!(export_id = %job.id, attempt = lease.attempt, "job lease lost; build dropped");
        shared.config.emit(&JobEvent::LeaseLost {
            export_id: &job.id,
            attempt: lease.attempt,
        });
        return Ok(());
    }
    match (result, staged) {
        (Ok(Ok(())), Some(Ok((staged, size)))) => {
            let published = publish(shared, job, lease, staged, size, took);
            // Whatever happened, this attempt's file is renamed or unused.
            discard();
            published?;
        }
        (Ok(Ok(())), Some(Err(StageError::Failed(reason)))) => {
            discard();
            if shared.store.fail(lease, now, &reason)? {
                failed(shared, job, took, &reason);
                shared.config.emit(&JobEvent::Failed {
                    export_id: &job.id,
                    error: &reason,
                });
            }
        }
        // Stopped by shutdown: give the lease up so the next worker (of
        // this process after a restart, or of another) takes it at once.
        (Ok(Err(_)), _) | (Ok(Ok(())), _) if shared.stopping.load(Ordering::SeqCst) => {
            discard();
            shared.store.release(lease)?;
            tracing::info!(export_id = %job.id, "job interrupted by shutdown");
        }
        // Cancelled without shutdown or a lost lease: cannot happen; the
        // lease expires and the job is built again.
        (Ok(Ok(())), _) => discard(),
        (Ok(Err(err)), _) => {
            discard();
            let reason = failure_reason(&err, &dump_dir);
            if shared.store.fail(lease, now, &reason)? {
                failed(shared, job, took, &reason);
                shared.config.emit(&JobEvent::Failed {
                    export_id: &job.id,
                    error: &reason,
                });
            }
        }
        (Err(_), _) => {
            discard();
            let reason = "the build crashed";
            if shared.store.fail(lease, now, reason)? {
                failed(shared, job, took, reason);
                shared.config.emit(&JobEvent::Failed {
                    export_id: &job.id,
                    error: reason,
                });
            }
        }
    }
    Ok(())
}

/// Makes a built archive ready to publish, with its size.
fn stage(
    shared: &Shared,
    job: &Job,
    output: &Path,
    cancel: &AtomicBool,
) -> Result<(Staged, u64), StageError> {
    let size = fs::metadata(output)
        .map_err(|e| StageError::Failed(format!("the archive is missing: {}", e.kind())))?
        .len();
    Ok((shared.archives.stage(&job.id, output, cancel)?, size))
}

/// Publishes a staged archive inside the store's fenced completion: only
/// while the lease is still this attempt's, and holding the job.
fn publish(
    shared: &Shared,
    job: &Job,
    lease: &Lease,
    staged: Staged,
    size: u64,
    took: Duration,
) -> Result<(), JobError> {
    let now = shared.clock.now();
    let mut staged = Some(staged);
    let completed = {
        let mut publish = || staged.take().map_or(Ok(()), Staged::publish);
        shared.store.complete(lease, now, size, &mut publish)
    };
    // Refused or failed before publishing: nothing may stay staged.
    if let Some(staged) = staged.take() {
        staged.discard();
    }
    match completed {
        Ok(true) => {
            shared.metrics.completed(took, size);
            tracing::info!(
                export_id = %job.id,
                batch_id = ?job.batch_id,
                duration_ms = took.as_millis() as u64,
                bytes = size,
                "job finished"
            );
            shared.config.emit(&JobEvent::Completed {
                export_id: &job.id,
                size,
            });
        }
        Ok(false) => {
            tracing::warn!(
                export_id = %job.id,
                attempt = lease.attempt,
                "job lease lost; completion refused"
            );
            shared.config.emit(&JobEvent::LeaseLost {
                export_id: &job.id,
                attempt: lease.attempt,
            });
        }
        Err(err) => {
            let reason = format!("publishing the archive failed: {}", publish_reason(&err));
            shared.store.fail(lease, now, &reason)?;
            failed(shared, job, took, &reason);
            shared.config.emit(&JobEvent::Failed {
                export_id: &job.id,
                error: &reason,
            });
        }
    }
    Ok(())
}

/// Logs a job taken up again after its worker stopped (a restart, a
/// shutdown, a kill or a lost lease), and removes what the earlier
/// attempts left unpublished.
fn rebuilding(shared: &Shared, job: &Job, lease: &Lease) {
    tracing::info!(
        export_id = %job.id,
        batch_id = ?job.batch_id,
        attempt = lease.attempt,
        "job rebuilt after restart"
    );
    // The folder attempts build in: the archive folder, or S3's staging.
    let built = shared.archives.build_path(&job.id, lease.attempt);
    let Some(folder) = built.parent() else { return };
    for path in remove_superseded_attempts(folder, &job.id, lease.attempt) {
        tracing::info!(export_id = %job.id, file = %path.display(), "removed stale attempt file");
    }
}

/// Counts and logs a failed build.
fn failed(shared: &Shared, job: &Job, took: Duration, reason: &str) {
    shared.metrics.failed(took);
    tracing::warn!(
        export_id = %job.id,
        batch_id = ?job.batch_id,
        duration_ms = took.as_millis() as u64,
        reason = %reason,
        "job failed"
    );
}

/// Renews the lease every third of its length until the build is done,
/// and cancels the build on shutdown or once the lease is lost.
fn heartbeat(shared: &Shared, lease: &Lease, watch: &Watch, finished: mpsc::Receiver<()>) {
    let every = shared.config.lease / 3;
    let mut renewed = Instant::now();
    loop {
        match finished.recv_timeout(Duration::from_millis(50)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if shared.stopping.load(Ordering::SeqCst) {
            watch.cancel.store(true, Ordering::SeqCst);
        }
        if renewed.elapsed() < every {
            continue;
        }
        renewed = Instant::now();
        let until = shared.clock.now() + shared.config.lease;
        match shared.store.renew(lease, until) {
            Ok(true) => {}
            Ok(false) => {
                watch.lost.store(true, Ordering::SeqCst);
                watch.cancel.store(true, Ordering::SeqCst);
            }
            // A store that is briefly unreachable is not a lost lease:
            // try again next beat; the lease expires if it stays away.
            Err(err) => shared.config.emit(&JobEvent::StoreError {
                message: &display_chain(&err),
            }),
        }
    }
}
