//! S3-compatible object storage (feature `s3`): where a location such as
//! `s3://BUCKET/PREFIX` points ([`S3Location`]), how to reach the server
//! ([`S3Config`]), and the client built from both (the Apache Arrow
//! `object_store` crate's `AmazonS3`: SigV4 signing, multipart uploads,
//! presigned URLs).
//!
//! The library never reads the environment: the binary fills an
//! [`S3Config`] from `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and `AWS_ALLOW_HTTP` with
//! [`S3Config::from_vars`] and passes it in.
//!
//! [`S3Dump`] reads a dump laid out under a prefix: its record files for
//! the dump reader, its upload bytes as a [`BlobSource`](crate::BlobSource).
//!
//! [`S3Objects`] publishes whole objects (multipart uploads completed or
//! aborted), checks and deletes them, and presigns GET links.
//!
//! The client is asynchronous while the engine is not: [`block_on`] runs
//! one request to completion from any thread, inside a tokio runtime or not.

mod dump;
mod objects;

pub use dump::S3Dump;
pub use objects::{part_size_for, PendingUpload, S3Objects, UploadError, MAX_PARTS, MIN_PART_SIZE};

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, RetryConfig};

/// What is wrong with an S3 location or configuration, or what the
/// object store answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// The text is not an `s3://BUCKET[/PREFIX]` URL.
    #[error("not an s3://BUCKET/PREFIX location: {reason}")]
    InvalidLocation {
        /// Why.
        reason: &'static str,
    },
    /// The client could not be built, or a request failed.
    #[error("object storage failed")]
    Store(#[from] object_store::Error),
}

/// A bucket and a key prefix in it, from `s3://BUCKET/PREFIX`.
///
/// The prefix has no leading or trailing `/` and may be empty (the whole
/// bucket); [`S3Location::key`] puts names under it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/`.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX` (a trailing `/` is
    /// ignored). Query strings, fragments, credentials in the URL and
    /// empty path segments are refused.
    pub fn parse(text: &str) -> Result<S3Location, S3Error> {
        let invalid = |reason| S3Error::InvalidLocation { reason };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it does not start with s3://"))?;
        if rest.contains(['?', '#']) {
            return Err(invalid("it has a query or fragment"));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket is empty"));
        }
        if bucket.contains('@') {
            return Err(invalid(
                "credentials belong in AWS_* variables, not the URL",
            ));
        }
        // Bucket names: lowercase letters, digits, dots and hyphens (S3's
        // rules, which every compatible server accepts).
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(invalid("the bucket may hold only a-z, 0-9, '.' and '-'"));
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if !prefix.is_empty() && prefix.split('/').any(|part| part.is_empty()) {
            return Err(invalid("the prefix has an empty segment"));
        }
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(invalid("the prefix has a '.' or '..' segment"));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// True when `text` names an S3 location (starts with `s3://`), so a
    /// flag taking a folder or a location can tell them apart.
    pub fn is_s3_url(text: &str) -> bool {
        text.starts_with("s3://")
    }

    /// The object key of `name` under the prefix (`PREFIX/name`, or
    /// `name` with no prefix). `name` may itself hold `/`.
    pub fn key(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The prefix as an object-store path (for listing under it).
    pub fn prefix_path(&self) -> ObjectPath {
        ObjectPath::from(self.prefix.as_str())
    }
}

impl FromStr for S3Location {
    type Err = S3Error;

    fn from_str(text: &str) -> Result<S3Location, S3Error> {
        S3Location::parse(text)
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// How to reach an S3-compatible server. Every field is optional: with
/// none, AWS itself in `us-east-1` with no credentials.
///
/// Build it with [`S3Config::from_vars`] (the binary passes the
/// environment) or as a literal ending in `..S3Config::default()`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// The server's URL, e.g. `http://127.0.0.1:8333` (`AWS_ENDPOINT_URL`).
    /// None: AWS S3 of the region. Requests use path-style URLs
    /// (`ENDPOINT/BUCKET/KEY`) when an endpoint is set.
    pub endpoint: Option<String>,
    /// The access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// The secret access key (`AWS_SECRET_ACCESS_KEY`); never shown by `Debug`.
    pub secret_access_key: Option<String>,
    /// The region signed into requests (`AWS_REGION`); default `us-east-1`.
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint (`AWS_ALLOW_HTTP=true`), for a test
    /// server on loopback.
    pub allow_http: bool,
    /// How long a failing request is retried (with backoff) before the
    /// error is returned. None: the client's default (3 minutes, at most
    /// 10 retries).
    pub retry_timeout: Option<Duration>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

/// The variables [`S3Config::from_vars`] reads, in the order of its fields.
pub const S3_VARIABLES: [&str; 5] = [
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_ALLOW_HTTP",
];

impl S3Config {
    /// The configuration `lookup` gives for [`S3_VARIABLES`] (the binary
    /// passes `|name| std::env::var(name).ok()`). Empty values count as
    /// unset; `AWS_ALLOW_HTTP` is true for `true` or `1`.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> S3Config {
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        S3Config {
            endpoint: get("AWS_ENDPOINT_URL"),
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            region: get("AWS_REGION"),
            allow_http: get("AWS_ALLOW_HTTP")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            retry_timeout: None,
        }
    }

    /// The region requests are signed for.
    pub fn region_or_default(&self) -> &str {
        self.region.as_deref().unwrap_or("us-east-1")
    }

    /// A client for the bucket of `location`. Builds no connection yet.
    ///
    /// Installs rustls's ring provider as the process default if none is
    /// (TLS of the HTTP client; the crate also uses ring for SigV4).
    pub fn client(&self, location: &S3Location) -> Result<Arc<AmazonS3>, S3Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Streaming a large object can take longer than the default
        // 30 s request timeout; stalls are still caught per read. (The
        // client options carry `allow_http` too: set here, not on the
        // builder, whose options these replace.)
        let options = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(10));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(self.region_or_default())
            .with_client_options(options);
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint.trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(timeout) = self.retry_timeout {
            builder = builder.with_retry(RetryConfig {
                retry_timeout: timeout,
                ..RetryConfig::default()
            });
        }
        Ok(Arc::new(builder.build()?))
    }
}

