//! The job-store conformance suite, archive options (SPEC section 8): on
//! SQLite and on PostgreSQL, a job's options are part of its identity (the
//! generating job, the reusable one and the database's one-generating-job
//! index all tell them apart), a request may reuse no complete job at all
//! (`serve --reuse never`), and a store made before options is migrated
//! with the defaults, which is what its jobs were built with.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use batch_export::jobs::store::{Decision, NewRequest};
use batch_export::jobs::{filter, ArchiveOptions, Job, JobStatus, JobStore, StoreSpec};
use batch_export::ExportFilter;

use super::store::{ask, claim, complete, insert, new_job, postgres, secs, sqlite, t0, Opener};

both_stores!(
    options_tell_jobs_apart_when_generating_and_when_reused,
    concurrent_requests_with_two_option_sets_make_two_jobs,
    without_reuse_only_a_generating_job_is_returned,
    a_store_from_before_options_gets_the_default_options,
);

const TABLES: ArchiveOptions = ArchiveOptions {
    tables: true,
    include_files: true,
    pseudonymise: false,
};

const BARE: ArchiveOptions = ArchiveOptions {
    tables: false,
    include_files: false,
    pseudonymise: true,
};

fn with_options(options: ArchiveOptions) -> Job {
    Job {
        options,
        ..new_job("b1", None, "f1", t0())
    }
}

/// Claims every generating job and completes it.
fn complete_all(store: &dyn JobStore) {
    while let Some((_, lease)) = claim(store, "w", t0()) {
        assert!(complete(store, &lease, t0() + secs(1)));
    }
}

fn options_tell_jobs_apart_when_generating_and_when_reused(opener: &Opener) {
    let store = opener.open();
    let plain = with_options(ArchiveOptions::default());
    insert(&*store, &plain);
    // Same batch and filter, other options, while the plain one generates:
    // another job (on the old index, this insert was a unique violation).
    let tables = with_options(TABLES);
    insert(&*store, &tables);
    let bare = with_options(BARE);
    insert(&*store, &bare);
    // The same options again: the generating job of those options.
    for expected in [&plain, &tables, &bare] {
        match ask(&*store, &with_options(expected.options), t0()).unwrap() {
            Decision::Running(job) => {
                assert_eq!(job.id, expected.id);
                assert_eq!(job.options, expected.options);
            }
            other => panic!("{other:?}"),
        }
    }
    // Options are stored and read back.
    assert_eq!(store.get(&bare.id).unwrap().unwrap().options, BARE);
    let listed: BTreeSet<String> = store
        .list("b1")
        .unwrap()
        .iter()
        .map(|job| job.options.key())
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");

    // Complete, each is reused for its own options only.
    complete_all(&*store);
    for expected in [&plain, &tables, &bare] {
        match ask(&*store, &with_options(expected.options), t0() - secs(1)).unwrap() {
            Decision::Ready(job) => assert_eq!(job.id, expected.id),
            other => panic!("{other:?}"),
        }
    }
    let other = ArchiveOptions {
        include_files: false,
        ..ArchiveOptions::default()
    };
    assert_eq!(
        ask(&*store, &with_options(other), t0() - secs(1)).unwrap(),
        Decision::Inserted
    );
}

fn concurrent_requests_with_two_option_sets_make_two_jobs(opener: &Opener) {
    let stores = [opener.open(), opener.open()];
    let barrier = Arc::new(Barrier::new(40));
    let threads: Vec<_> = (0..40)
        .map(|n| {
            let store = Arc::clone(&stores[n % 2]);
            let barrier = Arc::clone(&barrier);
            let options = if n % 4 < 2 {
                TABLES
            } else {
                ArchiveOptions::default()
            };
            std::thread::spawn(move || {
                let job = with_options(options);
                barrier.wait();
                let id = match ask(&*store, &job, t0()).unwrap() {
                    Decision::Inserted => job.id,
                    Decision::Running(other) => {
                        assert_eq!(other.options, options);
                        other.id
                    }
                    other => panic!("{other:?}"),
                };
                (options.key(), id)
            })
        })
        .collect();
    let made: BTreeSet<(String, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(made.len(), 2, "one job per option set: {made:?}");
    assert_eq!(stores[0].list("b1").unwrap().len(), 2);
}

fn without_reuse_only_a_generating_job_is_returned(opener: &Opener) {
    let store = opener.open();
    let never = |job: &Job| {
        let request = NewRequest {
            job,
            reuse_since: None,
            cap: 10,
        };
        store.request(&request, &|_| true).unwrap()
    };
    let first = with_options(TABLES);
    assert_eq!(never(&first), Decision::Inserted);
    assert!(matches!(never(&with_options(TABLES)), Decision::Running(j) if j.id == first.id));
    complete_all(&*store);
    // Complete and recent, with its archive: reused only when allowed.
    let second = with_options(TABLES);
    assert_eq!(never(&second), Decision::Inserted);
    assert!(matches!(never(&with_options(TABLES)), Decision::Running(j) if j.id == second.id));
    complete_all(&*store);
    assert!(matches!(
        ask(&*store, &with_options(TABLES), t0() - secs(1)).unwrap(),
        Decision::Ready(j) if j.id == second.id
    ));
    // A failed job is not reused either.
    let third = with_options(TABLES);
    assert_eq!(never(&third), Decision::Inserted);
    let (_, lease) = claim(&*store, "w", t0()).unwrap();
    assert!(store.fail(&lease, t0(), "broken").unwrap());
    assert_eq!(never(&with_options(TABLES)), Decision::Inserted);
}

fn a_store_from_before_options_gets_the_default_options(opener: &Opener) {
    let filter = filter::key(&ExportFilter::default());
    let old_row = format!(
        "INSERT INTO jobs (id, batch_id, filter, status, created_at, fingerprint, dump_dir,
            attempts) VALUES ('old-job', 'b1', '{filter}', 'generating', 1717243200000, 'f1',
            '/data/dump', 0)"
    );
    // The schema as the release before options left it, with one
    // generating plain job.
    match opener.spec() {
        StoreSpec::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(include_str!("../../migrations/sqlite/0001_jobs.sql"))
                .unwrap();
            conn.execute_batch(include_str!("../../migrations/sqlite/0002_leases.sql"))
                .unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(&old_row).unwrap();
        }
        StoreSpec::Postgres(url) => {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            client
                .batch_execute(
                    "CREATE TABLE batch_export_migrations (
                         version INTEGER PRIMARY KEY,
                         applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
                     INSERT INTO batch_export_migrations (version) VALUES (1);",
                )
                .unwrap();
            client
                .batch_execute(include_str!("../../migrations/postgres/0001_jobs.sql"))
                .unwrap();
            client.batch_execute(&old_row).unwrap();
        }
    }
    let store = opener.open();
    let old = store.get("old-job").unwrap().unwrap();
    assert_eq!(old.options, ArchiveOptions::default());
    assert_eq!(old.status, JobStatus::Generating);
    // A plain request finds the old job; one with tables is another job,
    // even while the old one generates (the index was replaced).
    match ask(&*store, &with_options(ArchiveOptions::default()), t0()).unwrap() {
        Decision::Running(job) => assert_eq!(job.id, "old-job"),
        other => panic!("{other:?}"),
    }
    insert(&*store, &with_options(TABLES));
    // Reopening applies nothing twice.
    let again = opener.open();
    assert_eq!(again.list("b1").unwrap().len(), 2);
}
