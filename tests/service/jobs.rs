//! Job semantics through the API: the whole flow, idempotency under a
//! burst, reuse and its limits, failures, restarts, the cap, filters.

use std::collections::BTreeSet;
use std::fs;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::*;

#[test]
fn post_poll_download_gives_the_archive() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (id, status) = server.export("");
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(status["expires_at"], "2024-06-01T13:00:00Z");

    let download = call("GET", status["url"].as_str().unwrap(), None);
    assert_eq!(download.status, 200);
    let path = dirs.state.path().join("downloaded.zip");
    fs::write(&path, &download.bytes).unwrap();
    let names = entry_names(&path);
    assert_eq!(
        names[..4],
        [
            "README.md",
            "batch.json",
            "responses-by-submission.jsonl",
            "responses-by-task.jsonl"
        ]
    );
    assert!(
        names.iter().any(|n| n.starts_with("files/sub-a1_photo")),
        "{names:?}"
    );
    assert_eq!(download.bytes, fs::read(server.archive(&id)).unwrap());
}

#[test]
fn a_burst_of_posts_makes_one_job() {
    let dirs = Dirs::new();
    let gate = Arc::new(Gate::default());
    let server = TestServer::start_with(
        &dirs,
        Options {
            builder: gate.clone(),
            ..Options::default()
        },
    );
    let url = server.export_url(BATCH);
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                call("POST", &url, Some(TOKEN))
            })
        })
        .collect();
    let ids: BTreeSet<String> = threads
        .into_iter()
        .map(|t| {
            let answer = t.join().unwrap();
            assert_eq!(answer.status, 202, "{}", answer.text);
            answer.json["export_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(server.jobs.list(BATCH).unwrap().len(), 1);
    gate.open();
    let id = ids.into_iter().next().unwrap();
    assert_eq!(server.wait(&id)["status"], "complete");
}

#[test]
fn a_complete_export_is_reused_until_records_change_or_it_ages() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (first, _) = server.export("");

    let again = server.post("");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["status"], "complete");
    assert_eq!(again.json["export_id"], first.as_str());
    assert!(again.json["url"].as_str().unwrap().contains(&first));
    assert_eq!(server.jobs.list(BATCH).unwrap().len(), 1);

    // An unused task is a change of the records: a new job.
    let tasks = dirs.dump().join("tasks.jsonl");
    let mut text = fs::read_to_string(&tasks).unwrap();
    text.push_str("{\"id\": \"t-new\"}\n");
    fs::write(&tasks, text).unwrap();
    let (second, status) = server.export("");
    assert_ne!(second, first);
    assert_eq!(status["status"], "complete");
    assert_eq!(server.post("").status, 200);

    // Just younger than a day is reused; a day old is not.
    server.clock.advance(Duration::from_secs(24 * 3600 - 1));
    assert_eq!(server.post("").json["export_id"], second.as_str());
    server.clock.advance(Duration::from_secs(1));
    let (third, _) = server.export("");
    assert_ne!(third, second);

    let listed: Vec<String> = server
        .jobs
        .list(BATCH)
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [third, second, first], "newest first");
}

#[test]
fn a_failed_build_says_why_and_a_new_post_retries() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let upload = dirs.dump().join("uploads/up-01");
    let bytes = fs::read(&upload).unwrap();
    fs::remove_file(&upload).unwrap();

    let (failed, status) = server.export("");
    assert_eq!(status["status"], "failed");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("up-01"), "{error}");
    assert!(!server.archive(&failed).exists());

    fs::write(&upload, bytes).unwrap();
    let (retried, status) = server.export("");
    assert_ne!(retried, failed);
    assert_eq!(status["status"], "complete");
}

#[test]
fn a_job_interrupted_by_a_restart_is_finished_by_the_next_start() {
    let dirs = Dirs::new();
    let gate = Arc::new(Gate::default());
    let first = TestServer::start_with(
        &dirs,
        Options {
            builder: gate.clone(),
            ..Options::default()
        },
    );
    let answer = first.post("");
    let id = answer.json["export_id"].as_str().unwrap().to_owned();
    gate.wait_arrivals(1);
    first.stop();

    let second = TestServer::start(&dirs);
    assert_eq!(second.wait(&id)["status"], "complete");
}

