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
//! - downloads into a temporary file beside the destination and renames it
//!   into place only when every byte has arrived;
//! - sends the token to the API only, never to the download link;
//! - talks HTTPS only, except plain HTTP to a loopback address;
//! - resumes an interrupted download with a `Range` request, and re-polls
//!   for a fresh link when the one in hand was refused (expired).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::wire::{self, ErrorBody, ExportQuery, ExportState, StatusBody};

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
    /// The export was not ready in time.
    #[error("export {export_id} still generating after {}s; giving up", waited.as_secs())]
    Timeout {
        /// The job.
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
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs and panic messages.
        f.debug_struct("ClientConfig")
            .field("api_url", &self.api_url)
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
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
        }
    }

    /// Time between status polls. Default 3 seconds.
    pub fn poll_interval(mut self, interval: Duration) -> ClientConfig {
        self.poll_interval = interval;
        self
    }

    /// How long to wait for the export to complete. Default 1 hour.
    pub fn timeout(mut self, timeout: Duration) -> ClientConfig {
        self.timeout = timeout;
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

/// The client: cheap to build, holds a connection pool.
pub struct Client {
    config: ClientConfig,
    agent: ureq::Agent,
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
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            // Never follow a redirect: it could lead the token (API) or
            // the download somewhere this client has not checked.
            .redirects(0)
            .build();
        Ok(Client { config, agent })
    }

    /// Requests the export, waits for it and downloads it.
    pub fn export(
        &self,
        request: &ExportRequest,
        progress: &mut dyn FnMut(ClientEvent),
    ) -> Result<Downloaded, ClientError> {
        let started = Instant::now();
        let mut status = self.post(request)?;
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
            status = self.poll(&request.batch_id, &export_id)?;
        }
        self.download(request, &export_id, status, progress)
    }

    /// The API URL of `path` (one of [`wire`]'s paths).
    fn api(&self, path: &str) -> Result<url::Url, ClientError> {
        let text = format!("{}{path}", self.config.api_url);
        url::Url::parse(&text).map_err(|e| ClientError::Transport {
            url: text,
            message: e.to_string(),
        })
    }

    fn post(&self, request: &ExportRequest) -> Result<StatusBody, ClientError> {
        let mut url = self.api(&wire::exports_path(&request.batch_id))?;
        let mut pairs = request.query.pairs().peekable();
        if pairs.peek().is_some() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        self.call_api("POST", url, &request.batch_id)
    }

    fn poll(&self, batch_id: &str, export_id: &str) -> Result<StatusBody, ClientError> {
        let url = self.api(&wire::export_path(batch_id, export_id))?;
        self.call_api("GET", url, batch_id)
    }

    fn call_api(
        &self,
        method: &'static str,
        url: url::Url,
        batch_id: &str,
    ) -> Result<StatusBody, ClientError> {
        let answer = self
            .agent
            .request_url(method, &url)
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
            Err(err) => return Err(failure(method, &url, err)),
        };
        serde_json::from_reader(response.into_reader()).map_err(|e| ClientError::Transport {
            url: bare(&url),
            message: format!("unreadable answer: {e}"),
        })
    }

    fn protocol(&self, message: &str) -> ClientError {
        ClientError::Transport {
            url: self.config.api_url.clone(),
            message: message.to_owned(),
        }
    }

    /// Downloads from the complete `status`'s link into a temporary file,
    /// resuming and refreshing the link as needed, then renames it.
    fn download(
        &self,
        request: &ExportRequest,
        export_id: &str,
        mut status: StatusBody,
        progress: &mut dyn FnMut(ClientEvent),
    ) -> Result<Downloaded, ClientError> {
        let dir = match (&request.output, &request.dir) {
            (Some(output), _) => parent_of(output),
            (None, Some(dir)) => dir.clone(),
            (None, None) => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".batch-export-")
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|e| ClientError::Io {
                path: dir.clone(),
                source: e,
            })?;
        let mut file = temp.as_file();
        let mut have = 0u64;
        let (mut refused, mut broken) = (0u32, 0u32);
        let mut server_name = None;
        loop {
            let ExportState::Complete {
                url: link,
                expires_at,
            } = &status.state
            else {
                return Err(self.protocol("a complete export went back to generating"));
            };
            let link = link.clone();
            progress(ClientEvent::LinkReady {
                expires_at: expires_at.clone(),
            });
            let url = url::Url::parse(&link).map_err(|e| ClientError::Transport {
                url: link.clone(),
                message: e.to_string(),
            })?;
            check_url(url.as_str())?;
            // No Authorization header here: the signature is the credential.
            let mut get = self.agent.request_url("GET", &url);
            if have > 0 {
                get = get.set("Range", &format!("bytes={have}-"));
            }
            let response = match get.call() {
                Ok(response) => response,
                Err(ureq::Error::Status(403, response)) => {
                    refused += 1;
                    if refused >= RETRIES {
                        return Err(ClientError::LinkRefused {
                            message: error_message(response),
                        });
                    }
                    progress(ClientEvent::RefreshingLink);
                    status = self.fresh_link(request, export_id)?;
                    continue;
                }
                Err(ureq::Error::Status(416, _)) if have > 0 => {
                    // What we hold does not fit the archive: start again.
                    have = truncate(file, temp.path())?;
                    continue;
                }
                Err(err @ ureq::Error::Status(..)) => return Err(failure("GET", &url, err)),
                Err(err) => {
                    broken += 1;
                    if broken >= RETRIES {
                        return Err(failure("GET", &url, err));
                    }
                    continue;
                }
            };
            if response.status() == 200 && have > 0 {
                // The server sent the whole file after all.
                have = truncate(file, temp.path())?;
            } else if response.status() == 206 && range_start(&response) != Some(have) {
                return Err(self.protocol("the server answered another range than asked"));
            }
            server_name = content_disposition_name(&response).or(server_name);
            let remaining: Option<u64> = response
                .header("Content-Length")
                .and_then(|v| v.parse().ok());
            let total = remaining.map(|r| r + have);
            let mut body = response.into_reader();
            let before = have;
            let copied = copy(&mut body, &mut file, &mut have, total, progress);
            if have > before {
                // Progress was made: only a run of fruitless attempts ends it.
                (refused, broken) = (0, 0);
            }
            match copied {
                Ok(()) if total.is_none_or(|t| have == t) => break,
                Ok(()) | Err(CopyError::Read(_)) => {
                    broken += 1;
                    if broken >= RETRIES {
                        let cause = match copied {
                            Err(CopyError::Read(e)) => e.to_string(),
                            _ => "the connection closed early".to_owned(),
                        };
                        let of = total.map_or(String::new(), |t| format!(" of {t}"));
                        return Err(ClientError::DownloadBroken {
                            message: format!("{cause} ({have}{of} bytes arrived)"),
                        });
                    }
                    progress(ClientEvent::Resuming { offset: have });
                }
                Err(CopyError::Write(source)) => {
                    return Err(ClientError::Io {
                        path: temp.path().to_path_buf(),
                        source,
                    })
                }
            }
        }
        file.sync_all().map_err(|e| ClientError::Io {
            path: temp.path().to_path_buf(),
            source: e,
        })?;
        // Temporary files are created owner-only; the archive is an
        // ordinary document, readable like any other download.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
        }
        let path = match &request.output {
            Some(output) => output.clone(),
            None => dir.join(server_name.unwrap_or_else(|| fallback_name(&request.batch_id))),
        };
        temp.persist(&path).map_err(|e| ClientError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(Downloaded {
            path,
            bytes: have,
            export_id: export_id.to_owned(),
        })
    }

    /// A fresh link: a poll of the job, or a new request if the job went.
    fn fresh_link(
        &self,
        request: &ExportRequest,
        export_id: &str,
    ) -> Result<StatusBody, ClientError> {
        let status = self.poll(&request.batch_id, export_id)?;
        match status.state {
            ExportState::Complete { .. } => Ok(status),
            ExportState::Failed { error } => Err(ClientError::ExportFailed {
                export_id: export_id.to_owned(),
                reason: error,
            }),
            ExportState::Generating => {
                Err(self.protocol("a complete export went back to generating"))
            }
        }
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies the body to the file, counting into `have` and reporting.
fn copy(
    body: &mut dyn Read,
    file: &mut &File,
    have: &mut u64,
    total: Option<u64>,
    progress: &mut dyn FnMut(ClientEvent),
) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        file.write_all(&buf[..n]).map_err(CopyError::Write)?;
        *have += n as u64;
        progress(ClientEvent::Downloading {
            done: *have,
            total: total.unwrap_or(*have),
        });
    }
}

