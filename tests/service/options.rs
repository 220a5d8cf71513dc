//! Archive options in the service (SPEC section 8): part of a job's
//! identity and listed with it, `?pseudonymise=true` only with a key,
//! `--reuse never`, the store of an older version migrated, and the
//! client reading Prolific's error bodies and the job cap.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use batch_export::client::{Client, ClientConfig, ClientError, ExportRequest};
use batch_export::jobs::ReusePolicy;
use serde_json::{json, Value};

use super::*;

#[test]
fn options_are_part_of_a_jobs_identity_and_listed_with_it() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (plain, status) = server.export("");
    assert_eq!(status["status"], "complete");
    // A recent plain export exists, yet tables ask for another archive.
    let answer = server.post("?tables=true");
    assert_eq!(answer.status, 202, "{}", answer.text);
    let tables = answer.json["export_id"].as_str().unwrap().to_owned();
    assert_ne!(tables, plain);
    assert_eq!(server.wait(&tables)["status"], "complete");
    let names = entry_names(&server.archive(&tables));
    assert!(names.contains(&"responses.csv".to_owned()), "{names:?}");
    // Each is reused for its own options only.
    let again = server.post("?tables=true");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["export_id"], tables.as_str());
    let again = server.post("");
    assert_eq!(again.status, 200);
    assert_eq!(again.json["export_id"], plain.as_str());
    // Options combine with the filter.
    let (bare, _) = server.export("?include_files=false&study_id=study-1");
    assert!(entry_names(&server.archive(&bare))
        .iter()
        .all(|n| !n.starts_with("files/")));

    let list = call("GET", &server.export_url(BATCH), Some(TOKEN));
    assert_eq!(list.status, 200);
    let exports = list.json["exports"].as_array().unwrap();
    let options_of = |id: &str| {
        exports
            .iter()
            .find(|e| e["export_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {}", list.text))["options"]
            .clone()
    };
    assert_eq!(
        options_of(&plain),
        json!({"tables": false, "include_files": true, "pseudonymise": false})
    );
    assert_eq!(options_of(&tables)["tables"], true);
    let bare_listed = exports
        .iter()
        .find(|e| e["export_id"] == bare.as_str())
        .unwrap();
    assert_eq!(bare_listed["options"]["include_files"], false);
    assert_eq!(bare_listed["filter"]["study_id"], "study-1");

    let bad = server.post("?tables=yes");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["parameter"], "tables");
}

#[test]
fn pseudonymise_needs_the_services_key_which_stays_out_of_the_store() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let refused = server.post("?pseudonymise=true");
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json["parameter"], "pseudonymise");
    server.stop();

    let key = b"operator-secret-key-4711".to_vec();
    let server = TestServer::start_with(
        &dirs,
        Options {
            pseudonym_key: Some(key.clone()),
            ..Options::default()
        },
    );
    let (id, status) = server.export("?pseudonymise=true&tables=true");
    assert_eq!(status["status"], "complete", "{status}");
    let archive = server.archive(&id);
    let pseudonym = batch_export::pseudonym::pseudonym(&key, "p-1");
    let csv = common::entry(&archive, "responses.csv");
    assert!(String::from_utf8_lossy(&csv).contains(&pseudonym));
    // The sample's participants are p-1, p-2 and p-3: none is left in any
    // entry's bytes.
    for (name, bytes) in common::read_entries(&archive) {
        for original in ["p-1", "p-2", "p-3"] {
            assert!(
                memchr::memmem::find(&bytes, original.as_bytes()).is_none(),
                "{original} in {name}"
            );
        }
    }
    server.stop();
    // Neither the store nor anything else in the state folder holds the key.
    for entry in walkdir::WalkDir::new(dirs.state.path()) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                memchr::memmem::find(&bytes, &key).is_none(),
                "the key is in {}",
                entry.path().display()
            );
        }
    }
}

#[test]
fn reuse_never_answers_202_and_returns_only_a_generating_job() {
    let dirs = Dirs::new();
    let gate = Arc::new(Gate::default());
    let server = TestServer::start_with(
        &dirs,
        Options {
            builder: gate.clone(),
            reuse: ReusePolicy::Never,
            ..Options::default()
        },
    );
    let first = server.post("");
    assert_eq!(first.status, 202);
    let id = first.json["export_id"].as_str().unwrap().to_owned();
    gate.wait_arrivals(1);
    // Still generating: the same job.
    let again = server.post("");
    assert_eq!(again.status, 202);
    assert_eq!(again.json["export_id"], id.as_str());
    // Other options: another job, even while the first generates.
    let other = server.post("?tables=true");
    assert_eq!(other.status, 202);
    assert_ne!(other.json["export_id"], id.as_str());
    gate.open();
    assert_eq!(server.wait(&id)["status"], "complete");
    // Complete: never reused, a new job with 202.
    let after = server.post("");
    assert_eq!(after.status, 202, "{}", after.text);
    assert_ne!(after.json["export_id"], id.as_str());

    // The default policy reuses the complete job with 200.
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (id, _) = server.export("");
    let reused = server.post("");
    assert_eq!(reused.status, 200);
    assert_eq!(reused.json["export_id"], id.as_str());
}

