//! The job-store conformance suite: every case runs against SQLite and
//! against PostgreSQL, through the [`JobStore`] seam only. Times are
//! passed in, so leases expire without sleeping. Where a case needs two
//! processes, it opens the same store twice (two connections, two pools).

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use batch_export::jobs::store::{Claim, Decision, Lease, NewRequest, Removal};
use batch_export::jobs::{ArchiveOptions, Job, JobError, JobStatus, JobStore, StoreSpec};
use batch_export::ExportFilter;
use tempfile::TempDir;
use time::OffsetDateTime;

use super::servers;

/// Opens handles on one store; what the handles share is the database.
pub struct Opener {
    spec: StoreSpec,
    // Keeps the SQLite file's folder alive.
    _dir: Option<TempDir>,
}

impl Opener {
    pub fn open(&self) -> Arc<dyn JobStore> {
        self.spec.open().unwrap()
    }

    pub fn spec(&self) -> StoreSpec {
        self.spec.clone()
    }
}

pub fn sqlite() -> Option<Opener> {
    let dir = tempfile::tempdir().unwrap();
    Some(Opener {
        spec: StoreSpec::Sqlite(dir.path().join("jobs.sqlite3")),
        _dir: Some(dir),
    })
}

pub fn postgres() -> Option<Opener> {
    let server = servers::postgres()?;
    Some(Opener {
        spec: StoreSpec::Postgres(server.fresh_database()),
        _dir: None,
    })
}

/// Runs each case against both stores, as `on_sqlite::case` and
/// `on_postgres::case`.
macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $case() { super::$case(&super::sqlite().unwrap()) })*
        }
        mod on_postgres {
            $(#[test] fn $case() {
                if let Some(opener) = super::postgres() { super::$case(&opener) }
            })*
        }
    };
}

both_stores!(
    requests_are_decided_in_order,
    reuse_needs_same_records_a_recent_job_and_its_archive,
    the_cap_counts_every_job_of_the_batch,
    a_hundred_concurrent_requests_from_two_processes_make_one_job,
    claims_lease_oldest_first_and_expired_leases_are_taken_over,
    a_lost_lease_can_neither_renew_complete_nor_fail,
    concurrent_claims_take_each_job_once,
    a_job_started_too_often_is_failed_on_claim,
    a_released_lease_is_claimable_at_once,
    removal_keeps_generating_jobs,
    migrations_run_once_and_reopen_cleanly,
);

pub fn t0() -> OffsetDateTime {
    time::macros::datetime!(2024-06-01 12:00:00 UTC)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn new_job(batch: &str, study: Option<&str>, fingerprint: &str, at: OffsetDateTime) -> Job {
    Job {
        id: uuid::Uuid::new_v4().to_string(),
        batch_id: batch.to_owned(),
        filter: ExportFilter {
            study_id: study.map(str::to_owned),
            ..ExportFilter::default()
        },
        status: JobStatus::Generating,
        created_at: at,
        finished_at: None,
        fingerprint: fingerprint.to_owned(),
        dump_dir: "/data/dump".into(),
        error: None,
        size: None,
        attempts: 0,
        options: ArchiveOptions::default(),
    }
}

pub fn ask(store: &dyn JobStore, job: &Job, since: OffsetDateTime) -> Result<Decision, JobError> {
    let request = NewRequest {
        job,
        reuse_since: Some(since),
        cap: 10,
    };
    store.request(&request, &|_| true)
}

pub fn insert(store: &dyn JobStore, job: &Job) {
    assert_eq!(
        ask(store, job, t0() - secs(3600)).unwrap(),
        Decision::Inserted
    );
}

/// Claims the next job for `owner` with a 60 s lease at `now`.
pub fn claim(store: &dyn JobStore, owner: &str, now: OffsetDateTime) -> Option<(Job, Lease)> {
    match store.claim(owner, now, now + secs(60), 3).unwrap() {
        Claim::Leased(job, lease) => Some((job, lease)),
        Claim::Idle => None,
        Claim::GaveUp(job) => panic!("gave up on {job:?}"),
    }
}

pub fn complete(store: &dyn JobStore, lease: &Lease, at: OffsetDateTime) -> bool {
    store.complete(lease, at, 42, &mut || Ok(())).unwrap()
}

fn requests_are_decided_in_order(opener: &Opener) {
    let store = opener.open();
    let first = new_job("b1", None, "f1", t0());
    insert(&*store, &first);
    // The same batch and filter while generating: that job.
    let again = new_job("b1", None, "f1", t0());
    match ask(&*store, &again, t0() - secs(3600)).unwrap() {
        Decision::Running(job) => {
            assert_eq!(job.id, first.id);
            assert_eq!(job.status, JobStatus::Generating);
            assert_eq!(job.created_at, t0());
        }
        other => panic!("{other:?}"),
    }
    // Another filter or batch: another job.
    insert(&*store, &new_job("b1", Some("s1"), "f1", t0()));
    insert(&*store, &new_job("b2", None, "f1", t0()));
    let listed: Vec<String> = store
        .list("b1")
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], first.id, "newest first");
    assert_eq!(store.get(&first.id).unwrap().unwrap().filter, first.filter);
    assert!(store.get("nope").unwrap().is_none());
}

