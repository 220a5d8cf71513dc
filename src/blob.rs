//! Where upload bytes come from: the seam an export backend plugs into.
//!
//! The archive writer asks a [`BlobSource`] for one reader per upload and
//! streams it into the archive, so a backend can serve bytes from object
//! storage, a database or anywhere else. The dump reader's
//! [`DirBlobSource`](crate::dump::DirBlobSource) reads a dump directory.

use std::io::{self, Read};

use crate::model::Upload;

/// A blob a source will not read, for a reason that is the input's fault
/// (bytes outside the dump, a FIFO in place of a file): carried inside the
/// [`io::Error`] that [`BlobSource::open`] or [`BlobSource::len`] returns,
/// it makes the export refuse the upload as a problem of its record (file,
/// line, field) instead of failing with an I/O error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RefusedBlob {
    /// Why, in lowercase words: "resolves outside the dump directory".
    pub reason: String,
}

impl RefusedBlob {
    /// The refusal as an [`io::Error`] to return from a [`BlobSource`].
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The refusal an error returned by a [`BlobSource`] carries, if any.
    pub fn from_io(err: &io::Error) -> Option<&RefusedBlob> {
        err.get_ref()?.downcast_ref::<RefusedBlob>()
    }
}

/// A source of upload bytes. Shared between worker threads, so it must be `Sync`.
pub trait BlobSource: Sync {
    /// Opens the bytes of one upload. A missing blob is an error of kind
    /// [`io::ErrorKind::NotFound`]; the export reports it as missing bytes.
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>>;

    /// The size of the blob, when it can be known without reading it. Used
    /// to refuse missing or wrongly sized uploads before writing anything;
    /// the size is checked again while streaming either way.
    fn len(&self, upload: &Upload) -> io::Result<Option<u64>> {
        let _ = upload;
        Ok(None)
    }
}

/// Upload bytes held in memory, keyed by `file_key`: for tests and for
/// callers whose uploads are small.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobSource {
    blobs: std::collections::HashMap<String, Vec<u8>>,
}

impl MemoryBlobSource {
    /// An empty source.
    pub fn new() -> MemoryBlobSource {
        MemoryBlobSource::default()
    }

    /// Adds the bytes of one upload.
    pub fn insert(&mut self, file_key: &str, bytes: Vec<u8>) {
        self.blobs.insert(file_key.to_owned(), bytes);
    }
}

impl BlobSource for MemoryBlobSource {
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>> {
        match self.blobs.get(upload.file_key.as_str()) {
            Some(bytes) => Ok(Box::new(bytes.as_slice())),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such blob")),
        }
    }

    fn len(&self, upload: &Upload) -> io::Result<Option<u64>> {
        match self.blobs.get(upload.file_key.as_str()) {
            Some(bytes) => Ok(Some(bytes.len() as u64)),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such blob")),
        }
    }
}