fn truncate(mut file: &File, path: &Path) -> Result<u64, ClientError> {
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .map_err(|e| ClientError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    Ok(0)
}

/// HTTPS, or plain HTTP to 127.0.0.0/8, `::1` or `localhost`.
fn check_url(text: &str) -> Result<(), ClientError> {
    let insecure = || ClientError::InsecureUrl {
        url: text.to_owned(),
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

/// A URL without its query string: signatures stay out of messages.
fn bare(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

fn failure(method: &'static str, url: &url::Url, err: ureq::Error) -> ClientError {
    match err {
        ureq::Error::Status(status, response) => ClientError::Server {
            method,
            url: bare(url),
            status,
            message: error_message(response),
        },
        ureq::Error::Transport(transport) => ClientError::Transport {
            url: bare(url),
            message: transport.to_string(),
        },
    }
}

/// The `error` of a JSON error body, or the body's first 200 characters.
fn error_message(response: ureq::Response) -> String {
    let text = response.into_string().unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => body.error,
        Err(_) => text.chars().take(200).collect(),
    }
}

fn range_start(response: &ureq::Response) -> Option<u64> {
    let value = response.header("Content-Range")?.strip_prefix("bytes ")?;
    value.split('-').next()?.trim().parse().ok()
}

/// The server's file name, made safe for this file system; only `.zip`
/// names are taken, so a hostile server cannot pick the extension.
fn content_disposition_name(response: &ureq::Response) -> Option<String> {
    let value = response.header("Content-Disposition")?;
    let name = value
        .split("filename=")
        .nth(1)?
        .split(';')
        .next()?
        .trim()
        .trim_matches('"');
    let safe = crate::naming::safe_file_name(name);
    (safe.ends_with(".zip") && !safe.starts_with('.')).then_some(safe)
}

/// [`wire::archive_file_name`] at the current time, for a server that
/// names no file.
fn fallback_name(batch_id: &str) -> String {
    wire::archive_file_name(batch_id, time::OffsetDateTime::now_utc())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
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
    fn token_stays_out_of_debug() {
        let config = ClientConfig::new("https://x", "secret-token");
        assert!(!format!("{config:?}").contains("secret-token"));
    }
}