fn reuse_needs_same_records_a_recent_job_and_its_archive(opener: &Opener) {
    let store = opener.open();
    let job = new_job("b1", None, "f1", t0());
    insert(&*store, &job);
    let (_, lease) = claim(&*store, "w", t0()).unwrap();
    assert!(complete(&*store, &lease, t0() + secs(5)));
    let done = store.get(&job.id).unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Complete);
    assert_eq!(done.size, Some(42));

    let since = t0() - secs(1);
    // Each request proposes a new job of its own (a fresh id).
    let request = |since, exists: bool, fingerprint: &str| {
        let probe = new_job("b1", None, fingerprint, t0() + secs(10));
        let request = NewRequest {
            job: &probe,
            reuse_since: Some(since),
            cap: 10,
        };
        (store.request(&request, &|_| exists).unwrap(), probe.id)
    };
    assert_eq!(request(since, true, "f1").0, Decision::Ready(done.clone()));
    // Too old (created at or before the cut-off): not reused.
    let (decision, newer) = request(t0(), true, "f1");
    assert_eq!(decision, Decision::Inserted);
    assert_eq!(store.list("b1").unwrap()[0].id, newer);
    // While that one generates, it is the answer, whatever else exists.
    assert!(matches!(request(since, true, "f1").0, Decision::Running(j) if j.id == newer));
    let (_, lease) = claim(&*store, "w", t0()).unwrap();
    assert!(store.fail(&lease, t0(), "broken").unwrap());
    // Changed records, or an archive gone: not reused.
    assert_eq!(request(since, true, "f2").0, Decision::Inserted);
    let (_, lease) = claim(&*store, "w", t0()).unwrap();
    assert!(store.fail(&lease, t0(), "broken").unwrap());
    assert_eq!(request(since, false, "f1").0, Decision::Inserted);
}

fn the_cap_counts_every_job_of_the_batch(opener: &Opener) {
    let store = opener.open();
    for n in 0..10 {
        insert(&*store, &new_job("b1", Some(&format!("s{n}")), "f", t0()));
    }
    let refused = ask(&*store, &new_job("b1", Some("s10"), "f", t0()), t0());
    assert!(
        matches!(refused, Err(JobError::TooManyJobs { cap: 10, .. })),
        "{refused:?}"
    );
    // A request matching a generating job is still answered at the cap.
    assert!(matches!(
        ask(&*store, &new_job("b1", Some("s3"), "f", t0()), t0()),
        Ok(Decision::Running(_))
    ));
    // Other batches are not affected.
    insert(&*store, &new_job("b2", None, "f", t0()));
}

fn a_hundred_concurrent_requests_from_two_processes_make_one_job(opener: &Opener) {
    let stores = [opener.open(), opener.open()];
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|n| {
            let store = Arc::clone(&stores[n % 2]);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let job = new_job("b1", None, "f1", t0());
                barrier.wait();
                match ask(&*store, &job, t0()).unwrap() {
                    Decision::Inserted => job.id,
                    Decision::Running(other) => other.id,
                    other => panic!("{other:?}"),
                }
            })
        })
        .collect();
    let ids: BTreeSet<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(stores[0].list("b1").unwrap().len(), 1);
}

fn claims_lease_oldest_first_and_expired_leases_are_taken_over(opener: &Opener) {
    let store = opener.open();
    assert!(claim(&*store, "a", t0()).is_none(), "nothing to claim");
    let first = new_job("b1", Some("1"), "f", t0());
    let second = new_job("b1", Some("2"), "f", t0());
    insert(&*store, &first);
    insert(&*store, &second);
    let (job, lease) = claim(&*store, "a", t0()).unwrap();
    assert_eq!(job.id, first.id);
    assert_eq!((lease.attempt, job.attempts), (1, 1));
    let (job, _) = claim(&*store, "b", t0()).unwrap();
    assert_eq!(job.id, second.id, "a leased job is passed over");
    assert!(claim(&*store, "c", t0() + secs(59)).is_none());
    // Renewed leases hold; expired ones are taken over, one attempt more.
    assert!(store.renew(&lease, t0() + secs(120)).unwrap());
    let (job, taken) = claim(&*store, "c", t0() + secs(60)).unwrap();
    assert_eq!(job.id, second.id);
    assert_eq!((taken.owner.as_str(), taken.attempt), ("c", 2));
    assert!(claim(&*store, "c", t0() + secs(119)).is_none());
    let (job, taken) = claim(&*store, "c", t0() + secs(120)).unwrap();
    assert_eq!((job.id, taken.attempt), (first.id, 2));
}

