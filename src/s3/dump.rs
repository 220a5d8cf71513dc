//! Dumps in object storage: a prefix laid out like a dump directory
//! (SPEC section 2), read straight from the bucket.
//!
//! ```text
//! s3://BUCKET/PREFIX/batch.json
//! s3://BUCKET/PREFIX/tasks.jsonl, ... uploads.jsonl
//! s3://BUCKET/PREFIX/uploads/<file_key>   (or the record's `path`)
//! ```
//!
//! [`S3Dump`] is both the [`DumpFiles`] the dump reader reads records
//! through and the [`BlobSource`] the archive writer streams upload bytes
//! from, so an export backend can build an archive from its bucket with
//! no local copy:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use batch_export::s3::{S3Config, S3Dump, S3Location};
//! use batch_export::ExportOptions;
//!
//! let location = S3Location::parse("s3://dumps/batch-7f3a")?;
//! let config = S3Config {
//!     endpoint: Some("http://127.0.0.1:8333".into()),
//!     allow_http: true,
//!     ..S3Config::default()
//! };
//! let dump = S3Dump::new(config.client(&location)?, location);
//! dump.export_to_path("batch-7f3a.zip", &ExportOptions::new())?;
//! # Ok(())
//! # }
//! ```
//!
//! # Reading with bounded memory
//!
//! The client is asynchronous and the engine is not: every object is one
//! streamed GET whose body is pulled a network chunk at a time by
//! [`block_on`] from the reading thread (a rayon worker of the build), so
//! an upload of any size holds one chunk in memory, and the reader's
//! back-pressure stops the download while the archive writer is busy.
//!
//! # Keys stay under the prefix
//!
//! A record file, `uploads/<file_key>` or an upload's `path` is turned
//! into a key by resolving `.` and `..` segments (and dropping empty
//! ones) the way the directory reader resolves them, lexically since an
//! object store has no links: a name that climbs above the prefix, or
//! starts with `/`, is refused as [`DumpPathError::Outside`] ("resolves
//! outside the dump directory"), which the export reports with the file,
//! line and field of the record that names it. A missing object is
//! [`DumpPathError::Missing`]: a missing record file, or an upload's
//! missing bytes.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::stream::{BoxStream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::{block_on, S3Error, S3Location};
use crate::archive::ExportSummary;
use crate::blob::BlobSource;
use crate::dump::{DirBlobSource, Dump, DumpFiles, DumpPathError};
use crate::error::Error;
use crate::model::Upload;
use crate::options::ExportOptions;

/// A dump under an object-store prefix: its record files and upload
/// bytes. Cheap to clone (the client is shared).
#[derive(Clone)]
pub struct S3Dump {
    store: Arc<dyn ObjectStore>,
    location: S3Location,
}

impl std::fmt::Debug for S3Dump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Dump")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl S3Dump {
    /// The dump at `location`, read with `store`, a client for
    /// `location`'s bucket (e.g. [`S3Config::client`](super::S3Config::client)).
    pub fn new(store: Arc<dyn ObjectStore>, location: S3Location) -> S3Dump {
        S3Dump { store, location }
    }

    /// Where the dump is.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Reads the dump's records (see [`Dump::read`]); problems with them
    /// are kept for the check, as for a directory.
    pub fn read(&self) -> Result<Dump, Error> {
        Dump::read(self, self.location.to_string())
    }

    /// Reads the dump and writes its archive to `path` atomically, upload
    /// bytes streamed from the bucket, within
    /// [`ExportOptions::memory_budget`] as [`Dump::build`] builds a
    /// directory: a dump past the budget (by its objects' sizes) has its
    /// `responses.jsonl` streamed from the bucket once, into sorted runs
    /// in a temporary directory ([`ExportOptions::temp_dir`], default:
    /// beside `path`), with the same archive bytes.
    pub fn export_to_path(
        &self,
        path: impl AsRef<Path>,
        options: &ExportOptions,
    ) -> Result<ExportSummary, Error> {
        crate::spill::build_within(self, self, path.as_ref(), options, || self.read())
    }

    /// The key of `relative` (a path inside the dump), if it stays under
    /// the prefix; see the module docs.
    pub fn key_of(&self, relative: &str) -> Result<ObjectPath, DumpPathError> {
        Ok(self.location.key(&confined(relative)?))
    }

    /// Every object under the dump's prefix, with its key relative to the
    /// prefix, in byte order of that key.
    pub fn objects(&self) -> Result<Vec<(String, ObjectMeta)>, S3Error> {
        let prefix = self.location.prefix_path();
        let listed: Vec<ObjectMeta> = block_on(async {
            let mut objects = Vec::new();
            let mut listing = self.store.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                objects.push(meta?);
            }
            Ok::<_, object_store::Error>(objects)
        })?;
        let mut found: Vec<(String, ObjectMeta)> = listed
            .into_iter()
            .filter_map(|meta| {
                let relative = meta.location.prefix_match(&prefix)?;
                let relative = relative
                    .map(|part| part.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                Some((relative, meta))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// Opens the object at `relative` as a reader, with its size.
    fn open_object(&self, relative: &str) -> Result<(ObjectReader, u64), DumpPathError> {
        let key = self.key_of(relative)?;
        let got = block_on(self.store.get(&key)).map_err(missing_or_io)?;
        let size = got.meta.size;
        Ok((ObjectReader::new(got.into_stream()), size))
    }

    /// The size of the object at `relative`, without reading it.
    fn object_size(&self, relative: &str) -> Result<u64, DumpPathError> {
        let key = self.key_of(relative)?;
        let meta = block_on(self.store.head(&key)).map_err(missing_or_io)?;
        Ok(meta.size)
    }
}

/// A missing object is missing from the dump; anything else the store
/// says is an I/O error.
fn missing_or_io(err: object_store::Error) -> DumpPathError {
    match err {
        object_store::Error::NotFound { .. } => DumpPathError::Missing,
        other => DumpPathError::Io(io::Error::other(other)),
    }
}

/// `relative` with `.`, `..` and empty segments resolved, or
/// [`DumpPathError::Outside`] when it leaves the dump. The dump itself
/// (`uploads/..`) is a folder, not a file.
fn confined(relative: &str) -> Result<String, DumpPathError> {
    if relative.starts_with('/') {
        return Err(DumpPathError::Outside);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or(DumpPathError::Outside)?;
            }
            name => parts.push(name),
        }
    }
    if parts.is_empty() {
        return Err(DumpPathError::NotRegular("directory"));
    }
    Ok(parts.join("/"))
}

