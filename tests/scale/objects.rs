//! The test SeaweedFS itself: it speaks S3 and checks SigV4 signatures
//! (the reason it was chosen over servers that accept anything), driven
//! with curl's `--aws-sigv4`.

use super::servers::{self, s3};

#[test]
fn the_test_s3_server_checks_signatures() {
    let Some(weed) = servers::seaweed() else {
        return;
    };
    let bucket = format!("{}/smoke-{}", weed.endpoint, std::process::id());
    let (status, body) = s3("PUT", &bucket, None, true);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let object = format!("{bucket}/hello.txt");
    assert_eq!(s3("PUT", &object, Some(b"hello"), true).0, 200);
    assert_eq!(s3("GET", &object, None, true), (200, b"hello".to_vec()));
    assert_eq!(
        s3("GET", &object, None, false).0,
        403,
        "unsigned is refused"
    );
    assert!(weed.pid() > 0);
}
