//! The client against servers that misbehave at the socket level: a raw
//! TCP listener that accepts and never answers, downloads cut short with
//! no length, bodies that are not archives; and outputs it cannot use.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use batch_export::client::{Client, ClientConfig, ClientError, ExportRequest};
use batch_export::ExportOptions;

use super::*;

/// What the raw server does with one request: its request line, the
/// connection's number (from 0) and the stream to answer on. `false`
/// closes the connection.
type Handler = dyn Fn(&str, usize, &mut TcpStream) -> bool + Send + Sync;

/// A raw HTTP/1.1 server on 127.0.0.1:0; returns its base URL and the
/// count of connections accepted.
fn raw_server(handler: Arc<Handler>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let number = count.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    // The headers; the client's requests have no body.
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header == "\r\n" {
                            break;
                        }
                    }
                    if !handler(request_line.trim_end(), number, &mut stream) {
                        return;
                    }
                }
            });
        }
    });
    (base, connections)
}

/// Writes a keep-alive JSON answer.
fn json_answer(stream: &mut TcpStream, status: &str, body: &serde_json::Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
}

/// Holds a connection open without answering, for the rest of the test run.
fn never_answer() -> bool {
    std::thread::sleep(Duration::from_secs(3600));
    false
}

fn request(dir: &Path) -> ExportRequest {
    ExportRequest {
        batch_id: BATCH.to_owned(),
        dir: Some(dir.to_path_buf()),
        ..ExportRequest::default()
    }
}

/// Runs the export on its own thread; `None` if it is still running
/// after `bound` (the defect: it hangs), else its outcome.
fn export_within(
    config: ClientConfig,
    request: ExportRequest,
    bound: Duration,
) -> Option<Result<batch_export::client::Downloaded, ClientError>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let client = Client::new(config).unwrap();
        let _ = sender.send(client.export(&request, &mut |_| {}));
    });
    receiver.recv_timeout(bound).ok()
}

#[test]
fn the_timeout_holds_when_a_poll_on_a_reused_connection_never_answers() {
    let handler: Arc<Handler> = Arc::new(|line: &str, _number, stream: &mut TcpStream| {
        if line.starts_with("POST") {
            let body = serde_json::json!({"status": "generating", "export_id": "e-1"});
            json_answer(stream, "202 Accepted", &body);
            true
        } else {
            never_answer()
        }
    });
    let (base, connections) = raw_server(handler);
    let out = tempfile::tempdir().unwrap();
    let config = ClientConfig::new(&base, TOKEN)
        .poll_interval(Duration::from_millis(10))
        .timeout(Duration::from_secs(1));
    // The bound is far above the 1 s timeout: it only tells a hang.
    let outcome = export_within(config, request(out.path()), Duration::from_secs(20))
        .expect("the export still hangs 20 s into a 1 s timeout");
    let err = outcome.unwrap_err();
    assert!(
        matches!(&err, ClientError::Timeout { export_id, .. } if export_id == "e-1"),
        "{err}"
    );
    // The poll went over the POST's connection.
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(common::files_in(out.path()).is_empty());
}

#[test]
fn the_timeout_holds_when_the_request_is_never_answered() {
    let handler: Arc<Handler> = Arc::new(|_: &str, _, _: &mut TcpStream| never_answer());
    let (base, _) = raw_server(handler);
    let out = tempfile::tempdir().unwrap();
    let config = ClientConfig::new(&base, TOKEN).timeout(Duration::from_secs(1));
    let outcome = export_within(config, request(out.path()), Duration::from_secs(20))
        .expect("the export still hangs 20 s into a 1 s timeout");
    let err = outcome.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("got no answer"), "{err}");
}

/// A real archive of the sample dump.
fn sample_archive() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.zip");
    common::build(&common::sample_dump(), &path, &ExportOptions::new()).unwrap();
    fs::read(path).unwrap()
}

