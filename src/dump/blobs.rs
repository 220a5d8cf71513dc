//! The upload bytes of a dump directory, for the archive writer.
//!
//! Every upload is opened through [`DumpDir`], so bytes that resolve
//! outside the dump (a link to `/etc/passwd`, a linked directory) or that
//! are not a regular file (a FIFO) are refused, never read.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::confine::DumpDir;
use crate::blob::BlobSource;
use crate::model::Upload;

/// Upload bytes stored in a dump directory: `uploads/<file_key>`, or the
/// record's `path` relative to the dump. A blob outside the dump or not a
/// regular file is a [`RefusedBlob`](crate::blob::RefusedBlob), which the
/// export reports as a problem of its upload record.
#[derive(Debug, Clone)]
pub struct DirBlobSource {
    dir: DumpDir,
}

impl DirBlobSource {
    /// Reads uploads of the dump at `root`.
    pub fn new(root: impl AsRef<Path>) -> DirBlobSource {
        DirBlobSource {
            dir: DumpDir::new(root),
        }
    }

    /// The path of an upload's bytes relative to the dump.
    pub fn relative_path_of(upload: &Upload) -> PathBuf {
        match &upload.path {
            Some(path) => PathBuf::from(path),
            None => Path::new("uploads").join(upload.file_key.as_str()),
        }
    }

    /// The file holding an upload's bytes, before links are resolved.
    pub fn path_of(&self, upload: &Upload) -> PathBuf {
        self.dir.root().join(Self::relative_path_of(upload))
    }
}

impl BlobSource for DirBlobSource {
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>> {
        let file = self
            .dir
            .open(Self::relative_path_of(upload))
            .map_err(|e| e.into_io())?;
        Ok(Box::new(file))
    }

    fn len(&self, upload: &Upload) -> io::Result<Option<u64>> {
        let meta = self
            .dir
            .metadata(Self::relative_path_of(upload))
            .map_err(|e| e.into_io())?;
        Ok(Some(meta.len()))
    }
}
