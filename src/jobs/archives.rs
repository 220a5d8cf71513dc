//! Where complete archives are published: a local folder (the default,
//! `<state>/exports`) or, with feature `s3`, a bucket prefix
//! (`s3://BUCKET/PREFIX`). One seam for the worker and the engine: build
//! here, stage, then publish inside the store's fenced completion (or
//! discard), check, remove, and link.
//!
//! Either way an archive is built whole into a local file first, by the
//! same writer as `build` (sizes and CRCs in local headers, no data
//! descriptors), so the published bytes are the built bytes:
//!
//! - folder: each attempt builds `<objects>/.<id>.attempt-<n>.zip`;
//!   publishing renames it to `<id>.zip` (atomic on one file system);
//! - S3: each attempt builds `<state>/staging/.<id>.attempt-<n>.zip`;
//!   staging uploads it as the parts of a multipart upload of
//!   `PREFIX/<id>.zip` (one part in memory at a time) and deletes the
//!   file; publishing completes the upload, which makes the object appear
//!   whole; discarding aborts it. Nothing is ever at the key before the
//!   completion, and a failed or refused attempt leaves no upload open
//!   (the abort is retried in the background while the store is down).

// Without feature `s3` only the folder is left, and some parameters with
// nothing to do.
#![cfg_attr(not(feature = "s3"), allow(unused_variables, dead_code))]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::reason::redact_paths;
use super::{Job, JobError};
use crate::error::display_chain;

#[cfg(feature = "s3")]
use crate::s3::{PendingUpload, S3Error, S3Objects, UploadError};

/// Where archives go (see [`super::JobsConfig::objects_dir`] and
/// `JobsConfig::objects_s3`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ObjectsSpec {
    /// A local (or shared) folder.
    Folder(PathBuf),
    /// A bucket prefix in S3-compatible storage.
    #[cfg(feature = "s3")]
    S3(S3Objects),
}

/// The archive store a [`super::Jobs`] publishes to.
#[derive(Debug)]
pub(crate) enum ArchiveStore {
    Folder(PathBuf),
    #[cfg(feature = "s3")]
    S3 {
        objects: S3Objects,
        staging: PathBuf,
    },
}

/// An attempt's archive, ready to publish (see the module docs).
#[derive(Debug)]
pub(crate) enum Staged {
    Folder {
        built: PathBuf,
        published: PathBuf,
    },
    #[cfg(feature = "s3")]
    S3(PendingUpload),
}

/// Why staging failed.
#[derive(Debug)]
pub(crate) enum StageError {
    /// The cancel flag was set (shutdown or a lost lease).
    Cancelled,
    /// The upload failed; the reason is safe to show.
    Failed(String),
}

impl ArchiveStore {
    pub(crate) fn new(spec: ObjectsSpec, state_dir: &Path) -> ArchiveStore {
        match spec {
            ObjectsSpec::Folder(dir) => ArchiveStore::Folder(dir),
            #[cfg(feature = "s3")]
            ObjectsSpec::S3(objects) => ArchiveStore::S3 {
                objects,
                staging: state_dir.join("staging"),
            },
        }
    }

    /// Creates the local folder builds go to.
    pub(crate) fn prepare(&self) -> Result<(), JobError> {
        let dir = self.build_dir();
        fs::create_dir_all(dir).map_err(|e| JobError::io(dir, e))
    }

    /// The archive folder, when archives are local files.
    pub(crate) fn folder(&self) -> Option<&Path> {
        match self {
            ArchiveStore::Folder(dir) => Some(dir),
            #[cfg(feature = "s3")]
            ArchiveStore::S3 { .. } => None,
        }
    }

    /// Where attempts build: the archive folder, or the staging folder of
    /// archives bound for S3.
    pub(crate) fn build_dir(&self) -> &Path {
        match self {
            ArchiveStore::Folder(dir) => dir,
            #[cfg(feature = "s3")]
            ArchiveStore::S3 { staging, .. } => staging,
        }
    }

    /// The local file of a published archive: `<objects>/<id>.zip` (for
    /// objects in S3 a path that never exists, so the HMAC download route
    /// serves nothing).
    pub(crate) fn local_path(&self, export_id: &str) -> PathBuf {
        self.build_dir().join(object_name(export_id))
    }

    /// Where attempt `attempt` builds: a dot file, which start-up's
    /// reconciliation never takes for an archive.
    pub(crate) fn build_path(&self, export_id: &str, attempt: u32) -> PathBuf {
        self.build_dir()
            .join(format!(".{export_id}.attempt-{attempt}.zip"))
    }

