//! The batches a service can export: a data folder of dumps.
//!
//! Every direct subfolder of the data folder that holds a `batch.json` is a
//! batch dump; the batch's id and workspace are read from that file's `id`
//! and `workspace_id`, so the folder's name does not matter (the bundled
//! `fixtures/sample-batch/` serves batch `batch-7f3a`). The folder is
//! scanned on every lookup, so dumps can be added or replaced while the
//! service runs. When two folders claim one batch id, the first in byte
//! order of folder name wins.
//!
//! With feature `s3` the data folder may instead be a prefix in object
//! storage ([`Catalog::s3`]): each dump is a prefix under it, scanned the
//! same way (see [`super::s3_dumps`]).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::JobError;

/// A batch found in the data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// The batch's `id`.
    pub id: String,
    /// The batch's `workspace_id`, which decides who may export it.
    pub workspace_id: String,
    /// The dump directory.
    pub dir: PathBuf,
}

/// The data folder of dumps.
#[derive(Debug, Clone)]
pub struct Catalog {
    root: PathBuf,
    /// Dumps in object storage instead of under `root`.
    #[cfg(feature = "s3")]
    s3: Option<super::S3Dumps>,
}

#[derive(Deserialize)]
struct BatchHead {
    id: String,
    workspace_id: String,
}

impl Catalog {
    /// A catalogue of the dumps under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Catalog {
        Catalog {
            root: root.into(),
            #[cfg(feature = "s3")]
            s3: None,
        }
    }

    /// A catalogue of the dumps under a prefix in object storage; a
    /// batch's [`BatchInfo::dir`] is then its dump's name under the prefix.
    #[cfg(feature = "s3")]
    pub fn s3(dumps: super::S3Dumps) -> Catalog {
        Catalog {
            root: PathBuf::from(dumps.location().to_string()),
            s3: Some(dumps),
        }
    }

    /// The data folder (for dumps in object storage, its `s3://` URL).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every batch in the data folder, in byte order of folder name.
    /// Folders whose `batch.json` is unreadable or lacks the two fields are
    /// skipped: they cannot be exported, and one bad dump must not hide the
    /// others.
    pub fn batches(&self) -> Result<Vec<BatchInfo>, JobError> {
        #[cfg(feature = "s3")]
        if let Some(dumps) = &self.s3 {
            return dumps.batches();
        }
        let entries = fs::read_dir(&self.root).map_err(|e| JobError::io(&self.root, e))?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.join("batch.json").is_file())
            .collect();
        dirs.sort();
        Ok(dirs
            .into_iter()
            .filter_map(|dir| {
                let text = fs::read(dir.join("batch.json")).ok()?;
                let head: BatchHead = serde_json::from_slice(&text).ok()?;
                Some(BatchInfo {
                    id: head.id,
                    workspace_id: head.workspace_id,
                    dir,
                })
            })
            .collect())
    }

    /// The batch with this id, if the data folder holds it.
    pub fn find(&self, batch_id: &str) -> Result<Option<BatchInfo>, JobError> {
        Ok(self.batches()?.into_iter().find(|b| b.id == batch_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_batches_by_their_id_not_folder_name() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("dump-a")).unwrap();
        fs::write(
            dir.path().join("dump-a/batch.json"),
            r#"{"id": "b-1", "name": "x", "workspace_id": "w-1"}"#,
        )
        .unwrap();
        fs::create_dir(dir.path().join("not-a-dump")).unwrap();
        let catalog = Catalog::new(dir.path());
        let found = catalog.find("b-1").unwrap().unwrap();
        assert_eq!(found.workspace_id, "w-1");
        assert_eq!(found.dir, dir.path().join("dump-a"));
        assert!(catalog.find("dump-a").unwrap().is_none());
    }
}
