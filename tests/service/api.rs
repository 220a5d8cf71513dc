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

#[test]
fn a_401_names_the_token_scheme_and_the_scheme_ignores_case() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let url = server.export_url(BATCH);
    let refused = call("GET", &url, Some("nope"));
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Token"));
    for scheme in ["token", "TOKEN"] {
        let header = format!("{scheme} {TOKEN}");
        let answer = call_with("GET", &url, None, &[("Authorization", &header)]);
        assert_eq!(answer.status, 200, "{scheme}: {}", answer.text);
    }
}

/// Asserts a JSON 400 naming `parameter`.
fn assert_bad_parameter(answer: &Answer, parameter: &str) {
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json["parameter"], parameter, "{}", answer.text);
    assert!(answer.json["error"].is_string(), "{}", answer.text);
}

#[test]
fn bad_query_strings_are_json_400s_naming_the_parameter() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    assert_bad_parameter(&server.post("?bogus=1"), "bogus");
    assert_bad_parameter(&server.post("?study_id=a&study_id=b"), "study_id");
    assert_bad_parameter(&server.post("?from=yesterday"), "from");
    let reversed = "?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z";
    assert_bad_parameter(&server.post(reversed), "to");
    // An empty window (to equal to from, in another offset) is refused too.
    assert_bad_parameter(
        &server.post("?from=2024-05-01T02:00:00%2B02:00&to=2024-05-01T00:00:00Z"),
        "to",
    );
    assert!(
        server.jobs.list(BATCH).unwrap().is_empty(),
        "no job took a slot"
    );

    let list = format!("{}?bogus=1", server.export_url(BATCH));
    assert_bad_parameter(&call("GET", &list, Some(TOKEN)), "bogus");
    let (id, _) = server.export("");
    let job = format!("{}/{id}?x=1", server.export_url(BATCH));
    assert_bad_parameter(&call("GET", &job, Some(TOKEN)), "x");
    assert_bad_parameter(&call("DELETE", &job, Some(TOKEN)), "x");

    let link = server.status(&id).json["url"].as_str().unwrap().to_owned();
    let expires = link
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let doubled = format!("{link}&expires={expires}");
    assert_bad_parameter(&call("GET", &doubled, None), "expires");
    assert_bad_parameter(&call("GET", &format!("{link}&bogus=1"), None), "bogus");
}

#[test]
fn every_4xx_is_json() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let url = server.export_url(BATCH);
    for answer in [
        call("PUT", &url, Some(TOKEN)),
        call("GET", &format!("{}/nowhere", server.base), Some(TOKEN)),
        call("POST", &format!("{url}?from=%ZZ"), Some(TOKEN)),
    ] {
        assert!((400..500).contains(&answer.status), "{}", answer.status);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(answer.json["error"].is_string(), "{}", answer.text);
    }
}
