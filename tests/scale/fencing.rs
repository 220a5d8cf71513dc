//! Leases through the engine, on both stores: a worker whose lease was
//! taken over (it stalled: no renewals, as in a long pause) finishes its
//! build late, and its completion is refused: the job keeps the archive of
//! the worker that took it over, and the stale attempt's file is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_export::jobs::store::{Claim, Decision, Lease, NewRequest, Publish, Removal};
use batch_export::jobs::{
    Catalog, DumpBuilder, Job, JobError, JobEvent, JobStatus, JobStore, Jobs, JobsConfig,
    ManualClock,
};
use batch_export::{ExportFilter, ExportOptions};
use time::OffsetDateTime;

use super::store::{postgres, sqlite, Opener};
use crate::common;
use crate::service::{start_time, Gate, BATCH};

/// A store whose renewals do nothing: the lease runs out as if the worker
/// had stopped renewing it.
pub(super) struct Stalled(pub(super) Arc<dyn JobStore>);

impl JobStore for Stalled {
    fn request(
        &self,
        request: &NewRequest<'_>,
        exists: &dyn Fn(&Job) -> bool,
    ) -> Result<Decision, JobError> {
        self.0.request(request, exists)
    }
    fn get(&self, id: &str) -> Result<Option<Job>, JobError> {
        self.0.get(id)
    }
    fn list(&self, batch: &str) -> Result<Vec<Job>, JobError> {
        self.0.list(batch)
    }
    fn claim(
        &self,
        owner: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        max: u32,
    ) -> Result<Claim, JobError> {
        self.0.claim(owner, now, until, max)
    }
    fn renew(&self, _: &Lease, _: OffsetDateTime) -> Result<bool, JobError> {
        Ok(true)
    }
    fn release(&self, lease: &Lease) -> Result<(), JobError> {
        self.0.release(lease)
    }
    fn complete(
        &self,
        lease: &Lease,
        at: OffsetDateTime,
        size: u64,
        publish: &mut Publish<'_>,
    ) -> Result<bool, JobError> {
        self.0.complete(lease, at, size, publish)
    }
    fn fail(&self, lease: &Lease, at: OffsetDateTime, error: &str) -> Result<bool, JobError> {
        self.0.fail(lease, at, error)
    }
    fn remove(&self, id: &str) -> Result<Removal, JobError> {
        self.0.remove(id)
    }
    fn statuses(&self) -> Result<Vec<(String, JobStatus)>, JobError> {
        self.0.statuses()
    }
    fn lose(&self, id: &str, at: OffsetDateTime, error: &str) -> Result<(), JobError> {
        self.0.lose(id, at, error)
    }
}

#[test]
fn a_late_completion_after_a_takeover_is_refused_on_sqlite() {
    late_completion_is_refused(&sqlite().unwrap());
}

#[test]
fn a_late_completion_after_a_takeover_is_refused_on_postgres() {
    if let Some(opener) = postgres() {
        late_completion_is_refused(&opener);
    }
}

/// Polls `done` every 20 ms for up to 30 s.
pub(super) fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn late_completion_is_refused(opener: &Opener) {
    let data = tempfile::tempdir().unwrap();
    common::copy_dir(&common::sample_dump(), &data.path().join("sample"));
    let state = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start_time()));
    let lost = Arc::new(Mutex::new(Vec::<(String, u32)>::new()));
    let config = || {
        JobsConfig::new(state.path())
            .build_threads(1)
            .lease(Duration::from_secs(3))
            .poll_interval(Duration::from_millis(20))
    };

    let gate = Arc::new(Gate::default());
    let record = Arc::clone(&lost);
    let stale = Jobs::open(
        config()
            .store_instance(Arc::new(Stalled(opener.open())))
            .observer(Arc::new(move |event: &JobEvent<'_>| {
                if let JobEvent::LeaseLost { export_id, attempt } = event {
                    record
                        .lock()
                        .unwrap()
                        .push((export_id.to_string(), *attempt));
                }
            })),
        gate.clone(),
        clock.clone(),
    )
    .unwrap();
    let batch = Catalog::new(data.path()).find(BATCH).unwrap().unwrap();
    let job = stale
        .request(&batch, ExportFilter::default())
        .unwrap()
        .job()
        .clone();
    gate.wait_arrivals(1);

    // The stalled worker's lease runs out; a second worker takes over.
    clock.advance(Duration::from_secs(4));
    let rescuer = Jobs::open(
        config().store(opener.spec()),
        Arc::new(DumpBuilder),
        clock.clone(),
    )
    .unwrap();
    eventually("the takeover to complete", || {
        rescuer.find(&job.id).unwrap().unwrap().status == JobStatus::Complete
    });
    let done = rescuer.find(&job.id).unwrap().unwrap();
    assert_eq!(done.attempts, 2);
    let archive = rescuer.archive_path(&job.id);
    let published = std::fs::read(&archive).unwrap();
    let reference = state.path().join("reference.zip");
    common::build(&batch.dir, &reference, &ExportOptions::new().threads(1)).unwrap();
    assert_eq!(published, std::fs::read(&reference).unwrap());

    // The stalled worker wakes up, builds, and is refused.
    gate.open();
    eventually("the stale attempt to be refused", || {
        !lost.lock().unwrap().is_empty()
    });
    assert_eq!(lost.lock().unwrap()[..], [(job.id.clone(), 1)]);
    assert_eq!(
        common::files_in(&state.path().join("exports")),
        [format!("{}.zip", job.id)],
        "only the published archive; the stale attempt's file is gone"
    );
    let after = rescuer.find(&job.id).unwrap().unwrap();
    assert_eq!((after.status, after.attempts), (JobStatus::Complete, 2));
    stale.shutdown();
    rescuer.shutdown();
}
