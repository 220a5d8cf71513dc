//! The service's dumps in object storage (`--data s3://BUCKET/PREFIX`,
//! feature `s3`): each batch dump is a prefix directly under the data
//! prefix, laid out like a dump directory (SPEC section 2).
//!
//! ```text
//! s3://BUCKET/PREFIX/<dump>/batch.json
//! s3://BUCKET/PREFIX/<dump>/tasks.jsonl, ...
//! s3://BUCKET/PREFIX/<dump>/uploads/<file_key>
//! ```
//!
//! A job records its dump as `<dump>`, the name under the data prefix, so
//! every process finds it under its own `--data`. [`S3DumpBuilder`] builds
//! straight from the bucket ([`S3Dump`]: records read and upload bytes
//! streamed, no local copy), and its fingerprint is
//! [`fingerprint_s3`]: the record
//! files' contents and the uploads' size and ETag.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;

use super::fingerprint::fingerprint_s3;
use super::{BatchInfo, BuildJob, Builder, JobError};
use crate::s3::{block_on, S3Dump, S3Location};

/// A data prefix of dumps in object storage.
#[derive(Clone)]
pub struct S3Dumps {
    store: Arc<dyn ObjectStore>,
    location: S3Location,
}

impl std::fmt::Debug for S3Dumps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Dumps")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct BatchHead {
    id: String,
    workspace_id: String,
}

impl S3Dumps {
    /// The dumps under `location`, read with `store` (a client for its bucket).
    pub fn new(store: Arc<dyn ObjectStore>, location: S3Location) -> S3Dumps {
        S3Dumps { store, location }
    }

    /// The data prefix.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// The dump a job recorded as `name` (one segment under the data
    /// prefix; anything else is refused, so a stored job cannot point a
    /// worker elsewhere in the bucket).
    pub fn dump(&self, name: &Path) -> Result<S3Dump, JobError> {
        let text = name.to_string_lossy();
        if text.is_empty() || text.contains('/') || text == "." || text == ".." {
            return Err(JobError::io(
                name,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a dump under the data prefix",
                ),
            ));
        }
        let prefix = match self.location.prefix.as_str() {
            "" => text.into_owned(),
            prefix => format!("{prefix}/{text}"),
        };
        let location = S3Location {
            bucket: self.location.bucket.clone(),
            prefix,
        };
        Ok(S3Dump::new(Arc::clone(&self.store), location))
    }

    /// Every dump directly under the data prefix that holds a readable
    /// `batch.json` with `id` and `workspace_id`, in byte order of name
    /// (the first of two claiming one id wins, as for folders).
    pub fn batches(&self) -> Result<Vec<BatchInfo>, JobError> {
        let prefix = self.location.prefix_path();
        let listed = block_on(self.store.list_with_delimiter(Some(&prefix)))
            .map_err(|e| JobError::io(self.location.to_string(), io::Error::other(e)))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|path| path.filename().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .filter_map(|name| {
                let dump = self.dump(Path::new(&name)).ok()?;
                let key = dump.key_of("batch.json").ok()?;
                let got = block_on(async { self.store.get(&key).await?.bytes().await }).ok()?;
                let head: BatchHead = serde_json::from_slice(&got).ok()?;
                Some(BatchInfo {
                    id: head.id,
                    workspace_id: head.workspace_id,
                    dir: PathBuf::from(name),
                })
            })
            .collect())
    }
}

/// Builds jobs from dumps in object storage; see the module docs.
#[derive(Debug, Clone)]
pub struct S3DumpBuilder {
    dumps: S3Dumps,
}

impl S3DumpBuilder {
    /// Builds from the dumps under `dumps`.
    pub fn new(dumps: S3Dumps) -> S3DumpBuilder {
        S3DumpBuilder { dumps }
    }
}

impl Builder for S3DumpBuilder {
    fn build(&self, job: &BuildJob<'_>) -> Result<(), crate::Error> {
        let dump = self.dumps.dump(job.dump_dir).map_err(|err| match err {
            JobError::Io { path, source } => crate::Error::io(path, source),
            other => crate::Error::io(job.dump_dir, io::Error::other(other.to_string())),
        })?;
        let options = job
            .export_options()?
            .progress(std::sync::Arc::new(super::SpillLog::of(job)));
        dump.export_to_path(job.output, &options)?;
        Ok(())
    }

    fn fingerprint(&self, dump_dir: &Path) -> Result<String, JobError> {
        fingerprint_s3(&self.dumps.dump(dump_dir)?)
    }
}
