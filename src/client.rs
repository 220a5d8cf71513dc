//! The client of the export-job service: request an export, poll it until
//! it is complete, download the archive from its signed link.
//!
//! [`Client::export`] does the whole flow and reports each step to a
//! callback ([`ClientEvent`]), from which the binary draws its spinner and
//! progress bar. It:
//!
//! - accepts `200` (a recent export is ready) or `202` (generating) from
//!   the POST, so a server that always answers `202` works too;
//! - polls every [`ClientConfig::poll_interval`] until the job completes,
//!   fails, or [`ClientConfig::timeout`] passes;
//! - gives every request its own deadline ([`ClientConfig::request_timeout`]),
//!   and never waits past [`ClientConfig::timeout`] for the export, even
//!   when a server accepts a request and never answers it;
//! - downloads into a temporary file beside the destination and renames it
//!   into place only when every byte has arrived and the file ends with
//!   ZIP end records (the `download` module has the details); an existing
//!   folder as the output is refused before anything is requested;
//! - sends the token to the API only, never to the download link;
//! - talks HTTPS only, except plain HTTP to a loopback address;
//! - resumes an interrupted download with a `Range` request, and re-polls
//!   for a fresh link when the one in hand was refused (expired).

mod download;
mod errors;

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use self::errors::error_message;
use crate::wire::{self, ExportQuery, ExportState, StatusBody};

/// How often the same step may fail in a row before the client gives up:
/// resuming a broken download, or fetching a fresh link for a refused one.
const RETRIES: u32 = 5;