impl DumpFiles for S3Dump {
    fn open_file(
        &self,
        name: &str,
    ) -> Result<(Box<dyn Read + Send + '_>, Option<u64>), DumpPathError> {
        let (reader, size) = self.open_object(name)?;
        Ok((Box::new(reader), Some(size)))
    }

    fn is_absent(&self, name: &str) -> bool {
        matches!(self.object_size(name), Err(DumpPathError::Missing))
    }

    fn location_of(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}", self.location))
    }

    fn size_of(&self, name: &str) -> Option<u64> {
        // One HEAD request, no GET.
        self.object_size(name).ok()
    }
}

impl BlobSource for S3Dump {
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>> {
        let relative = DirBlobSource::relative_path_of(upload);
        let (reader, _) = self
            .open_object(&relative.to_string_lossy())
            .map_err(DumpPathError::into_io)?;
        Ok(Box::new(reader))
    }

    fn len(&self, upload: &Upload) -> io::Result<Option<u64>> {
        let relative = DirBlobSource::relative_path_of(upload);
        let size = self
            .object_size(&relative.to_string_lossy())
            .map_err(DumpPathError::into_io)?;
        Ok(Some(size))
    }
}

/// A blocking reader over an object's streamed body: one network chunk
/// is held at a time.
struct ObjectReader {
    body: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
    ended: bool,
}

impl ObjectReader {
    fn new(body: BoxStream<'static, object_store::Result<bytes::Bytes>>) -> ObjectReader {
        ObjectReader {
            body,
            chunk: bytes::Bytes::new(),
            ended: false,
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.ended || buf.is_empty() {
                return Ok(0);
            }
            match block_on(self.body.next()) {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(err)) => return Err(io::Error::other(err)),
                None => self.ended = true,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_like_paths_and_never_climb_out() {
        assert_eq!(confined("uploads/u1").unwrap(), "uploads/u1");
        assert_eq!(confined("uploads/./a//b").unwrap(), "uploads/a/b");
        assert_eq!(confined("uploads/../tasks.jsonl").unwrap(), "tasks.jsonl");
        for outside in ["../x", "uploads/../../x", "/etc/passwd", "a/../../b"] {
            assert!(
                matches!(confined(outside), Err(DumpPathError::Outside)),
                "{outside}"
            );
        }
        assert!(matches!(
            confined("uploads/.."),
            Err(DumpPathError::NotRegular(_))
        ));
    }

    #[test]
    fn keys_sit_under_the_prefix() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let dump = S3Dump::new(store, S3Location::parse("s3://b/dumps/one").unwrap());
        assert_eq!(
            dump.key_of("uploads/../batch.json").unwrap().as_ref(),
            "dumps/one/batch.json"
        );
        assert!(matches!(
            dump.key_of("../two/batch.json"),
            Err(DumpPathError::Outside)
        ));
    }

    #[test]
    fn an_in_memory_dump_reads_and_streams_its_objects() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let dump = S3Dump::new(store.clone(), S3Location::parse("s3://b/d").unwrap());
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        block_on(store.put(&ObjectPath::from("d/uploads/u1"), big.clone().into())).unwrap();
        block_on(store.put(&ObjectPath::from("d/tasks.jsonl"), "{}\n".into())).unwrap();
        let (mut reader, size) = dump.open_file("uploads/u1").unwrap();
        assert_eq!(size, Some(big.len() as u64));
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        assert!(read == big);
        assert!(dump.is_absent("uploads.jsonl"));
        assert!(!dump.is_absent("tasks.jsonl"));
        let keys: Vec<String> = dump.objects().unwrap().into_iter().map(|o| o.0).collect();
        assert_eq!(keys, ["tasks.jsonl", "uploads/u1"]);
    }
}