    /// Makes the built archive ready to publish. The built file is gone
    /// afterwards on S3 (uploaded) and on failure.
    pub(crate) fn stage(
        &self,
        export_id: &str,
        built: &Path,
        cancel: &AtomicBool,
    ) -> Result<Staged, StageError> {
        match self {
            ArchiveStore::Folder(_) => Ok(Staged::Folder {
                built: built.to_path_buf(),
                published: self.local_path(export_id),
            }),
            #[cfg(feature = "s3")]
            ArchiveStore::S3 { objects, .. } => {
                let uploaded = objects.upload_parts(&object_name(export_id), built, cancel);
                let _ = fs::remove_file(built);
                match uploaded {
                    Ok(upload) => Ok(Staged::S3(upload)),
                    Err(UploadError::Cancelled) => Err(StageError::Cancelled),
                    Err(UploadError::Read(e)) => Err(StageError::Failed(format!(
                        "reading the built archive failed: {}",
                        e.kind()
                    ))),
                    Err(UploadError::Store(err)) => Err(StageError::Failed(format!(
                        "uploading the archive to object storage failed: {}",
                        describe_s3(&err)
                    ))),
                }
            }
        }
    }

    /// True when the archive of `export_id` is there to serve; a store
    /// that does not answer counts as no.
    pub(crate) fn exists(&self, export_id: &str) -> bool {
        match self {
            ArchiveStore::Folder(_) => self.local_path(export_id).is_file(),
            #[cfg(feature = "s3")]
            ArchiveStore::S3 { objects, .. } => {
                objects.exists(&object_name(export_id)).unwrap_or(false)
            }
        }
    }

    /// Removes the archive of `export_id`; an absent one is not an error.
    pub(crate) fn remove(&self, export_id: &str) -> Result<(), JobError> {
        match self {
            ArchiveStore::Folder(_) => {
                let path = self.local_path(export_id);
                match fs::remove_file(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(JobError::io(path, e)),
                }
            }
            #[cfg(feature = "s3")]
            ArchiveStore::S3 { objects, .. } => Ok(objects.delete(&object_name(export_id))?),
        }
    }

    /// A presigned link to a complete job's archive valid for `lifetime`,
    /// when archives are in object storage; None for a folder (the
    /// service signs its own links).
    pub(crate) fn presigned_link(
        &self,
        job: &Job,
        lifetime: Duration,
    ) -> Result<Option<String>, JobError> {
        match self {
            ArchiveStore::Folder(_) => {
                let _ = (job, lifetime);
                Ok(None)
            }
            #[cfg(feature = "s3")]
            ArchiveStore::S3 { objects, .. } => Ok(Some(objects.presigned_get(
                &object_name(&job.id),
                &job.file_name(),
                lifetime,
            )?)),
        }
    }
}

impl Staged {
    /// Puts the archive in place; run inside the store's fenced completion.
    pub(crate) fn publish(self) -> Result<(), JobError> {
        match self {
            Staged::Folder { built, published } => {
                fs::rename(&built, &published).map_err(|e| JobError::io(&published, e))
            }
            #[cfg(feature = "s3")]
            Staged::S3(upload) => Ok(upload.complete()?),
        }
    }

    /// Drops the archive: deletes the built file, or aborts the upload.
    pub(crate) fn discard(self) {
        match self {
            Staged::Folder { built, .. } => {
                let _ = fs::remove_file(built);
            }
            #[cfg(feature = "s3")]
            Staged::S3(upload) => upload.abort(),
        }
    }
}

/// The archive's name in the objects folder or under the prefix.
fn object_name(export_id: &str) -> String {
    format!("{export_id}.zip")
}

/// An object-store error as a reason a client may read: the whole chain,
/// with the query string of every URL in it (upload ids, signatures)
/// left out.
#[cfg(feature = "s3")]
fn describe_s3(err: &S3Error) -> String {
    let chain = match err {
        S3Error::Store(inner) => display_chain(inner),
        other => display_chain(other),
    };
    strip_queries(&chain)
}

/// Why publishing failed, safe for a client to read: no server path, no
/// query string of a URL.
pub(crate) fn publish_reason(err: &JobError) -> String {
    strip_queries(&redact_paths(&display_chain(err), None))
}

fn strip_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_url = false;
    let mut in_query = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_url && (rest.starts_with("http://") || rest.starts_with("https://")) {
            in_url = true;
        }
        if in_url && (c.is_whitespace() || matches!(c, ')' | '"' | '\'' | ',')) {
            in_url = false;
            in_query = false;
        }
        if in_url && c == '?' {
            in_query = true;
        }
        if !in_query {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_of_urls_are_left_out_of_reasons() {
        let text = "error sending request for url (http://h:1/b/k.zip?partNumber=2&uploadId=abc): \
                    refused; see https://x/y?X-Amz-Signature=s and a?b";
        assert_eq!(
            strip_queries(text),
            "error sending request for url (http://h:1/b/k.zip): refused; see https://x/y and a?b"
        );
    }

    #[test]
    fn folder_archives_build_beside_their_published_name() {
        let store = ArchiveStore::new(ObjectsSpec::Folder("/o".into()), Path::new("/s"));
        assert_eq!(store.local_path("e"), Path::new("/o/e.zip"));
        assert_eq!(store.build_path("e", 2), Path::new("/o/.e.attempt-2.zip"));
        assert_eq!(store.folder(), Some(Path::new("/o")));
    }
}