/// A server whose job is complete at once and whose link answers with
/// `download` (the raw bytes after the request), then closes.
fn serving_download(download: Vec<u8>) -> String {
    let download = Arc::new(download);
    let base = Arc::new(std::sync::Mutex::new(String::new()));
    let link_base = base.clone();
    let handler: Arc<Handler> = Arc::new(move |line: &str, _, stream: &mut TcpStream| {
        if line.starts_with("POST") {
            let url = format!("{}/dl?signature=s", link_base.lock().unwrap());
            let body = serde_json::json!({"status": "complete", "export_id": "e-1",
                "url": url, "expires_at": "2030-01-01T00:00:00Z"});
            json_answer(stream, "200 OK", &body);
            true
        } else {
            let _ = stream.write_all(&download);
            false
        }
    });
    let (url, _) = raw_server(handler);
    *base.lock().unwrap() = url.clone();
    url
}

fn assert_refused_download(download: Vec<u8>, expected: &str) {
    let base = serving_download(download);
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("export.zip");
    let err = Client::new(ClientConfig::new(&base, TOKEN))
        .unwrap()
        .export(
            &ExportRequest {
                output: Some(output.clone()),
                ..request(out.path())
            },
            &mut |_| {},
        )
        .unwrap_err();
    assert!(
        matches!(err, ClientError::NotAnArchive { .. }),
        "{expected}: {err}"
    );
    assert!(err.to_string().contains(expected), "{err}");
    assert!(!output.exists());
    assert!(
        common::files_in(out.path()).is_empty(),
        "{:?}",
        common::files_in(out.path())
    );
}

#[test]
fn a_download_cut_short_without_a_length_fails_and_leaves_nothing() {
    let archive = sample_archive();
    let mut download =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/zip\r\nconnection: close\r\n\r\n".to_vec();
    download.extend_from_slice(&archive[..archive.len() / 2]);
    assert_refused_download(download, "sent no length");
}

#[test]
fn a_body_that_is_not_a_zip_fails_and_leaves_nothing() {
    let page = b"<html><body>Sign in to continue</body></html>";
    let mut download = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n",
        page.len()
    )
    .into_bytes();
    download.extend_from_slice(page);
    assert_refused_download(download, "no end of central directory record");
}

#[test]
fn a_whole_download_without_a_length_is_accepted() {
    let archive = sample_archive();
    let mut download = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
    download.extend_from_slice(&archive);
    let base = serving_download(download);
    let out = tempfile::tempdir().unwrap();
    let done = Client::new(ClientConfig::new(&base, TOKEN))
        .unwrap()
        .export(&request(out.path()), &mut |_| {})
        .unwrap();
    assert_eq!(fs::read(done.path).unwrap(), archive);
}

#[test]
fn export_to_an_existing_folder_fails_before_requesting() {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let handler: Arc<Handler> = Arc::new(move |_: &str, _, _: &mut TcpStream| {
        seen.fetch_add(1, Ordering::SeqCst);
        false
    });
    let (base, _) = raw_server(handler);
    let out = tempfile::tempdir().unwrap();
    fs::create_dir(out.path().join("existing")).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_batch-export"))
        .current_dir(out.path())
        .args(["export", "--api-url", &base, BATCH, "-o", "existing"])
        .env("PROLIFIC_TOKEN", TOKEN)
        .env_remove("BATCH_EXPORT_API_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("existing: it is a folder"), "{stderr}");
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    assert_eq!(common::files_in(&out.path().join("existing")).len(), 0);
}

#[test]
fn a_refused_url_never_shows_its_credentials() {
    let err = Client::new(ClientConfig::new(
        "http://user:pw@exports.example.org",
        TOKEN,
    ))
    .unwrap_err();
    assert!(matches!(err, ClientError::InsecureUrl { .. }), "{err}");
    assert!(!err.to_string().contains("user:pw"), "{err}");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_batch-export"))
        .args([
            "export",
            "--api-url",
            "http://user:pw@exports.example.org",
            BATCH,
        ])
        .env("PROLIFIC_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exports.example.org"), "{stderr}");
    assert!(!stderr.contains("pw"), "{stderr}");
}
