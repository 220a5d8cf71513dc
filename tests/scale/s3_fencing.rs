//! Fencing with archives in S3, through the engine on PostgreSQL: a
//! worker whose lease was taken over finishes its build and upload late,
//! and its upload is never completed: the object at the key stays the
//! archive of the worker that took the job over, and no upload is left
//! open.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_export::jobs::{
    BuildJob, Builder, Catalog, DumpBuilder, JobEvent, JobStatus, Jobs, JobsConfig, ManualClock,
};
use batch_export::s3::{S3Config, S3Location, S3Objects};
use batch_export::{ExportFilter, ExportOptions};

use super::fencing::{eventually, Stalled};
use super::s3_archives::Bucket;
use super::servers::{self, S3_ACCESS_KEY, S3_SECRET_KEY};
use super::store::postgres;
use crate::common;
use crate::service::{start_time, Gate, BATCH};

/// Held at a gate, then writes bytes that are not the archive, so a
/// published stale attempt would show.
struct StaleBytes(Arc<Gate>);

impl Builder for StaleBytes {
    fn build(&self, job: &BuildJob<'_>) -> Result<(), batch_export::Error> {
        self.0.build(job)?;
        std::fs::write(job.output, b"the stale attempt's bytes").unwrap();
        Ok(())
    }
}

#[test]
fn a_worker_whose_lease_was_taken_over_never_completes_its_upload() {
    let (Some(weed), Some(opener)) = (servers::seaweed(), postgres()) else {
        return;
    };
    let bucket = Bucket::create(&weed.endpoint, "fenced");
    let s3 = S3Config {
        endpoint: Some(weed.endpoint.clone()),
        access_key_id: Some(S3_ACCESS_KEY.into()),
        secret_access_key: Some(S3_SECRET_KEY.into()),
        allow_http: true,
        ..S3Config::default()
    };
    let objects = S3Objects::new(S3Location::parse(&bucket.objects()).unwrap(), &s3).unwrap();
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
            .objects_s3(objects.clone())
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
        Arc::new(StaleBytes(gate.clone())),
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

    clock.advance(Duration::from_secs(4));
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&events);
    let rescuer = Jobs::open(
        config()
            .store(opener.spec())
            .observer(Arc::new(move |event: &JobEvent<'_>| {
                record.lock().unwrap().push(format!("{event:?}"));
            })),
        Arc::new(DumpBuilder),
        clock.clone(),
    )
    .unwrap();
    for _ in 0..1500 {
        if rescuer.find(&job.id).unwrap().unwrap().status != JobStatus::Generating {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = rescuer.find(&job.id).unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Complete, "{done:?} {events:?}");
    let reference = state.path().join("reference.zip");
    common::build(&batch.dir, &reference, &ExportOptions::new().threads(1)).unwrap();
    let reference = std::fs::read(&reference).unwrap();
    let key = format!("/exports/{}.zip", job.id);
    let published = servers::s3("GET", &bucket.url(&key), None, true);
    assert!(
        published == (200, reference.clone()),
        "the rescuer's archive"
    );

    // The stalled worker wakes up, builds and uploads its parts; the
    // store refuses its completion, so the upload is aborted.
    gate.open();
    eventually("the stale attempt to be refused", || {
        !lost.lock().unwrap().is_empty()
    });
    assert_eq!(lost.lock().unwrap()[..], [(job.id.clone(), 1)]);
    let after = servers::s3("GET", &bucket.url(&key), None, true);
    assert!(
        after == (200, reference),
        "the stale bytes were never published"
    );
    assert_eq!(bucket.keys(), [key[1..].to_owned()]);
    assert_eq!(bucket.open_uploads(), Vec::<String>::new(), "aborted");
    let done = rescuer.find(&job.id).unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Complete, 2));
    stale.shutdown();
    rescuer.shutdown();
}