#[test]
fn a_job_interrupted_too_often_is_failed_not_stuck() {
    let dirs = Dirs::new();
    let gate = Arc::new(Gate::default());
    let first = TestServer::start_with(
        &dirs,
        Options {
            builder: gate.clone(),
            ..Options::default()
        },
    );
    let id = first.post("").json["export_id"]
        .as_str()
        .unwrap()
        .to_owned();
    gate.wait_arrivals(1);
    first.stop();

    let second = TestServer::start_with(
        &dirs,
        Options {
            max_attempts: 1,
            ..Options::default()
        },
    );
    let status = second.wait(&id);
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("service stopped"),
        "{status}"
    );
    // And a new request builds afresh.
    assert_eq!(second.export("").1["status"], "complete");
}

#[test]
fn list_and_delete() {
    let dirs = Dirs::new();
    let gate = Arc::new(Gate::default());
    let server = TestServer::start_with(
        &dirs,
        Options {
            builder: gate.clone(),
            ..Options::default()
        },
    );
    let id = server.post("").json["export_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job_url = format!("{}/{id}", server.export_url(BATCH));

    let listed = call("GET", &server.export_url(BATCH), Some(TOKEN));
    assert_eq!(listed.status, 200);
    let exports = listed.json["exports"].as_array().unwrap();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0]["export_id"], id.as_str());
    assert_eq!(exports[0]["status"], "generating");
    assert_eq!(exports[0]["created_at"], "2024-06-01T12:00:00Z");
    assert_eq!(
        exports[0]["filter"],
        serde_json::json!({"study_id": null, "from": null, "to": null})
    );

    let refused = call("DELETE", &job_url, Some(TOKEN));
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.json["error"]
        .as_str()
        .unwrap()
        .contains("generating"));

    gate.open();
    let url = server.wait(&id)["url"].as_str().unwrap().to_owned();
    assert_eq!(call("DELETE", &job_url, Some(TOKEN)).status, 204);
    assert!(!server.archive(&id).exists());
    assert_eq!(call("GET", &job_url, Some(TOKEN)).status, 404);
    assert_eq!(call("DELETE", &job_url, Some(TOKEN)).status, 404);
    assert_eq!(call("GET", &url, None).status, 403);
    assert_eq!(
        call("GET", &server.export_url(BATCH), Some(TOKEN)).json["exports"],
        serde_json::json!([])
    );
}

#[test]
fn at_most_ten_jobs_per_batch() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    for n in 0..10 {
        assert_eq!(server.post(&format!("?study_id=s{n}")).status, 202);
    }
    let refused = server.post("?study_id=s10");
    assert_eq!(refused.status, 409);
    let message = refused.json["error"].as_str().unwrap();
    assert!(message.contains("10 export jobs"), "{message}");
    // A request matching an existing job is still answered.
    assert!(matches!(server.post("?study_id=s3").status, 200 | 202));
}

#[test]
fn filters_make_separate_jobs_holding_exactly_their_responses() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (all, _) = server.export("");
    let (study, status) = server.export("?study_id=study-2");
    assert_ne!(all, study);
    assert_eq!(status["status"], "complete");
    let submissions: Vec<String> =
        common::jsonl(&server.archive(&study), "responses-by-submission.jsonl")
            .iter()
            .map(|line| line["submission_id"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(submissions, ["sub-c3"]);

    // The same window written with another offset is the same job.
    let (window, _) = server.export("?from=2024-05-01T09:05:00Z&to=2024-05-02T00:00:00Z");
    let same = server.post("?from=2024-05-01T11:05:00%2B02:00&to=2024-05-02T00:00:00Z");
    assert_eq!(same.status, 200);
    assert_eq!(same.json["export_id"], window.as_str());

    let expected = responses_in_window("2024-05-01T09:05:00Z", "2024-05-02T00:00:00Z");
    assert!(!expected.is_empty());
    let exported: BTreeSet<String> =
        common::jsonl(&server.archive(&window), "responses-by-task.jsonl")
            .iter()
            .flat_map(|task| task["responses"].as_array().unwrap().clone())
            .map(|r| r["response_id"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(exported, expected);

    let bad = server.post("?from=yesterday");
    assert_eq!(bad.status, 400);
    assert!(bad.json["error"].as_str().unwrap().contains("from"));
}

/// Ids of the sample's answered responses created in [from, to).
fn responses_in_window(from: &str, to: &str) -> BTreeSet<String> {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let (from, to) = (parse(from), parse(to));
    fs::read_to_string(common::sample_dump().join("responses.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["response"]["type"] != "no_submission")
        .filter(|r| {
            r["created_at"]
                .as_str()
                .is_some_and(|t| (from..to).contains(&parse(t)))
        })
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}