/// Everything that can stop an export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A URL is neither HTTPS nor plain HTTP to a loopback address.
    #[error("refusing {url}: only https:// (or http:// to a loopback address) is allowed")]
    InsecureUrl {
        /// The URL refused.
        url: String,
    },
    /// The server did not accept the token.
    #[error("the server refused the token (401): check PROLIFIC_TOKEN")]
    Unauthorized,
    /// The batch does not exist, or the token may not see it.
    #[error("batch {batch_id} not found, or the token has no access to it (404)")]
    BatchNotFound {
        /// The batch asked for.
        batch_id: String,
    },
    /// The server built the export and failed.
    #[error("export {export_id} failed: {reason}")]
    ExportFailed {
        /// The job.
        export_id: String,
        /// The server's reason.
        reason: String,
    },
    /// The export was not ready in time (or the request got no answer).
    #[error("{} after {}s; giving up", waiting_for(export_id), waited.as_secs())]
    Timeout {
        /// The job; empty when the request itself went unanswered.
        export_id: String,
        /// How long the client waited.
        waited: Duration,
    },
    /// Download links kept being refused, even fresh ones.
    #[error("the download link was refused {RETRIES} times in a row, even fresh ones: {message}")]
    LinkRefused {
        /// The server's last message.
        message: String,
    },
    /// The download broke off too many times in a row.
    #[error("the download kept breaking off: {message}")]
    DownloadBroken {
        /// The last error.
        message: String,
    },
    /// The batch has as many exports as the server allows (409, or 429
    /// from a server that uses it): one must be deleted first.
    #[error("batch {batch_id} has as many exports as the server allows ({status}: {message}); delete one of its exports (DELETE {path}/<export_id>) to free a slot, then try again")]
    TooManyExports {
        /// The batch.
        batch_id: String,
        /// The HTTP status, 409 or 429.
        status: u16,
        /// The path of the batch's exports, where the DELETE goes.
        path: String,
        /// The server's error message.
        message: String,
    },
    /// Any other answer the client cannot act on.
    #[error("{method} {url}: {status}: {message}")]
    Server {
        /// The request's method.
        method: &'static str,
        /// The URL without its query string (which may hold a signature).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message, or the body's start.
        message: String,
    },
    /// The server could not be reached, or answered something unreadable.
    #[error("{url}: {message}")]
    Transport {
        /// The URL without its query string.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The download is not a whole ZIP archive: cut short, or something
    /// else entirely.
    #[error("the download is not a whole ZIP archive: {message}")]
    NotAnArchive {
        /// What is wrong with it.
        message: String,
    },
    /// The output path cannot take the archive; found before anything
    /// was requested.
    #[error("cannot write the archive to {path}: {reason}")]
    BadOutput {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Writing the archive failed.
    #[error("{path}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Settings of a [`Client`]. Every setter documents its default.
#[derive(Clone)]
pub struct ClientConfig {
    api_url: String,
    token: String,
    poll_interval: Duration,
    timeout: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs and panic messages.
        f.debug_struct("ClientConfig")
            .field("api_url", &shown_text(&self.api_url))
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A client of the service at `api_url` (`https://host`, without the
    /// `/api/v1/...` part) authenticating with `token`.
    pub fn new(api_url: impl Into<String>, token: impl Into<String>) -> ClientConfig {
        ClientConfig {
            api_url: api_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            poll_interval: Duration::from_secs(3),
            timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Time between status polls. Default 3 seconds.
    pub fn poll_interval(mut self, interval: Duration) -> ClientConfig {
        self.poll_interval = interval;
        self
    }

    /// How long to wait for the export to complete, from the request to
    /// the poll that finds it complete (the download is not counted: it
    /// only may not stall). Default 1 hour.
    pub fn timeout(mut self, timeout: Duration) -> ClientConfig {
        self.timeout = timeout;
        self
    }

    /// The deadline of each request: an API request must be answered
    /// within it, a download must connect and then receive something
    /// within it at every read. Default 30 seconds.
    pub fn request_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.request_timeout = timeout;
        self
    }
}

/// One export to fetch.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// The batch.
    pub batch_id: String,
    /// What to ask for: the filter (empty for all responses).
    pub query: ExportQuery,
    /// Where to write the archive. Default: the server's file name
    /// (`<batch-id>-export-<YYYYMMDD-HHMMSS>.zip`) in [`Self::dir`].
    pub output: Option<PathBuf>,
    /// The folder of the default file name. Default: the current folder.
    pub dir: Option<PathBuf>,
}

/// A step of [`Client::export`], for progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server accepted the request.
    Requested {
        /// The job.
        export_id: String,
    },
    /// A poll found the job still generating.
    Generating {
        /// Time since the request.
        elapsed: Duration,
    },
    /// A download link arrived (from the POST or a poll).
    LinkReady {
        /// Its expiry, as the server states it.
        expires_at: String,
    },
    /// Bytes are arriving: `done` of `total` (with what was resumed).
    Downloading {
        /// Bytes in the file so far.
        done: u64,
        /// The archive's size.
        total: u64,
    },
    /// A broken download continues from `offset`.
    Resuming {
        /// Bytes already kept.
        offset: u64,
    },
    /// The link was refused (expired): fetching a fresh one.
    RefreshingLink,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the archive is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The export job.
    pub export_id: String,
}

/// The client: cheap to build, holds a connection pool for the API.
pub struct Client {
    config: ClientConfig,
    agent: ureq::Agent,
    // Keeps no connection idle: see `download`.
    download_agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client; refuses an API URL that would send the token in clear
    /// over the network.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        check_url(&config.api_url)?;
        let connect = config.request_timeout.min(Duration::from_secs(15));
        // Never follow a redirect: it could lead the token (API) or the
        // download somewhere this client has not checked. API requests get
        // their deadline each (a pooled connection has no read timeout).
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(connect)
            .redirects(0)
            .build();
        let download_agent = ureq::AgentBuilder::new()
            .timeout_connect(connect)
            .timeout_read(config.request_timeout)
            .timeout_write(config.request_timeout)
            .max_idle_connections(0)
            .redirects(0)
            .build();
        Ok(Client {
            config,
            agent,
            download_agent,
        })
    }

    /// Requests the export, waits for it and downloads it.
    pub fn export(
        &self,
        request: &ExportRequest,
        progress: &mut dyn FnMut(ClientEvent),
    ) -> Result<Downloaded, ClientError> {
        download::check_output(request)?;
        let started = Instant::now();
        let deadline = started + self.config.timeout;
        let timed_out = |err: ClientError, export_id: &str| match err {
            ClientError::Transport { .. } if Instant::now() >= deadline => ClientError::Timeout {
                export_id: export_id.to_owned(),
                waited: started.elapsed(),
            },
            err => err,
        };
        let mut status = self.post(request, deadline).map_err(|e| timed_out(e, ""))?;
        let export_id = status.export_id.clone().unwrap_or_default();
        progress(ClientEvent::Requested {
            export_id: export_id.clone(),
        });
        loop {
            match status.state {
                ExportState::Complete { .. } => break,
                ExportState::Failed { error } => {
                    return Err(ClientError::ExportFailed {
                        export_id,
                        reason: error,
                    })
                }
                // Only a complete answer can do without its job's id.
                ExportState::Generating if export_id.is_empty() => {
                    return Err(self.protocol("the answer has no export_id"))
                }
                ExportState::Generating => {}
            }
            let waited = started.elapsed();
            if waited >= self.config.timeout {
                return Err(ClientError::Timeout { export_id, waited });
            }
            progress(ClientEvent::Generating { elapsed: waited });
            std::thread::sleep(self.config.poll_interval.min(self.config.timeout - waited));
            status = self
                .poll(&request.batch_id, &export_id, Some(deadline))
                .map_err(|e| timed_out(e, &export_id))?;
        }
        self.download(request, &export_id, status, progress)
    }

    /// The API URL of `path` (one of [`wire`]'s paths).
    fn api(&self, path: &str) -> Result<url::Url, ClientError> {
        let text = format!("{}{path}", self.config.api_url);
        url::Url::parse(&text).map_err(|e| ClientError::Transport {
            url: shown_text(&text),
            message: e.to_string(),
        })
    }

    fn post(&self, request: &ExportRequest, deadline: Instant) -> Result<StatusBody, ClientError> {
        let mut url = self.api(&wire::exports_path(&request.batch_id))?;
        let mut pairs = request.query.pairs().peekable();
        if pairs.peek().is_some() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        self.call_api("POST", url, &request.batch_id, Some(deadline))
    }

    fn poll(
        &self,
        batch_id: &str,
        export_id: &str,
        deadline: Option<Instant>,
    ) -> Result<StatusBody, ClientError> {
        let url = self.api(&wire::export_path(batch_id, export_id))?;
        self.call_api("GET", url, batch_id, deadline)
    }

    fn call_api(
        &self,
        method: &'static str,
        url: url::Url,
        batch_id: &str,
        deadline: Option<Instant>,
    ) -> Result<StatusBody, ClientError> {
        let mut limit = self.config.request_timeout;
        if let Some(deadline) = deadline {
            limit = limit.min(deadline.saturating_duration_since(Instant::now()));
        }
        if limit.is_zero() {
            return Err(ClientError::Transport {
                url: shown(&url),
                message: "no time left for the request".to_owned(),
            });
        }
        let answer = self
            .agent
            .request_url(method, &url)
            .timeout(limit)
            .set("Authorization", &format!("Token {}", self.config.token))
            .call();
        let response = match answer {
            Ok(response) => response,
            Err(ureq::Error::Status(401, _)) => return Err(ClientError::Unauthorized),
            Err(ureq::Error::Status(404, _)) => {
                return Err(ClientError::BatchNotFound {
                    batch_id: batch_id.to_owned(),
                })
            }
            // Only a POST creates jobs, so only its 409 or 429 is the cap.
            Err(ureq::Error::Status(status @ (409 | 429), response)) if method == "POST" => {
                return Err(ClientError::TooManyExports {
                    batch_id: batch_id.to_owned(),
                    status,
                    path: wire::exports_path(batch_id),
                    message: error_message(response),
                })
            }
            Err(err) => return Err(failure(method, &url, err)),
        };
        serde_json::from_reader(response.into_reader()).map_err(|e| ClientError::Transport {
            url: shown(&url),
            message: format!("unreadable answer: {e}"),
        })
    }

    fn protocol(&self, message: &str) -> ClientError {
        ClientError::Transport {
            url: shown_text(&self.config.api_url),
            message: message.to_owned(),
        }
    }
}

/// HTTPS, or plain HTTP to 127.0.0.0/8, `::1` or `localhost`.
fn check_url(text: &str) -> Result<(), ClientError> {
    let insecure = || ClientError::InsecureUrl {
        url: shown_text(text),
    };
    let url = url::Url::parse(text).map_err(|_| insecure())?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(insecure()),
    }
}