fn a_lost_lease_can_neither_renew_complete_nor_fail(opener: &Opener) {
    let store = opener.open();
    let job = new_job("b1", None, "f", t0());
    insert(&*store, &job);
    let (_, old) = claim(&*store, "a", t0()).unwrap();
    let (_, new) = claim(&*store, "b", t0() + secs(61)).unwrap();
    assert!(!store.renew(&old, t0() + secs(200)).unwrap());
    let mut published = false;
    let refused = store
        .complete(&old, t0() + secs(62), 1, &mut || {
            published = true;
            Ok(())
        })
        .unwrap();
    assert!(!refused && !published, "the old attempt must not publish");
    assert!(!store.fail(&old, t0() + secs(62), "late").unwrap());
    store.release(&old).unwrap();
    assert_eq!(
        store.get(&job.id).unwrap().unwrap().status,
        JobStatus::Generating
    );
    // Same owner name, old attempt number: still fenced.
    let impostor = Lease {
        owner: "b".to_owned(),
        ..old.clone()
    };
    assert!(!complete(&*store, &impostor, t0()));
    assert!(
        claim(&*store, "c", t0() + secs(62)).is_none(),
        "release was ignored"
    );
    // A publish error leaves the job generating and the lease held.
    let failed = store.complete(&new, t0(), 1, &mut || {
        Err(JobError::Config {
            message: "disk full".into(),
        })
    });
    assert!(failed.is_err());
    assert_eq!(
        store.get(&job.id).unwrap().unwrap().status,
        JobStatus::Generating
    );
    assert!(complete(&*store, &new, t0() + secs(63)));
    let done = store.get(&job.id).unwrap().unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Complete, 2));
    assert!(!store.fail(&new, t0(), "after the end").unwrap());
}

fn concurrent_claims_take_each_job_once(opener: &Opener) {
    let stores = [opener.open(), opener.open()];
    let ids: BTreeSet<String> = (0..8)
        .map(|n| {
            let job = new_job("b1", Some(&n.to_string()), "f", t0());
            insert(&*stores[0], &job);
            job.id
        })
        .collect();
    let barrier = Arc::new(Barrier::new(6));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let store = Arc::clone(&stores[w % 2]);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut mine = Vec::new();
                while let Some((job, _)) = claim(&*store, &format!("w{w}"), t0()) {
                    mine.push(job.id);
                }
                mine
            })
        })
        .collect();
    let claimed: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(claimed.len(), 8, "{claimed:?}");
    assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), ids);
}

fn a_job_started_too_often_is_failed_on_claim(opener: &Opener) {
    let store = opener.open();
    let job = new_job("b1", None, "f", t0());
    insert(&*store, &job);
    let mut now = t0();
    for attempt in 1..=2 {
        let Claim::Leased(_, lease) = store.claim("w", now, now + secs(10), 2).unwrap() else {
            panic!("attempt {attempt} not leased")
        };
        assert_eq!(lease.attempt, attempt);
        now += secs(11);
    }
    match store.claim("w", now, now + secs(10), 2).unwrap() {
        Claim::GaveUp(failed) => {
            assert_eq!(failed.id, job.id);
            assert!(failed.error.unwrap().contains("interrupted 2 times"));
        }
        other => panic!("{other:?}"),
    }
    let stored = store.get(&job.id).unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Failed);
    assert!(stored.error.unwrap().contains("service stopped"));
    assert_eq!(store.claim("w", now, now, 2).unwrap(), Claim::Idle);
}

fn a_released_lease_is_claimable_at_once(opener: &Opener) {
    let store = opener.open();
    insert(&*store, &new_job("b1", None, "f", t0()));
    let (_, lease) = claim(&*store, "a", t0()).unwrap();
    assert!(claim(&*store, "b", t0()).is_none());
    store.release(&lease).unwrap();
    let (_, again) = claim(&*store, "b", t0()).unwrap();
    assert_eq!(again.attempt, 2);
}

fn removal_keeps_generating_jobs(opener: &Opener) {
    let store = opener.open();
    let job = new_job("b1", None, "f", t0());
    insert(&*store, &job);
    assert_eq!(store.remove(&job.id).unwrap(), Removal::Generating);
    let (_, lease) = claim(&*store, "a", t0()).unwrap();
    assert!(store.fail(&lease, t0(), "no").unwrap());
    match store.remove(&job.id).unwrap() {
        Removal::Removed(removed) => assert_eq!(removed.error.as_deref(), Some("no")),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.remove(&job.id).unwrap(), Removal::NotFound);
    assert!(store.list("b1").unwrap().is_empty());
}

fn migrations_run_once_and_reopen_cleanly(opener: &Opener) {
    let job = new_job("b1", None, "f", t0());
    insert(&*opener.open(), &job);
    // Several processes opening at once must not trip over each other.
    let spec = opener.spec();
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let spec = spec.clone();
            std::thread::spawn(move || spec.open().unwrap())
        })
        .collect();
    for handle in openers {
        let store = handle.join().unwrap();
        assert_eq!(store.get(&job.id).unwrap().unwrap().id, job.id);
    }
}