#[test]
fn a_store_from_before_options_is_migrated_with_default_options() {
    let dirs = Dirs::new();
    let path = dirs.state.path().join("jobs.sqlite3");
    {
        // The store of the version before options (migrations 1 and 2),
        // holding a complete plain job and a generating one.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_jobs.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0002_leases.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO jobs (id, batch_id, filter, status, created_at, finished_at,
                fingerprint, dump_dir, error, size, attempts)
             VALUES ('old-job', 'batch-7f3a', '{\"study_id\":null,\"from\":null,\"to\":null}',
                'failed', 1717243200000, 1717243200000, 'f', '/nowhere', 'old failure', NULL, 1);",
        )
        .unwrap();
    }
    let server = TestServer::start(&dirs);
    let list = call("GET", &server.export_url(BATCH), Some(TOKEN));
    assert_eq!(list.status, 200, "{}", list.text);
    let old = &list.json["exports"][0];
    assert_eq!(old["export_id"], "old-job");
    assert_eq!(
        old["options"],
        json!({"tables": false, "include_files": true, "pseudonymise": false})
    );
    // New jobs are stored beside it.
    let (id, status) = server.export("?tables=true");
    assert_eq!(status["status"], "complete");
    let list = call("GET", &server.export_url(BATCH), Some(TOKEN));
    assert_eq!(list.json["exports"][0]["export_id"], id.as_str());
    assert_eq!(list.json["exports"][0]["options"]["tables"], true);
    server.stop();
    // The one-generating-job index now tells options apart.
    let conn = rusqlite::Connection::open(dirs.state.path().join("jobs.sqlite3")).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let index: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'jobs_one_generating'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(index.contains("options"), "{index}");
}