/// Runs `future` (an object-store request) to completion on this thread.
///
/// Outside a tokio runtime it is driven by a small runtime shared by the
/// process; inside one (an HTTP handler, `spawn_blocking`) a scoped thread
/// drives it, since a runtime cannot block inside another.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = runtime();
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(future);
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("batch-export-s3")
            .enable_all()
            .build()
            .expect("a tokio runtime for object storage can be created")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_print_back() {
        let at = S3Location::parse("s3://exports/team/a/").unwrap();
        assert_eq!(
            (at.bucket.as_str(), at.prefix.as_str()),
            ("exports", "team/a")
        );
        assert_eq!(at.to_string(), "s3://exports/team/a");
        assert_eq!(at.key("x.zip").as_ref(), "team/a/x.zip");
        let bare: S3Location = "s3://b".parse().unwrap();
        assert_eq!(bare.prefix, "");
        assert_eq!(bare.key("x.zip").as_ref(), "x.zip");
        assert_eq!(bare.to_string(), "s3://b");
    }

    #[test]
    fn bad_locations_are_refused() {
        for text in [
            "exports/a",
            "s3://",
            "s3:///a",
            "s3://Upper/a",
            "s3://key:secret@b/a",
            "s3://b/a//c",
            "s3://b/../c",
            "s3://b/a?x=1",
        ] {
            assert!(S3Location::parse(text).is_err(), "{text} accepted");
        }
    }

    #[test]
    fn config_comes_from_the_variables_given_and_hides_the_secret() {
        let vars = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_REGION", ""),
            ("AWS_ALLOW_HTTP", "true"),
        ];
        let config = S3Config::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        });
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(config.secret_access_key.as_deref(), Some("very-secret"));
        assert_eq!(config.region, None, "empty is unset");
        assert_eq!(config.region_or_default(), "us-east-1");
        assert!(config.allow_http);
        assert!(!format!("{config:?}").contains("very-secret"));
        assert!(!S3Config::from_vars(|_| None).allow_http);
        let location = S3Location::parse("s3://b/p").unwrap();
        assert!(config.client(&location).is_ok());
    }
}
