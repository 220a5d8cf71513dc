//! The client, as a library against the real server and a scripted flaky
//! one, and as the `batch-export export` command with its exit codes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use batch_export::client::{Client, ClientConfig, ClientError, ClientEvent, ExportRequest};
use serde_json::json;

use super::*;

fn client(base: &str, token: &str) -> Client {
    let config = ClientConfig::new(base, token).poll_interval(Duration::from_millis(10));
    Client::new(config).unwrap()
}

fn request(dir: &Path) -> ExportRequest {
    ExportRequest {
        batch_id: BATCH.to_owned(),
        dir: Some(dir.to_path_buf()),
        ..ExportRequest::default()
    }
}

#[test]
fn the_client_downloads_under_the_default_name_or_output() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let out = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let done = client(&server.base, TOKEN)
        .export(&request(out.path()), &mut |e| events.push(e))
        .unwrap();
    assert_eq!(
        done.path,
        out.path().join("batch-7f3a-export-20240601-120000.zip")
    );
    assert_eq!(
        fs::read(&done.path).unwrap(),
        fs::read(server.archive(&done.export_id)).unwrap()
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ClientEvent::Downloading { .. })));
    // Nothing but the archive is left behind.
    assert_eq!(common::files_in(out.path()).len(), 1);

    // A second export is the reused one (200 from the POST) to --output.
    let output = out.path().join("mine.zip");
    let again = ExportRequest {
        output: Some(output.clone()),
        ..request(out.path())
    };
    let done_again = client(&server.base, TOKEN)
        .export(&again, &mut |_| {})
        .unwrap();
    assert_eq!(done_again.export_id, done.export_id);
    assert_eq!(fs::read(&output).unwrap(), fs::read(&done.path).unwrap());
}

#[test]
fn the_client_fetches_a_fresh_link_when_one_expired() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let out = tempfile::tempdir().unwrap();
    let clock = server.clock.clone();
    let mut links = 0;
    let mut refreshed = false;
    let done = client(&server.base, TOKEN)
        .export(&request(out.path()), &mut |event| match event {
            // The first link expires between the poll and the download.
            ClientEvent::LinkReady { .. } => {
                links += 1;
                if links == 1 {
                    clock.advance(Duration::from_secs(2 * 3600));
                }
            }
            ClientEvent::RefreshingLink => refreshed = true,
            _ => {}
        })
        .unwrap();
    assert!(refreshed);
    assert_eq!(links, 2);
    assert_eq!(
        fs::read(&done.path).unwrap(),
        fs::read(server.archive(&done.export_id)).unwrap()
    );
}

/// What the scripted server saw.
#[derive(Default)]
struct Script {
    payload: Vec<u8>,
    polls: AtomicUsize,
    posts: AtomicUsize,
    /// (link generation, Range header, had an Authorization header) per download.
    downloads: Mutex<Vec<(usize, Option<String>, bool)>>,
    base: Mutex<String>,
}

/// A server that always answers 202, completes after two polls, breaks
/// the first download off half-way, and then refuses that first link.
async fn flaky(script: Arc<Script>) -> String {
    async fn post_export(State(s): State<Arc<Script>>) -> Response {
        s.posts.fetch_add(1, Ordering::SeqCst);
        (
            StatusCode::ACCEPTED,
            Json(json!({"status": "generating", "export_id": "e-1"})),
        )
            .into_response()
    }
    async fn status(State(s): State<Arc<Script>>) -> Json<serde_json::Value> {
        let n = s.polls.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            return Json(json!({"status": "generating", "export_id": "e-1"}));
        }
        let base = s.base.lock().unwrap().clone();
        Json(json!({"status": "complete", "export_id": "e-1",
                    "url": format!("{base}/dl/{n}"), "expires_at": "2030-01-01T00:00:00Z"}))
    }
    async fn download(
        State(s): State<Arc<Script>>,
        UrlPath(n): UrlPath<usize>,
        headers: HeaderMap,
    ) -> Response {
        let range = headers.get("range").map(|v| v.to_str().unwrap().to_owned());
        let auth = headers.contains_key("authorization");
        let first_link = s.downloads.lock().unwrap().first().map_or(n, |d| d.0) == n;
        s.downloads.lock().unwrap().push((n, range.clone(), auth));
        let len = s.payload.len();
        match range {
            None => {
                // Promise everything, send half, then break the connection.
                // The pause lets the server flush the half before the
                // error aborts the connection.
                let half = Bytes::copy_from_slice(&s.payload[..len / 2]);
                let chunks = futures_util::stream::unfold(0, move |step| {
                    let half = half.clone();
                    async move {
                        match step {
                            0 => Some((Ok(half), 1)),
                            1 => {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Some((Err(std::io::Error::other("connection lost")), 2))
                            }
                            _ => None,
                        }
                    }
                });
                Response::builder()
                    .header("content-length", len)
                    .header(
                        "content-disposition",
                        "attachment; filename=\"from-server.zip\"",
                    )
                    .body(Body::from_stream(chunks))
                    .unwrap()
            }
            Some(_) if first_link => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "download link expired"})),
            )
                .into_response(),
            Some(range) => {
                let start: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                Response::builder()
                    .status(206)
                    .header("content-length", len - start)
                    .header("content-range", format!("bytes {start}-{}/{len}", len - 1))
                    .body(Body::from(s.payload[start..].to_vec()))
                    .unwrap()
            }
        }
    }
    let app = Router::new()
        .route(
            "/api/v1/data-collection/batches/{b}/export",
            post(post_export),
        )
        .route(
            "/api/v1/data-collection/batches/{b}/export/{e}",
            get(status),
        )
        .route("/dl/{n}", get(download))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *script.base.lock().unwrap() = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

