//! Dumps read from S3 (SeaweedFS): the same archive bytes as the same dump
//! on local disk, through the library ([`S3Dump`]) and through the job
//! engine ([`S3DumpBuilder`], [`Catalog::s3`]); the fingerprint follows
//! the objects; a missing upload object and a key escaping the prefix are
//! refused with the record's file, line and field, exactly as on disk.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use batch_export::jobs::{
    Catalog, JobStatus, Jobs, JobsConfig, S3DumpBuilder, S3Dumps, SystemClock,
};
use batch_export::s3::{block_on, S3Config, S3Dump, S3Location};
use batch_export::synth::{self, SynthOptions};
use batch_export::{Error, ExportFilter, ExportOptions, Problem};
use object_store::{ObjectStore, ObjectStoreExt};

use super::servers::{self, s3, S3_ACCESS_KEY, S3_SECRET_KEY};
use crate::common;
use crate::service::BATCH;

/// The bucket of these tests (one for all: every bucket costs SeaweedFS
/// volumes of its own) and a client for it, each test under a prefix of
/// its own; None (skip) without SeaweedFS outside CI.
fn bucket() -> Option<(Arc<dyn ObjectStore>, String)> {
    static CREATED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let weed = servers::seaweed()?;
    let bucket = CREATED.get_or_init(|| {
        let bucket = format!("dumps-{}", std::process::id());
        let (status, body) = s3("PUT", &format!("{}/{bucket}", weed.endpoint), None, true);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        bucket
    });
    let config = S3Config {
        endpoint: Some(weed.endpoint.clone()),
        access_key_id: Some(S3_ACCESS_KEY.into()),
        secret_access_key: Some(S3_SECRET_KEY.into()),
        allow_http: true,
        retry_timeout: Some(Duration::from_secs(5)),
        ..S3Config::default()
    };
    let location = S3Location::parse(&format!("s3://{bucket}")).unwrap();
    let client: Arc<dyn ObjectStore> = config.client(&location).unwrap();
    Some((client, bucket.clone()))
}

/// Uploads every file under `dir` to `PREFIX/<relative path>`.
fn upload_dir(store: &dyn ObjectStore, dir: &Path, prefix: &str) {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(dir).unwrap().to_string_lossy();
        let key = object_store::path::Path::from(format!("{prefix}/{relative}"));
        let bytes = std::fs::read(entry.path()).unwrap();
        block_on(store.put(&key, bytes.into())).unwrap();
    }
}

fn put(store: &dyn ObjectStore, key: &str, bytes: &[u8]) {
    let key = object_store::path::Path::from(key);
    block_on(store.put(&key, bytes.to_vec().into())).unwrap();
}

