//! Archives in S3 (`--objects s3://BUCKET/PREFIX`) against the real
//! SeaweedFS, which checks SigV4: processes of the real binary on one
//! PostgreSQL publish each archive whole by a multipart upload, hand out
//! presigned links, and leave neither a partial object nor an open upload
//! when a worker dies or the object store goes away mid-upload.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use batch_export::synth::{generate, SynthOptions};
use batch_export::ExportOptions;
use serde_json::Value;

use super::processes::{export_url, one_job_from_concurrent_posts, wait_done, Deployment};
use super::servers::{self, s3, PrivateSeaweed, S3_ACCESS_KEY, S3_SECRET_KEY};
use crate::common;
use crate::service::{call, call_with, BATCH, TOKEN};

/// A key prefix of its own for one test, in the one bucket a test run
/// uses on each server (SeaweedFS gives every bucket volumes of its own,
/// and the test server has few).
pub(super) struct Bucket {
    endpoint: String,
    bucket: String,
    prefix: String,
}

impl Bucket {
    pub(super) fn create(endpoint: &str, name: &str) -> Bucket {
        static CREATED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let bucket = Bucket {
            endpoint: endpoint.to_owned(),
            bucket: format!("tests-{}", std::process::id()),
            prefix: name.to_owned(),
        };
        let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
        if created.insert(endpoint.to_owned()) {
            let url = format!("{endpoint}/{}", bucket.bucket);
            let (status, body) = s3("PUT", &url, None, true);
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        }
        bucket
    }

    /// The URL of `rest` under this test's prefix.
    pub(super) fn url(&self, rest: &str) -> String {
        format!("{}/{}/{}{rest}", self.endpoint, self.bucket, self.prefix)
    }

    /// `--objects` for `exports` under this test's prefix.
    pub(super) fn objects(&self) -> String {
        format!("s3://{}/{}/exports", self.bucket, self.prefix)
    }

    /// A signed GET of the bucket with `query`, whose parameters must be
    /// in byte order (curl signs them as written).
    fn list(&self, query: &str) -> String {
        let url = format!("{}/{}?{query}", self.endpoint, self.bucket);
        let (status, body) = s3("GET", &url, None, true);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Every key under the prefix, without it.
    pub(super) fn keys(&self) -> Vec<String> {
        let strip = format!("{}/", self.prefix);
        elements(
            &self.list(&format!("list-type=2&prefix={}%2F", self.prefix)),
            "Key",
        )
        .into_iter()
        .map(|key| key.strip_prefix(&strip).unwrap_or(&key).to_owned())
        .collect()
    }

    /// The multipart uploads under the prefix started and neither
    /// completed nor aborted.
    pub(super) fn open_uploads(&self) -> Vec<String> {
        elements(
            &self.list(&format!("prefix={}%2F&uploads=", self.prefix)),
            "Upload",
        )
    }

    /// The AWS_* variables reaching the server.
    fn env(&self) -> [(&'static str, &str); 5] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
    }
}

/// The text of every `<tag>...</tag>` in `xml`, in order.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find(&close).expect("closed element");
        found.push(after[..end].to_owned());
        rest = &after[end..];
    }
    found
}

/// The AWS_* variables as the deployment takes them.
fn env_of(bucket: &Bucket) -> Vec<(&'static str, &str)> {
    bucket.env().to_vec()
}