#[test]
fn the_client_resumes_a_broken_download_and_never_sends_the_token_there() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A real archive: the client takes nothing that does not end like one.
    let built = tempfile::tempdir().unwrap();
    let archive = built.path().join("sample.zip");
    common::build(
        &common::sample_dump(),
        &archive,
        &batch_export::ExportOptions::new(),
    )
    .unwrap();
    let payload = fs::read(&archive).unwrap();
    let script = Arc::new(Script {
        payload: payload.clone(),
        ..Script::default()
    });
    let base = runtime.block_on(flaky(script.clone()));

    let out = tempfile::tempdir().unwrap();
    let mut resumed = None;
    let done = client(&base, TOKEN)
        .export(&request(out.path()), &mut |event| {
            if let ClientEvent::Resuming { offset } = event {
                resumed = Some(offset);
            }
        })
        .unwrap();
    assert_eq!(fs::read(&done.path).unwrap(), payload);
    assert_eq!(done.path, out.path().join("from-server.zip"));
    assert_eq!(script.posts.load(Ordering::SeqCst), 1);
    let downloads = script.downloads.lock().unwrap().clone();
    let half = format!("bytes={}-", payload.len() / 2);
    // Whole, then resumed on the same (now refused) link, then resumed on a fresh one.
    assert_eq!(downloads.len(), 3, "{downloads:?}");
    assert_eq!(downloads[0].1, None);
    assert_eq!(downloads[1].1.as_deref(), Some(half.as_str()));
    assert_eq!(downloads[2].1.as_deref(), Some(half.as_str()));
    assert_ne!(downloads[2].0, downloads[0].0);
    assert!(
        downloads.iter().all(|d| !d.2),
        "a download carried the token"
    );
    assert_eq!(resumed, Some(payload.len() as u64 / 2));
}

#[test]
fn the_client_refuses_plain_http_beyond_loopback() {
    let err = Client::new(ClientConfig::new("http://exports.example.org", TOKEN)).unwrap_err();
    assert!(matches!(err, ClientError::InsecureUrl { .. }), "{err}");
}

fn export_command(base: &str, token: Option<&str>, dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batch-export"));
    command
        .current_dir(dir)
        .args(["export", "--api-url", base, "--poll-interval", "0.01"])
        .args(args)
        .env_remove("PROLIFIC_TOKEN")
        .env_remove("BATCH_EXPORT_API_URL");
    if let Some(token) = token {
        command.env("PROLIFIC_TOKEN", token);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_export_command_writes_the_archive() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let out = tempfile::tempdir().unwrap();
    let run = export_command(&server.base, Some(TOKEN), out.path(), &[BATCH]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let name = "batch-7f3a-export-20240601-120000.zip";
    assert!(stderr(&run).contains(name), "{}", stderr(&run));
    assert_eq!(entry_names(&out.path().join(name))[0], "README.md");

    let run = export_command(
        &server.base,
        Some(TOKEN),
        out.path(),
        &[BATCH, "--output", "x/y.zip"],
    );
    assert_ne!(run.status.code(), Some(0), "x/ does not exist");
    fs::create_dir(out.path().join("x")).unwrap();
    let run = export_command(
        &server.base,
        Some(TOKEN),
        out.path(),
        &[BATCH, "--output", "x/y.zip"],
    );
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(out.path().join("x/y.zip").is_file());
}

/// Token, API URL, arguments, expected exit code, expected message.
type Case<'a> = (Option<&'a str>, &'a str, &'a [&'a str], i32, &'a str);

#[test]
fn the_export_command_explains_each_failure() {
    let dirs = Dirs::new();
    let gate = Arc::new(Gate::default());
    let server = TestServer::start_with(
        &dirs,
        Options {
            builder: gate.clone(),
            ..Options::default()
        },
    );
    let out = tempfile::tempdir().unwrap();
    let base = server.base.as_str();
    let cases: [Case; 6] = [
        (None, base, &[BATCH], 2, "PROLIFIC_TOKEN is not set"),
        (Some("nope"), base, &[BATCH], 2, "refused the token (401)"),
        (
            Some(TOKEN),
            base,
            &["batch-nope"],
            2,
            "batch batch-nope not found",
        ),
        (
            Some(OTHER_TOKEN),
            base,
            &[BATCH],
            2,
            "batch batch-7f3a not found",
        ),
        (
            Some(TOKEN),
            "http://exports.example.org",
            &[BATCH],
            2,
            "only https://",
        ),
        (
            Some(TOKEN),
            base,
            &[BATCH, "--timeout", "0.05"],
            2,
            "still generating",
        ),
    ];
    for (token, api, args, code, message) in cases {
        let run = export_command(api, token, out.path(), args);
        assert_eq!(run.status.code(), Some(code), "{message}: {}", stderr(&run));
        assert!(
            stderr(&run).contains(message),
            "{message}: {}",
            stderr(&run)
        );
    }
    // Let the job the timed-out command started finish first: while it
    // generates, a request is answered with it, whatever the dump holds.
    gate.open();
    for job in server.jobs.list(BATCH).unwrap() {
        assert_eq!(server.wait(&job.id)["status"], "complete");
    }

    // A failed export exits 1, like refused input.
    fs::remove_file(dirs.dump().join("uploads/up-01")).unwrap();
    let run = export_command(base, Some(TOKEN), out.path(), &[BATCH]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("failed"), "{}", stderr(&run));
    assert!(stderr(&run).contains("up-01"), "{}", stderr(&run));
    assert!(
        common::files_in(out.path()).is_empty(),
        "{:?}",
        common::files_in(out.path())
    );
}
