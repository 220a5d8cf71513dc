//! The upload bytes of a dump directory, for the archive writer.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::blob::BlobSource;
use crate::model::Upload;

/// Upload bytes stored in a dump directory: `uploads/<file_key>`, or the
/// record's `path` relative to the dump.
#[derive(Debug, Clone)]
pub struct DirBlobSource {
    root: PathBuf,
}

impl DirBlobSource {
    /// Reads uploads of the dump at `root`.
    pub fn new(root: impl AsRef<Path>) -> DirBlobSource {
        DirBlobSource {
            root: root.as_ref().to_path_buf(),
        }
    }

    /// The file holding an upload's bytes.
    pub fn path_of(&self, upload: &Upload) -> PathBuf {
        match &upload.path {
            Some(path) => self.root.join(path),
            None => self.root.join("uploads").join(&upload.file_key),
        }
    }
}

impl BlobSource for DirBlobSource {
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(File::open(self.path_of(upload))?))
    }

    fn len(&self, upload: &Upload) -> io::Result<Option<u64>> {
        let meta = std::fs::metadata(self.path_of(upload))?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "not a regular file",
            ));
        }
        Ok(Some(meta.len()))
    }
}