fn s3_dump(store: &Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> S3Dump {
    let location = S3Location::parse(&format!("s3://{bucket}/{prefix}")).unwrap();
    S3Dump::new(Arc::clone(store), location)
}

/// The problems of a refused export, or a panic naming what it was instead.
fn refused(result: Result<batch_export::ExportSummary, Error>) -> Vec<Problem> {
    match result {
        Err(Error::Refused(problems)) => problems.list().to_vec(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_dump_in_s3_exports_the_same_bytes_as_on_disk() {
    let Some((store, bucket)) = bucket() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // The sample (an upload at a record's `path`, names to make safe) and
    // a synthetic dump with uploads of many network chunks each.
    let synthetic = work.path().join("synthetic");
    synth::generate(
        &synthetic,
        &SynthOptions {
            submissions: 20,
            tasks: 3,
            uploads: 12,
            upload_min_bytes: 200_000,
            upload_max_bytes: 1_500_000,
            ..SynthOptions::default()
        },
    )
    .unwrap();
    for (name, dir) in [("sample", common::sample_dump()), ("synthetic", synthetic)] {
        upload_dir(&*store, &dir, &format!("same/{name}"));
        for options in [ExportOptions::new(), ExportOptions::new().threads(1)] {
            let local = work.path().join(format!("{name}-local.zip"));
            let remote = work.path().join(format!("{name}-s3.zip"));
            common::build(&dir, &local, &options).unwrap();
            let summary = s3_dump(&store, &bucket, &format!("same/{name}"))
                .export_to_path(&remote, &options)
                .unwrap();
            assert!(summary.counts.files > 0, "{name}: the dump has uploads");
            assert!(
                std::fs::read(&local).unwrap() == std::fs::read(&remote).unwrap(),
                "{name}: the archive from S3 differs from the one from disk"
            );
        }
    }
}

#[test]
fn a_missing_upload_object_is_refused_like_a_missing_file() {
    let Some((store, bucket)) = bucket() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("dump");
    common::copy_dir(&common::sample_dump(), &local);
    std::fs::remove_file(local.join("uploads/up-02")).unwrap();
    upload_dir(&*store, &local, "missing/dump");

    let on_disk = refused(common::build(
        &local,
        &work.path().join("a.zip"),
        &ExportOptions::new(),
    ));
    let out = work.path().join("b.zip");
    let from_s3 = refused(
        s3_dump(&store, &bucket, "missing/dump").export_to_path(&out, &ExportOptions::new()),
    );
    assert_eq!(from_s3, on_disk);
    let problem = &from_s3[0];
    assert_eq!(problem.file, "uploads.jsonl");
    assert_eq!(problem.line, Some(2), "{problem}");
    assert!(problem.message.contains("missing"), "{problem}");
    assert!(!out.exists(), "nothing written at the output");
}

#[test]
fn an_upload_path_escaping_the_prefix_is_refused_like_a_path_outside_the_dump() {
    let Some((store, bucket)) = bucket() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("dumps/dump");
    common::copy_dir(&common::sample_dump(), &local);
    // Upload up-03's record points at a sibling dump's object, which
    // exists both on disk and in the bucket: only the confinement stops it.
    common::reorder_lines(&local.join("uploads.jsonl"), |lines| {
        lines[2] = lines[2].replace(
            r#""file_key": "up-03","#,
            r#""file_key": "up-03", "path": "../other/uploads/up-03","#,
        );
    });
    let sibling = work.path().join("dumps/other/uploads");
    std::fs::create_dir_all(&sibling).unwrap();
    std::fs::copy(local.join("uploads/up-03"), sibling.join("up-03")).unwrap();
    upload_dir(&*store, &work.path().join("dumps"), "escaping");

    let on_disk = refused(common::build(
        &local,
        &work.path().join("a.zip"),
        &ExportOptions::new(),
    ));
    let from_s3 = refused(
        s3_dump(&store, &bucket, "escaping/dump")
            .export_to_path(work.path().join("b.zip"), &ExportOptions::new()),
    );
    assert_eq!(from_s3, on_disk);
    let problem = &from_s3[0];
    assert_eq!(
        (
            problem.file.as_str(),
            problem.line,
            problem.field.as_deref()
        ),
        ("uploads.jsonl", Some(3), Some("path")),
        "{problem}"
    );
    // The record check refuses the climbing `path` before any key is
    // made (the key's own confinement is s3::dump's unit test), on disk
    // and in S3 alike.
    assert!(problem.message.contains("inside the dump"), "{problem}");
}

/// Polls a job until it is no longer generating (up to 60 s).
fn finished(jobs: &Jobs, export_id: &str) -> batch_export::jobs::Job {
    for _ in 0..3000 {
        let job = jobs.find(export_id).unwrap().unwrap();
        if job.status != JobStatus::Generating {
            return job;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("export {export_id} still generating after 60 s");
}

#[test]
fn the_service_builds_from_s3_and_reuses_only_while_the_objects_are_unchanged() {
    let Some((store, bucket)) = bucket() else {
        return;
    };
    upload_dir(&*store, &common::sample_dump(), "service/sample");
    let dumps = S3Dumps::new(
        Arc::clone(&store),
        S3Location::parse(&format!("s3://{bucket}/service")).unwrap(),
    );
    let state = tempfile::tempdir().unwrap();
    let jobs = Jobs::open(
        JobsConfig::new(state.path()).poll_interval(Duration::from_millis(50)),
        Arc::new(S3DumpBuilder::new(dumps.clone())),
        Arc::new(SystemClock),
    )
    .unwrap();
    let batch = Catalog::s3(dumps).find(BATCH).unwrap().unwrap();
    assert_eq!(batch.dir, Path::new("sample"), "recorded under the prefix");

    let first = jobs.request(&batch, ExportFilter::default()).unwrap();
    let job = finished(&jobs, &first.job().id);
    assert_eq!(job.status, JobStatus::Complete, "{:?}", job.error);
    let reference = state.path().join("reference.zip");
    common::build(&common::sample_dump(), &reference, &ExportOptions::new()).unwrap();
    assert!(
        std::fs::read(jobs.archive_path(&job.id)).unwrap() == std::fs::read(&reference).unwrap(),
        "the service's archive from S3 differs from build of the dump on disk"
    );

    // Unchanged objects: the complete export is reused.
    let again = jobs.request(&batch, ExportFilter::default()).unwrap();
    assert_eq!(again.job().id, job.id);
    // One byte of an upload changed, its size kept: only the object's
    // ETag tells, and the export is not reused.
    let up01 = std::fs::read(common::sample_dump().join("uploads/up-01")).unwrap();
    let mut changed = up01.clone();
    changed[0] ^= 1;
    put(&*store, "service/sample/uploads/up-01", &changed);
    let after_upload = jobs.request(&batch, ExportFilter::default()).unwrap();
    assert_ne!(
        after_upload.job().id,
        job.id,
        "a changed upload is not reused"
    );
    let failed = finished(&jobs, &after_upload.job().id);
    // Its SHA-256 no longer matches the record: refused while streaming.
    assert_eq!(failed.status, JobStatus::Failed);
    let reason = failed.error.unwrap_or_default();
    assert!(
        reason.contains("up-01") || reason.contains("uploads.jsonl"),
        "{reason}"
    );
    assert!(!reason.contains(S3_SECRET_KEY) && !reason.contains(S3_ACCESS_KEY));
    jobs.shutdown();
}