/// `link` with one character of its signature changed.
fn tampered(link: &str) -> String {
    let at = link.find("X-Amz-Signature=").expect("a SigV4 link") + 16;
    let mut bytes = link.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn two_apis_and_two_workers_publish_one_archive_to_s3_with_presigned_links() {
    let (Some(weed), Some(deployment)) = (servers::seaweed(), Deployment::new()) else {
        return;
    };
    let bucket = Bucket::create(&weed.endpoint, "archives");
    let deployment = deployment.with(&["--objects", &bucket.objects()], &env_of(&bucket));
    let (_api1, base1) = deployment.api();
    // The second API hands out links that expire after one second.
    let (_api2, base2) = deployment.api_with(&["--link-seconds", "1"]);
    let _workers = [deployment.worker(&[]), deployment.worker(&[])];

    let id = one_job_from_concurrent_posts(&base1, &base2);

    let reference = deployment.reference();
    let status = wait_done(&base1, &id);
    assert_eq!(status["status"], "complete", "{status}");
    let link = status["url"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&bucket.url(&format!("/exports/{id}.zip?"))),
        "a presigned link to the object: {link}"
    );
    assert!(
        link.contains("X-Amz-Expires=3600"),
        "valid one hour: {link}"
    );
    let download = call("GET", &link, None);
    assert_eq!(download.status, 200, "{}", download.text);
    assert!(download.bytes == reference, "byte-identical to build");
    let disposition = download.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.contains("filename=\"batch-7f3a-export-") && disposition.ends_with(".zip\""),
        "names the file: {disposition}"
    );
    let part = call_with("GET", &link, None, &[("Range", "bytes=100-1099")]);
    assert_eq!(part.status, 206);
    assert!(part.bytes == reference[100..1100], "the range asked");

    assert_eq!(call("GET", &tampered(&link), None).status, 403, "tampered");
    let renamed = link.replace("filename%3D%22", "filename%3D%22x");
    assert_ne!(renamed, link);
    assert_eq!(
        call("GET", &renamed, None).status,
        403,
        "disposition is signed"
    );

    // Either API sees it complete, each poll with a freshly signed link.
    let short = wait_done(&base2, &id)["url"].as_str().unwrap().to_owned();
    assert!(short.contains("X-Amz-Expires=1&"), "{short}");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(call("GET", &short, None).status, 403, "expired");
    let fresh = wait_done(&base2, &id)["url"].as_str().unwrap().to_owned();
    assert_ne!(fresh, short, "a fresh link on every poll");

    // The client downloads from the presigned link, a plain URL.
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_batch-export"))
        .current_dir(out.path())
        .args(["export", "--api-url", &base1, BATCH, "-o", "got.zip"])
        .env("PROLIFIC_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(std::fs::read(out.path().join("got.zip")).unwrap() == reference);
    assert!(!stderr.contains("X-Amz-Signature"), "{stderr}");

    assert_eq!(bucket.keys(), [format!("exports/{id}.zip")], "one object");
    assert_eq!(bucket.open_uploads(), Vec::<String>::new());
    assert!(
        common::files_in(&deployment.state.path().join("staging")).is_empty(),
        "nothing staged is left behind"
    );

    // Deleting the export deletes its object.
    let url = format!("{}/{id}", export_url(&base2));
    assert_eq!(call("DELETE", &url, Some(TOKEN)).status, 204);
    assert_eq!(bucket.keys(), Vec::<String>::new());
    assert_eq!(call("GET", &link, None).status, 404, "the object is gone");
}

#[test]
fn a_worker_killed_mid_build_leaves_exactly_one_archive_object() {
    let (Some(weed), Some(deployment)) = (servers::seaweed(), Deployment::new()) else {
        return;
    };
    let bucket = Bucket::create(&weed.endpoint, "killed");
    let deployment = deployment.with(&["--objects", &bucket.objects()], &env_of(&bucket));
    let (_api, base) = deployment.api();
    let mut doomed = deployment.worker(&["--test-build-delay-ms", "60000"]);
    let answer = call("POST", &export_url(&base), Some(TOKEN));
    assert_eq!(answer.status, 202, "{}", answer.text);
    let id = answer.json["export_id"].as_str().unwrap().to_owned();
    let took = format!("export_id={id}");
    doomed.wait_all(&["job started", &took, "attempt=1"]);

    let rescuer = deployment.worker(&[]);
    doomed.kill();
    rescuer.wait_all(&["job started", &took, "attempt=2"]);
    let status = wait_done(&base, &id);
    assert_eq!(status["status"], "complete", "{status}");
    let download = call("GET", status["url"].as_str().unwrap(), None);
    assert!(download.bytes == deployment.reference());
    assert_eq!(
        bucket.keys(),
        [format!("exports/{id}.zip")],
        "exactly one archive"
    );
    assert_eq!(bucket.open_uploads(), Vec::<String>::new());
}

