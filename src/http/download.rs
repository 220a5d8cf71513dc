//! Signed downloads: the archive of a complete job, with HTTP ranges.
//!
//! The link's signature is the only credential (no token: links are meant
//! to be handed to a browser or `curl`). Every reason to refuse (bad
//! signature, expired, job gone or not complete) is a 403, so a forger
//! learns nothing about which export ids exist. A single byte range
//! (`bytes=a-b`, `bytes=a-`, `bytes=-n`) is answered with 206; a range
//! past the end with 416; a multi-range request gets the whole file, which
//! RFC 9110 allows.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::routes::{ApiError, QueryPairs};
use super::Service;
use crate::jobs::JobStatus;
use crate::wire::QueryError;

/// The query string of a signed link. Both are optional here so that a
/// link missing one is a 403 like any other bad link; a parameter that is
/// not one of these, or one given twice, is a 400 like on every route.
#[derive(Debug, Default)]
struct LinkQuery {
    expires: Option<String>,
    signature: Option<String>,
}

impl LinkQuery {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<LinkQuery, QueryError> {
        let mut link = LinkQuery::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "expires" => &mut link.expires,
                "signature" => &mut link.signature,
                _ => return Err(QueryError::unknown(&name)),
            };
            if slot.replace(value).is_some() {
                return Err(QueryError::repeated(&name));
            }
        }
        Ok(link)
    }
}

fn forbidden(message: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, message).into_response()
}

pub(super) async fn download(
    State(service): State<Service>,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
    headers: HeaderMap,
) -> Response {
    let (Path(export_id), Query(pairs)) = match (path, query) {
        (Ok(path), Ok(query)) => (path, query),
        (Err(err), _) => return ApiError::from(err).into_response(),
        (_, Err(err)) => return ApiError::from(err).into_response(),
    };
    let link = match LinkQuery::from_pairs(pairs) {
        Ok(link) => link,
        Err(err) => return ApiError::from(err).into_response(),
    };
    const INVALID: &str = "download link invalid";
    let (Some(expires), Some(signature)) = (link.expires, link.signature) else {
        return forbidden(INVALID);
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return forbidden(INVALID);
    };
    if !service.signer.verify(&export_id, expires, &signature) {
        return forbidden(INVALID);
    }
    if service.jobs.clock().now().unix_timestamp() >= expires {
        return forbidden("download link expired; poll the export for a fresh one");
    }
    let jobs = service.jobs.clone();
    let id = export_id.clone();
    let job = match tokio::task::spawn_blocking(move || jobs.find(&id)).await {
        Ok(Ok(Some(job))) if job.status == JobStatus::Complete => job,
        _ => return forbidden(INVALID),
    };
    let path = service.jobs.archive_path(&export_id);
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return forbidden(INVALID);
    };
    let Ok(meta) = file.metadata().await else {
        return forbidden(INVALID);
    };
    let size = meta.len();
    let etag = format!("\"{export_id}\"");

    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_matches(&headers, &etag));
    let (status, start, len) = match range.map(|r| parse_range(r, size)) {
        None | Some(RangeAnswer::Whole) => (StatusCode::OK, 0, size),
        Some(RangeAnswer::Part(start, end)) => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Some(RangeAnswer::Unsatisfiable) => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the archive has {size} bytes"),
            )
            .into_response();
            insert(
                &mut response,
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return response;
        }
    };
    if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
        return forbidden(INVALID);
    }
    let body = Body::from_stream(ReaderStream::new(file.take(len)));
    let mut response = (status, body).into_response();
    insert(&mut response, header::CONTENT_TYPE, "application/zip");
    insert(&mut response, header::CONTENT_LENGTH, &len.to_string());
    insert(&mut response, header::ACCEPT_RANGES, "bytes");
    insert(&mut response, header::ETAG, &etag);
    insert(&mut response, header::CACHE_CONTROL, "private, no-store");
    insert(
        &mut response,
        header::CONTENT_DISPOSITION,
        &format!(
            "attachment; filename=\"{}\"",
            job.file_name().replace(['"', '\\'], "_")
        ),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + len - 1;
        insert(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{end}/{size}"),
        );
    }
    response
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// An `If-Range` naming another version means "send it all": the archive
/// of an export id never changes, so only a foreign ETag or a date fails.
fn if_range_matches(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(value) => value.trim() == etag,
    }
}

/// What to send for a `Range` header.
#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Ignore the header: the whole file.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

fn parse_range(header: &str, size: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeAnswer::Unsatisfiable,
            Ok(n) if size > 0 => Some((size.saturating_sub(n), size - 1)),
            Ok(_) => return RangeAnswer::Unsatisfiable,
            Err(_) => None,
        },
        (false, true) => first.parse::<u64>().ok().map(|a| (a, u64::MAX)),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => Some((a, b)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        // A syntactically invalid range is ignored, as RFC 9110 says.
        None => RangeAnswer::Whole,
        Some((start, _)) if start >= size => RangeAnswer::Unsatisfiable,
        Some((start, end)) => RangeAnswer::Part(start, end.min(size - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
    }
}
