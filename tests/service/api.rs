//! Authentication and the error answers of the API.

use super::*;

#[test]
fn a_missing_or_unknown_token_is_401() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let url = server.export_url(BATCH);
    for token in [None, Some("nope")] {
        let answer = call("POST", &url, token);
        assert_eq!(answer.status, 401);
        assert!(answer.json["error"].is_string(), "{}", answer.text);
    }
    let malformed = call_with(
        "GET",
        &url,
        None,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(malformed.status, 401);
    assert!(server.jobs.list(BATCH).unwrap().is_empty());
}

#[test]
fn another_workspace_sees_the_batch_as_missing() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (id, _) = server.export("");
    let missing = call("POST", &server.export_url("batch-nope"), Some(TOKEN));
    assert_eq!(missing.status, 404);
    let job_url = format!("{}/{id}", server.export_url(BATCH));
    for (method, url) in [
        ("POST", server.export_url(BATCH)),
        ("GET", server.export_url(BATCH)),
        ("GET", job_url.clone()),
        ("DELETE", job_url),
    ] {
        let hidden = call(method, &url, Some(OTHER_TOKEN));
        assert_eq!(hidden.status, 404, "{method} {url}");
        assert_eq!(hidden.bytes, missing.bytes, "{method} {url}");
        assert_eq!(
            hidden.header("content-type"),
            missing.header("content-type")
        );
    }
    assert_eq!(server.jobs.list(BATCH).unwrap().len(), 1);
}

#[test]
fn an_unknown_export_of_a_visible_batch_is_404() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let answer = server.status("00000000-0000-4000-8000-000000000000");
    assert_eq!(answer.status, 404);
    assert!(answer.json["error"].as_str().unwrap().contains("not found"));
}