/// A URL as messages show it: without its query string (which may hold
/// a signature) and without `user:password@`.
fn shown(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    // Only fails for URLs that cannot have credentials in the first place.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// [`shown`] of a URL given as text, also when it does not parse.
fn shown_text(text: &str) -> String {
    if let Ok(url) = url::Url::parse(text) {
        return shown(&url);
    }
    let text = text.split(['?', '#']).next().unwrap_or_default();
    match text.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => text.to_owned(),
    }
}

/// What a [`ClientError::Timeout`] was waiting for.
fn waiting_for(export_id: &str) -> String {
    if export_id.is_empty() {
        "the export request got no answer".to_owned()
    } else {
        format!("export {export_id} still generating")
    }
}

fn failure(method: &'static str, url: &url::Url, err: ureq::Error) -> ClientError {
    match err {
        ureq::Error::Status(status, response) => ClientError::Server {
            method,
            url: shown(url),
            status,
            message: error_message(response),
        },
        ureq::Error::Transport(transport) => ClientError::Transport {
            url: shown(url),
            message: transport.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(check_url("https://exports.example.org").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        assert!(check_url("http://[::1]:8080/x").is_ok());
        assert!(check_url("http://localhost:1").is_ok());
        assert!(check_url("http://exports.example.org").is_err());
        assert!(check_url("http://10.0.0.1").is_err());
        assert!(check_url("ftp://127.0.0.1").is_err());
    }

    #[test]
    fn credentials_in_urls_stay_out_of_messages() {
        for text in [
            "http://user:pw@exports.example.org/x?signature=s3cret",
            "ftp://user:pw@127.0.0.1",
            "https://user:pw@exa mple/x?signature=s3cret",
        ] {
            let shown = shown_text(text);
            assert!(!shown.contains("pw") && !shown.contains("user"), "{shown}");
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        let err = check_url("http://user:pw@exports.example.org").unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing http://exports.example.org/: only https:// (or http:// to a loopback address) is allowed"
        );
        let config = ClientConfig::new("https://user:pw@x", "t");
        assert!(!format!("{config:?}").contains("pw"));
    }

    #[test]
    fn token_stays_out_of_debug() {
        let config = ClientConfig::new("https://x", "secret-token");
        assert!(!format!("{config:?}").contains("secret-token"));
    }
}
