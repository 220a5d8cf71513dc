//! The real `serve` binary's logs, health and metrics: it is run, used as a
//! client would (tokens, polls, signed downloads, a refused token, a build
//! that fails), stopped, and its standard error is scraped.

use super::process::ServeProcess;
use super::*;

/// The one token `ServeProcess` accepts: it must never be logged.
const SECRET_TOKEN: &str = TOKEN;
/// A refused token: not logged either.
const WRONG_TOKEN: &str = "tok-wrong-0a1b2c3d4e5f";

/// Fails when the log shows any of `secrets` (a token, a signature, a
/// link's query string), or an `Authorization` header at all.
pub(super) fn assert_no_secret_in(log: &str, secrets: &[&str]) {
    let header = ["Authorization", "authorization"];
    for secret in secrets.iter().copied().chain(header) {
        assert!(!log.contains(secret), "{secret:?} is in the log:\n{log}");
    }
}

pub(super) fn wait_until_done(url: &str) -> Value {
    for _ in 0..3000 {
        let answer = call("GET", url, Some(SECRET_TOKEN));
        assert_eq!(answer.status, 200, "{}", answer.text);
        if answer.json["status"] != "generating" {
            return answer.json;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{url} still generating after 30s");
}

#[test]
fn serve_logs_requests_and_jobs_and_never_a_secret() {
    let dirs = Dirs::new();
    let server = ServeProcess::start_with(
        dirs.data.path(),
        dirs.state.path(),
        &["--log-format", "json"],
    );
    let exports = server.export_url();

    let posted = call("POST", &exports, Some(SECRET_TOKEN));
    assert_eq!(posted.status, 202, "{}", posted.text);
    let id = posted.json["export_id"].as_str().unwrap().to_owned();
    let done = wait_until_done(&format!("{exports}/{id}"));
    assert_eq!(done["status"], "complete", "{done}");
    let link = done["url"].as_str().unwrap().to_owned();
    let (_, query) = link.split_once('?').unwrap();
    let signature = query.split("signature=").nth(1).unwrap().to_owned();
    let download = call("GET", &link, None);
    assert_eq!(download.status, 200);
    assert_eq!(call("GET", &exports, Some(WRONG_TOKEN)).status, 401);
    let lowercase = format!("token {SECRET_TOKEN}");
    let listed = call_with("GET", &exports, None, &[("Authorization", &lowercase)]);
    assert_eq!(listed.status, 200);

    // A dump that breaks the contract: the next export fails.
    let responses = dirs.dump().join("responses.jsonl");
    let mut text = std::fs::read_to_string(&responses).unwrap();
    text.push_str("{not json\n");
    std::fs::write(&responses, text).unwrap();
    let again = call("POST", &exports, Some(SECRET_TOKEN));
    assert_eq!(again.status, 202, "{}", again.text);
    let failed_id = again.json["export_id"].as_str().unwrap().to_owned();
    let failed = wait_until_done(&format!("{exports}/{failed_id}"));
    assert_eq!(failed["status"], "failed", "{failed}");

    let health = call("GET", &format!("{}/healthz", server.base), None);
    assert_eq!(health.status, 200, "{}", health.text);
    let metrics = call("GET", &format!("{}/metrics", server.base), None);
    assert_eq!(metrics.status, 200);
    for expected in [
        "batch_export_http_requests_total{method=\"POST\",route=\"/api/v1/data-collection/batches/{batch_id}/export\",status=\"202\"} 2",
        "status=\"401\"} 1",
        "batch_export_jobs{status=\"complete\"} 1",
        "batch_export_jobs{status=\"failed\"} 1",
        "batch_export_jobs{status=\"generating\"} 0",
        "batch_export_build_seconds_count 2",
        "batch_export_builds_total{outcome=\"failed\"} 1",
    ] {
        assert!(metrics.text.contains(expected), "{expected} in\n{}", metrics.text);
    }
    let bytes = download.bytes.len();
    assert!(
        metrics
            .text
            .contains(&format!("batch_export_archive_bytes_total {bytes}")),
        "{}",
        metrics.text
    );

    let lines = server.stop();
    let log = lines.join("\n");
    assert_no_secret_in(&log, &[SECRET_TOKEN, WRONG_TOKEN, &signature, query]);
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert!(events.iter().all(Value::is_object));
    let find = |message: &str, id: &str| {
        events
            .iter()
            .find(|e| e["message"] == message && e["export_id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("no {message:?} of {id} in\n{log}"))
    };
    find("job queued", &id);
    find("job started", &id);
    let finished = find("job finished", &id);
    assert_eq!(finished["bytes"].as_u64(), Some(bytes as u64));
    assert!(finished["duration_ms"].is_u64(), "{finished}");
    let failure = find("job failed", &failed_id);
    assert!(
        failure["reason"]
            .as_str()
            .unwrap()
            .contains("responses.jsonl"),
        "{failure}"
    );

    let requests: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "request")
        .collect();
    let post = requests
        .iter()
        .find(|e| e["method"] == "POST" && e["export_id"] == format!("{id:?}"))
        .unwrap_or_else(|| panic!("no POST line naming {id} in\n{log}"));
    assert_eq!(
        post["route"],
        "/api/v1/data-collection/batches/{batch_id}/export"
    );
    assert_eq!(post["status"], 202);
    assert_eq!(post["batch_id"], format!("{BATCH:?}"));
    assert!(post["latency_ms"].is_f64(), "{post}");
    let download_line = requests
        .iter()
        .find(|e| e["route"] == "/api/v1/data-collection/exports/{export_id}/download")
        .unwrap_or_else(|| panic!("no download line in\n{log}"));
    assert_eq!(download_line["status"], 200);
    assert!(requests.iter().any(|e| e["status"] == 401));
    // One line per request: the two POSTs, the polls, the download, the
    // refused and the lowercase-scheme list, health and metrics.
    let posts = requests.iter().filter(|e| e["method"] == "POST").count();
    assert_eq!(posts, 2);
}
