//! The client's download: the archive from its signed link into a
//! temporary file beside the destination, resumed and refreshed as
//! needed, checked whole, and only then renamed into place.
//!
//! Every attempt opens a new connection (the download agent keeps none
//! idle), so its connect and read deadlines always apply: `ureq` clears
//! the read deadline of a connection it takes back into its pool. The file
//! is accepted only when every byte of a length the server stated has
//! arrived and, in every case, it ends with ZIP end records that place a
//! central directory inside it (`verify::check_end_records`): a body cut
//! short without a length, or no ZIP at all, fails. On any failure the
//! temporary file is removed, so nothing is left at the output path.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{
    check_url, error_message, failure, shown_text, Client, ClientError, ClientEvent, Downloaded,
    ExportRequest, RETRIES,
};
use crate::wire::{self, ExportState, StatusBody};

impl Client {
    /// Downloads from the complete `status`'s link into a temporary file,
    /// resuming and refreshing the link as needed, then renames it.
    pub(super) fn download(
        &self,
        request: &ExportRequest,
        export_id: &str,
        mut status: StatusBody,
        progress: &mut dyn FnMut(ClientEvent),
    ) -> Result<Downloaded, ClientError> {
        let dir = output_dir(request);
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
                url: shown_text(&link),
                message: e.to_string(),
            })?;
            check_url(url.as_str())?;
            // No Authorization header here: the signature is the credential.
            let mut get = self.download_agent.request_url("GET", &url);
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
                    // What we hold does not fit the archive: start again,
                    // but not forever.
                    broken += 1;
                    if broken >= RETRIES {
                        return Err(ClientError::DownloadBroken {
                            message: "the server refused every range asked".to_owned(),
                        });
                    }
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
            // The whole archive's size: a 206 states it; a 200's length is it.
            let total = range_total(&response).or(remaining.map(|r| r + have));
            let mut body = response.into_reader();
            let before = have;
            let copied = copy(&mut body, &mut file, &mut have, total, progress);
            if have > before {
                // Progress was made: only a run of fruitless attempts ends it.
                (refused, broken) = (0, 0);
            }
            match copied {
                Ok(()) if total.is_none_or(|t| have == t) => {
                    check_whole(file, have, total.is_some())?;
                    break;
                }
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
        let status = self.poll(&request.batch_id, export_id, None)?;
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

/// Refuses, before anything is requested, an output the archive could
/// not be renamed to: an existing folder, or a file in a missing folder.
pub(super) fn check_output(request: &ExportRequest) -> Result<(), ClientError> {
    if let Some(output) = &request.output {
        if output.is_dir() {
            return Err(ClientError::BadOutput {
                path: output.clone(),
                reason: "it is a folder; name the archive file",
            });
        }
    }
    let dir = output_dir(request);
    if !dir.is_dir() {
        return Err(ClientError::BadOutput {
            path: dir,
            reason: "no such folder",
        });
    }
    Ok(())
}

/// The folder the archive goes to.
fn output_dir(request: &ExportRequest) -> PathBuf {
    match (&request.output, &request.dir) {
        (Some(output), _) => parent_of(output),
        (None, Some(dir)) => dir.clone(),
        (None, None) => PathBuf::from("."),
    }
}

/// The downloaded file is a whole ZIP archive, by its end records.
fn check_whole(file: &File, len: u64, length_known: bool) -> Result<(), ClientError> {
    let mut reader = file;
    let checked = crate::verify::check_end_records(&mut reader, len).map_err(|e| {
        ClientError::NotAnArchive {
            message: crate::error::display_chain(&e),
        }
    })?;
    checked.map_err(|problem| {
        let hint = if length_known {
            ""
        } else {
            " (the server sent no length, so a cut cannot be told from the end)"
        };
        ClientError::NotAnArchive {
            message: format!("{problem}, after {len} bytes{hint}"),
        }
    })
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

/// `a` of `Content-Range: bytes a-b/total`.
fn range_start(response: &ureq::Response) -> Option<u64> {
    let value = response.header("Content-Range")?.strip_prefix("bytes ")?;
    value.split('-').next()?.trim().parse().ok()
}

/// `total` of `Content-Range: bytes a-b/total` (not `*`).
fn range_total(response: &ureq::Response) -> Option<u64> {
    let value = response.header("Content-Range")?.strip_prefix("bytes ")?;
    value.rsplit('/').next()?.trim().parse().ok()
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
