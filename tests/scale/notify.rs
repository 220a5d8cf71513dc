//! LISTEN/NOTIFY on PostgreSQL: an idle worker of one process is woken by
//! a job queued in another, without waiting for its poll. The worker polls
//! once an hour here, so only the notice can wake it within the test.

use std::sync::Arc;
use std::time::Duration;

use batch_export::jobs::{Catalog, DumpBuilder, JobStatus, Jobs, JobsConfig, ManualClock};
use batch_export::ExportFilter;

use super::store::postgres;
use crate::common;
use crate::service::{start_time, BATCH};

const HOURLY: Duration = Duration::from_secs(3600);

#[test]
fn an_idle_worker_is_woken_by_a_job_queued_in_another_process() {
    let Some(opener) = postgres() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    common::copy_dir(&common::sample_dump(), &data.path().join("sample"));
    let state = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start_time()));
    let config = |workers| {
        JobsConfig::new(state.path())
            .store(opener.spec())
            .workers(workers)
            .build_threads(1)
            .poll_interval(HOURLY)
    };
    // The worker process: it looks for work once at start, finds none,
    // and would sleep for an hour without a notice.
    let worker = Jobs::open(config(1), Arc::new(DumpBuilder), clock.clone()).unwrap();
    // The API process: builds nothing, so it cannot wake the worker
    // through memory; only the database can.
    let api = Jobs::open(config(0), Arc::new(DumpBuilder), clock.clone()).unwrap();
    let batch = Catalog::new(data.path()).find(BATCH).unwrap().unwrap();

    for round in 0..2 {
        // A different filter each round: a new job, not the last one reused.
        let filter = ExportFilter {
            study_id: Some(format!("study-{round}")),
            ..ExportFilter::default()
        };
        let job = api.request(&batch, filter).unwrap().job().clone();
        assert_eq!(job.status, JobStatus::Generating);
        let mut status = JobStatus::Generating;
        for _ in 0..1500 {
            status = api.find(&job.id).unwrap().unwrap().status;
            if status != JobStatus::Generating {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            status,
            JobStatus::Complete,
            "round {round}: the worker was not woken (its next poll is an hour away)"
        );
    }
    api.shutdown();
    worker.shutdown();
}