/// Polls until the job is no longer generating, for up to 2 minutes
/// (a failing upload is retried for a while first).
fn wait_long(exports: &str, export_id: &str) -> Value {
    let url = format!("{exports}/{export_id}");
    for _ in 0..1200 {
        let answer = call("GET", &url, Some(TOKEN));
        assert_eq!(answer.status, 200, "{}", answer.text);
        if answer.json["status"] != "generating" {
            return answer.json;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("export {export_id} still generating after 2 minutes");
}

#[test]
fn s3_stopped_mid_upload_fails_the_job_and_a_retry_succeeds_once_it_is_back() {
    let (Some(mut weed), Some(deployment)) = (PrivateSeaweed::start(), Deployment::new()) else {
        return;
    };
    let bucket = Bucket::create(&weed.endpoint, "outage");
    // A dump whose archive takes 3 parts of 8 MiB (random uploads do not
    // compress).
    let big = deployment.data.path().join("big");
    let options = SynthOptions {
        submissions: 10,
        tasks: 2,
        uploads: 20,
        upload_min_bytes: 1_000_000,
        upload_max_bytes: 1_200_000,
        incompressible_share: 1.0,
        ..SynthOptions::default()
    };
    generate(&big, &options).unwrap();
    let batch = "batch-synth-1";
    let deployment = deployment.with(
        &["--objects", &bucket.objects(), "--s3-retry-seconds", "1"],
        &[
            env_of(&bucket),
            vec![("RUST_LOG", "info,batch_export=debug")],
        ]
        .concat(),
    );
    let (_api, base) = deployment.api();
    let worker = deployment.worker(&["--test-upload-pause-ms", "1500"]);
    let url = export_url(&base).replace(BATCH, batch);
    let answer = call("POST", &url, Some(TOKEN));
    assert_eq!(answer.status, 202, "{}", answer.text);
    let id = answer.json["export_id"].as_str().unwrap().to_owned();

    // Stopped right after the first part went in (the worker pauses
    // after each part, so the second is still to come).
    worker.wait_all(&["archive part uploaded", &id, "part=1"]);
    weed.stop();
    let status = wait_long(&url, &id);
    assert_eq!(status["status"], "failed", "{status}");
    let reason = status["error"].as_str().unwrap();
    assert!(
        reason.starts_with("uploading the archive to object storage failed: "),
        "{reason}"
    );
    assert!(!reason.contains("uploadId"), "no query string: {reason}");

    weed.resume();
    // The worker aborts its upload once the store answers again.
    worker.wait_all(&["multipart upload aborted", &id]);
    assert_eq!(bucket.keys(), Vec::<String>::new(), "no object at the key");
    assert_eq!(
        bucket.open_uploads(),
        Vec::<String>::new(),
        "no open upload"
    );

    let answer = call("POST", &url, Some(TOKEN));
    assert_eq!(answer.status, 202, "{}", answer.text);
    let retry = answer.json["export_id"].as_str().unwrap().to_owned();
    assert_ne!(retry, id);
    let status = wait_long(&url, &retry);
    assert_eq!(status["status"], "complete", "{status}");
    let reference = deployment.state.path().join("big.zip");
    common::build(&big, &reference, &ExportOptions::new()).unwrap();
    let download = call("GET", status["url"].as_str().unwrap(), None);
    assert_eq!(
        download.bytes.len() as u64,
        std::fs::metadata(&reference).unwrap().len()
    );
    assert!(
        download.bytes == std::fs::read(&reference).unwrap(),
        "byte-identical to build"
    );
    assert!(download.bytes.len() > 16 << 20, "more than two parts");
    assert_eq!(bucket.keys(), [format!("exports/{retry}.zip")]);
    assert_eq!(bucket.open_uploads(), Vec::<String>::new());
}
