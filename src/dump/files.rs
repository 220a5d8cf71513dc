//! Where a dump's record files come from: a directory ([`DumpDir`]), or
//! anything else implementing [`DumpFiles`], such as an object-store
//! prefix laid out like the directory.

use std::io::Read;
use std::path::PathBuf;

use super::confine::{DumpDir, DumpPathError};

/// The record files of one dump (`batch.json`, `tasks.jsonl`, ...), by
/// their name relative to the dump. [`Dump::read`](super::Dump::read)
/// reads a dump through it.
pub trait DumpFiles: Sync {
    /// Opens the file `name` for reading, with its size in bytes when
    /// known (a hint for how many records to expect). Nothing there is
    /// [`DumpPathError::Missing`]; a name that must not be read is
    /// [`DumpPathError::Outside`] or [`DumpPathError::NotRegular`].
    #[allow(clippy::type_complexity)]
    fn open_file(
        &self,
        name: &str,
    ) -> Result<(Box<dyn Read + Send + '_>, Option<u64>), DumpPathError>;

    /// True when nothing at all is at `name`, so an optional file
    /// (`uploads.jsonl`) counts as left out. Something there that cannot
    /// be read (a dangling link) is not absent: it is reported.
    fn is_absent(&self, name: &str) -> bool;

    /// Where `name` is, for error messages.
    fn location_of(&self, name: &str) -> PathBuf;

    /// The size of the file `name` in bytes, when there is one and its
    /// size is known without reading it: what tells a build whether the
    /// dump fits its memory budget. Default: the size
    /// [`open_file`](DumpFiles::open_file) gives.
    fn size_of(&self, name: &str) -> Option<u64> {
        self.open_file(name).ok().and_then(|(_, len)| len)
    }
}

impl DumpFiles for DumpDir {
    fn open_file(
        &self,
        name: &str,
    ) -> Result<(Box<dyn Read + Send + '_>, Option<u64>), DumpPathError> {
        let file = self.open(name)?;
        let len = file.metadata().map_err(DumpPathError::Io)?.len();
        Ok((Box::new(file), Some(len)))
    }

    fn is_absent(&self, name: &str) -> bool {
        // No link (not even a dangling one) by that name.
        std::fs::symlink_metadata(self.root().join(name))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    }

    fn location_of(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    fn size_of(&self, name: &str) -> Option<u64> {
        // What a build would open: a name the dump refuses has no size.
        self.open(name).ok()?.metadata().ok().map(|m| m.len())
    }
}
