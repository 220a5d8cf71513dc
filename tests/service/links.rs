//! Signed download links: headers, ranges, tampering, expiry, and `curl`.

use std::fs;
use std::process::Command;
use std::time::Duration;

use super::*;

/// A complete export: its id, link and archive bytes.
fn complete(server: &TestServer) -> (String, String, Vec<u8>) {
    let (id, status) = server.export("");
    let url = status["url"].as_str().unwrap().to_owned();
    let bytes = fs::read(server.archive(&id)).unwrap();
    (id, url, bytes)
}

#[test]
fn the_link_serves_the_archive_with_its_headers() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (_, url, bytes) = complete(&server);
    let answer = call("GET", &url, None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.bytes, bytes);
    assert_eq!(
        answer.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(answer.header("accept-ranges"), Some("bytes"));
    assert_eq!(answer.header("content-type"), Some("application/zip"));
    assert_eq!(
        answer.header("content-disposition"),
        Some("attachment; filename=\"batch-7f3a-export-20240601-120000.zip\"")
    );
}

#[test]
fn ranges_return_exactly_the_bytes_asked_for() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (_, url, bytes) = complete(&server);
    let len = bytes.len();
    let cases = [
        ("bytes=10-99", 10, 99),
        ("bytes=100-", 100, len - 1),
        ("bytes=-7", len - 7, len - 1),
        (&*format!("bytes=5-{}", len + 1000), 5, len - 1),
    ];
    for (range, first, last) in cases {
        let answer = call_with("GET", &url, None, &[("Range", range)]);
        assert_eq!(answer.status, 206, "{range}");
        assert_eq!(answer.bytes, bytes[first..=last], "{range}");
        let content_range = format!("bytes {first}-{last}/{len}");
        assert_eq!(answer.header("content-range"), Some(content_range.as_str()));
        assert_eq!(
            answer.header("content-length"),
            Some((last - first + 1).to_string().as_str())
        );
    }
    let past = call_with("GET", &url, None, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
}

#[test]
fn tampered_or_expired_links_are_403() {
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (id, url, _) = complete(&server);
    let (_, other_url, _) = {
        // A second, real export whose id we can swap in.
        let (other, status) = server.export("?study_id=study-1");
        (other, status["url"].as_str().unwrap().to_owned(), ())
    };
    let query = url.split_once('?').unwrap().1.to_owned();
    let signature = query.split("signature=").nth(1).unwrap();
    let expires: i64 = query
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let flipped = format!(
        "{}{}",
        &signature[..signature.len() - 1],
        if signature.ends_with('0') { '1' } else { '0' }
    );
    let other_id = other_url
        .split("/exports/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let tampered = [
        url.replace(signature, &flipped),
        url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        ),
        url.replace(&id, other_id),
        url.split('?').next().unwrap().to_owned(),
        url.replace(&format!("signature={signature}"), "signature="),
    ];
    for bad in tampered {
        let answer = call("GET", &bad, None);
        assert_eq!(answer.status, 403, "{bad}");
        assert!(answer.json["error"].is_string());
    }
    assert_eq!(call("GET", &url, None).status, 200);

    server.clock.advance(Duration::from_secs(3600));
    let expired = call("GET", &url, None);
    assert_eq!(expired.status, 403);
    assert!(expired.json["error"].as_str().unwrap().contains("expired"));

    // Every poll hands out a fresh link, valid from now.
    let fresh = server.status(&id).json;
    assert_eq!(fresh["expires_at"], "2024-06-01T14:00:00Z");
    assert_eq!(
        call("GET", fresh["url"].as_str().unwrap(), None).status,
        200
    );
}

/// `curl`, which CI installs; elsewhere a missing curl skips the test.
fn curl() -> Option<Command> {
    match Command::new("curl").arg("--version").output() {
        Ok(out) if out.status.success() => Some(Command::new("curl")),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("curl is missing; .ci/install.sh installs it")
        }
        _ => {
            eprintln!("skipped: curl is not installed");
            None
        }
    }
}

#[test]
fn curl_downloads_the_signed_link_and_ranges() {
    let Some(_) = curl() else { return };
    let dirs = Dirs::new();
    let server = TestServer::start(&dirs);
    let (_, url, bytes) = complete(&server);
    let out = dirs.state.path().join("curl.zip");
    let status = curl()
        .unwrap()
        .args(["-sSf", "-o"])
        .arg(&out)
        .arg(&url)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(&out).unwrap(), bytes);

    let part = dirs.state.path().join("part.bin");
    let status = curl()
        .unwrap()
        .args(["-sSf", "-r", "20-119", "-o"])
        .arg(&part)
        .arg(&url)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(&part).unwrap(), bytes[20..120]);

    // curl's own resume: -C - continues a partial file with a range.
    let resumed = dirs.state.path().join("resumed.zip");
    fs::write(&resumed, &bytes[..1000]).unwrap();
    let status = curl()
        .unwrap()
        .args(["-sSf", "-C", "-", "-o"])
        .arg(&resumed)
        .arg(&url)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(&resumed).unwrap(), bytes);

    let tampered = url.replace("expires=", "expires=1");
    let code = curl()
        .unwrap()
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(&tampered)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&code.stdout), "403");
}