/// A server whose POST always answers `status` with `body`.
fn refusing(runtime: &tokio::runtime::Runtime, status: u16, body: Value) -> String {
    runtime.block_on(async move {
        let status = StatusCode::from_u16(status).unwrap();
        let app = Router::new().route(
            "/api/v1/data-collection/batches/{b}/export",
            post(move || {
                let body = body.clone();
                async move { (status, Json(body)).into_response() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    })
}

fn export_error(base: &str) -> ClientError {
    let client = Client::new(ClientConfig::new(base, TOKEN)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let request = ExportRequest {
        batch_id: BATCH.to_owned(),
        dir: Some(out.path().to_path_buf()),
        ..ExportRequest::default()
    };
    client.export(&request, &mut |_| {}).unwrap_err()
}

#[test]
fn the_client_reads_prolifics_error_body_and_the_older_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let prolific = json!({"error": {"status": 400, "title": "Bad Request", "error_code": 140002,
        "detail": "from is not a date", "additional_information": "/api/v1/errors/140002"}});
    let err = export_error(&refusing(&runtime, 400, prolific));
    let text = err.to_string();
    assert!(
        text.contains("Bad Request: from is not a date (error code 140002); /api/v1/errors/140002"),
        "{text}"
    );
    let older = json!({"message": "Forbidden", "detail": "the study is archived"});
    let text = export_error(&refusing(&runtime, 403, older)).to_string();
    assert!(text.contains("Forbidden: the study is archived"), "{text}");
}

#[test]
fn at_the_job_cap_the_client_says_to_delete_an_export() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let prolific = json!({"error": {"status": 409, "title": "Conflict",
        "detail": "This batch has too many exports"}});
    let err = export_error(&refusing(&runtime, 409, prolific));
    assert!(
        matches!(err, ClientError::TooManyExports { status: 409, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("delete one of its exports"), "{text}");
    assert!(text.contains("This batch has too many exports"), "{text}");
    let older = json!({"message": "Too Many Requests", "detail": "export limit reached"});
    let err = export_error(&refusing(&runtime, 429, older));
    assert!(
        matches!(err, ClientError::TooManyExports { status: 429, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("export limit reached"));

    // Our own server's cap, through the real engine.
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let queries = [
        "",
        "?tables=true",
        "?include_files=false",
        "?tables=true&include_files=false",
        "?study_id=study-1",
        "?study_id=study-2",
        "?study_id=study-1&tables=true",
        "?study_id=study-2&tables=true",
        "?study_id=study-1&include_files=false",
        "?study_id=study-2&include_files=false",
    ];
    for query in queries {
        server.export(query);
    }
    let err = export_error_with(&server.base, "?study_id=x");
    assert!(
        matches!(err, ClientError::TooManyExports { status: 409, .. }),
        "{err:?}"
    );
}

fn export_error_with(base: &str, query: &str) -> ClientError {
    let client = Client::new(ClientConfig::new(base, TOKEN)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let pairs = query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        });
    let request = ExportRequest {
        batch_id: BATCH.to_owned(),
        dir: Some(out.path().to_path_buf()),
        query: batch_export::wire::ExportQuery::from_pairs(pairs).unwrap(),
        ..ExportRequest::default()
    };
    client.export(&request, &mut |_| {}).unwrap_err()
}

/// Polls an export until it is no longer generating.
fn finished(url: &str) -> Value {
    for _ in 0..3000 {
        let answer = call("GET", url, Some(TOKEN));
        assert_eq!(answer.status, 200, "{}", answer.text);
        if answer.json["status"] != "generating" {
            return answer.json;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{url} still generating after 30s");
}

#[test]
fn serve_and_worker_read_the_key_file_and_neither_logs_nor_stores_it() {
    use std::process::{Command, Stdio};
    let dirs = Dirs::new();
    let secret = tempfile::tempdir().unwrap();
    let key_file = secret.path().join("pseudonym.key");
    let key = "operator-key-from-a-file-0815";
    // An editor's final newline is not part of the key.
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let key_arg = key_file.to_str().unwrap();
    // The API builds nothing (--workers 0): the worker, with the same key
    // file, builds on the same store.
    let server = super::process::ServeProcess::start_with(
        dirs.data.path(),
        dirs.state.path(),
        &[
            "--workers",
            "0",
            "--reuse",
            "never",
            "--pseudonymise-key",
            key_arg,
        ],
    );
    let worker_log = secret.path().join("worker.log");
    let mut worker = Command::new(env!("CARGO_BIN_EXE_batch-export"))
        .arg("worker")
        .arg("--data")
        .arg(dirs.data.path())
        .arg("--state")
        .arg(dirs.state.path())
        .args(["--poll-ms", "20", "--pseudonymise-key", key_arg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&worker_log).unwrap())
        .spawn()
        .unwrap();

    let exports = server.export_url();
    let query = format!("{exports}?pseudonymise=true&tables=true");
    let posted = call("POST", &query, Some(TOKEN));
    assert_eq!(posted.status, 202, "{}", posted.text);
    let id = posted.json["export_id"].as_str().unwrap().to_owned();
    let done = finished(&format!("{exports}/{id}"));
    assert_eq!(done["status"], "complete", "{done}");
    let download = call("GET", done["url"].as_str().unwrap(), None);
    assert_eq!(download.status, 200);
    let archive = secret.path().join("archive.zip");
    std::fs::write(&archive, &download.bytes).unwrap();
    let csv = String::from_utf8(common::entry(&archive, "responses.csv")).unwrap();
    let pseudonym = batch_export::pseudonym::pseudonym(key.as_bytes(), "p-1");
    assert!(csv.contains(&pseudonym), "{csv}");
    for (name, bytes) in common::read_entries(&archive) {
        for original in ["p-1", "p-2", "p-3"] {
            assert!(
                memchr::memmem::find(&bytes, original.as_bytes()).is_none(),
                "{original} in {name}"
            );
        }
    }
    // --reuse never: the complete export is not reused.
    let again = call("POST", &query, Some(TOKEN));
    assert_eq!(again.status, 202, "{}", again.text);
    let second = again.json["export_id"].as_str().unwrap().to_owned();
    assert_ne!(second, id);
    assert_eq!(
        finished(&format!("{exports}/{second}"))["status"],
        "complete"
    );

    // SAFETY: kill(2) on our own child's pid, with a plain signal number.
    unsafe {
        libc::kill(worker.id() as libc::pid_t, libc::SIGTERM);
    }
    assert!(worker.wait().unwrap().success());
    let mut log = server.stop().join("\n");
    log.push_str(&std::fs::read_to_string(&worker_log).unwrap());
    assert!(log.contains("job finished"), "{log}");
    assert!(!log.contains(key), "the key is in the log:\n{log}");
    for entry in walkdir::WalkDir::new(dirs.state.path()) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                memchr::memmem::find(&bytes, key.as_bytes()).is_none(),
                "the key is in {}",
                entry.path().display()
            );
        }
    }
}
