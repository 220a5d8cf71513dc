//! The fingerprint of a dump directory: what "the batch's records are
//! unchanged" means for reusing a complete export.
//!
//! It is the SHA-256 of, for every file under the dump directory in byte
//! order of its relative path: the path, then either the file's whole
//! contents (the record files `batch.json` and `*.jsonl`, which are what an
//! export is built from and are small next to the uploads) or its size and
//! modification time in nanoseconds (every other file, the upload bytes,
//! which may be large and are checked against their SHA-256 during the
//! build anyway). Any record added, removed or edited changes it; so does
//! touching, resizing, adding or removing an upload file.
//!
//! The walk never leaves the dump and never blocks: symbolic links are not
//! followed (a link is hashed as its target's text, so re-pointing it
//! changes the fingerprint, while a dangling one or one to a huge tree
//! elsewhere costs nothing), and a FIFO, socket or device is hashed as its
//! kind without being opened. Whether the build may use such a file is the
//! build's decision (it refuses them); the fingerprint only has to change
//! when they do.
//!
//! A dump in object storage ([`fingerprint_s3`], feature `s3`) is hashed
//! the same way over the objects under its prefix, in byte order of key
//! relative to the prefix: the record files by contents, every other
//! object by its size and ETag (its last-modified time where the store
//! gives no ETag), which change whenever the object is written again. An
//! object store has no links or special files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::JobError;

/// What the walk found at one relative path.
enum Found {
    /// A regular file.
    File(PathBuf),
    /// A symbolic link, by its target's text.
    Link(PathBuf),
    /// A FIFO, socket or device, never opened.
    Special,
}

/// Hex SHA-256 fingerprint of the dump at `dir`; see the module docs.
/// Errors name the path relative to `dir`.
pub fn fingerprint(dir: &Path) -> Result<String, JobError> {
    let relative_of = |path: &Path| path.strip_prefix(dir).unwrap_or(path).to_path_buf();
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(|e| {
            let path = e.path().map(relative_of).unwrap_or_default();
            let source = e
                .into_io_error()
                .unwrap_or_else(|| io::Error::other("unreadable directory entry"));
            JobError::io(path, source)
        })?;
        let kind = entry.file_type();
        let relative = relative_of(entry.path()).to_string_lossy().into_owned();
        if kind.is_dir() {
            continue;
        } else if kind.is_file() {
            found.push((relative, Found::File(entry.into_path())));
        } else if kind.is_symlink() {
            let target = fs::read_link(entry.path()).map_err(|e| JobError::io(&relative, e))?;
            found.push((relative, Found::Link(target)));
        } else {
            found.push((relative, Found::Special));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));

    let mut hasher = Sha256::new();
    for (relative, what) in found {
        hash_name(&mut hasher, &relative);
        match what {
            Found::File(path) if is_record_file(&relative) => {
                let read_error = |e| JobError::io(&relative, e);
                let file = open_regular(&path).map_err(read_error)?;
                hash_contents(&mut hasher, file).map_err(read_error)?;
            }
            Found::File(path) => {
                let meta = fs::symlink_metadata(&path).map_err(|e| JobError::io(&relative, e))?;
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                hasher.update(b"u");
                hasher.update(meta.len().to_le_bytes());
                hasher.update(mtime.to_le_bytes());
            }
            Found::Link(target) => {
                let target = target.to_string_lossy();
                hasher.update(b"l");
                hasher.update((target.len() as u64).to_le_bytes());
                hasher.update(target.as_bytes());
            }
            Found::Special => hasher.update(b"s"),
        }
    }
    Ok(crate::hash::to_hex(&hasher.finalize()))
}

/// Hex SHA-256 fingerprint of the dump in object storage at `dump`; see
/// the module docs. Errors name the key relative to the dump.
#[cfg(feature = "s3")]
pub fn fingerprint_s3(dump: &crate::s3::S3Dump) -> Result<String, JobError> {
    use crate::dump::DumpFiles;
    let objects = dump
        .objects()
        .map_err(|e| JobError::io(dump.location().to_string(), io::Error::other(e)))?;
    let mut hasher = Sha256::new();
    for (relative, meta) in objects {
        hash_name(&mut hasher, &relative);
        if is_record_file(&relative) {
            let read_error = |e| JobError::io(&relative, e);
            let (object, _) = dump
                .open_file(&relative)
                .map_err(|e| read_error(e.into_io()))?;
            hash_contents(&mut hasher, object).map_err(read_error)?;
        } else {
            let version = match &meta.e_tag {
                Some(e_tag) => format!("etag:{e_tag}"),
                None => format!("modified:{}", meta.last_modified.timestamp_micros()),
            };
            hasher.update(b"o");
            hasher.update(meta.size.to_le_bytes());
            hasher.update((version.len() as u64).to_le_bytes());
            hasher.update(version.as_bytes());
        }
    }
    Ok(crate::hash::to_hex(&hasher.finalize()))
}

/// One entry's name, length-prefixed so names never run into each other.
fn hash_name(hasher: &mut Sha256, relative: &str) {
    hasher.update((relative.len() as u64).to_le_bytes());
    hasher.update(relative.as_bytes());
}

/// A record file's whole contents, then its length.
fn hash_contents(hasher: &mut Sha256, mut contents: impl io::Read) -> io::Result<()> {
    let len = io::copy(&mut contents, hasher)?;
    hasher.update(b"f");
    hasher.update(len.to_le_bytes());
    Ok(())
}

/// Opens a file the walk saw as regular, refusing it if it was swapped for
/// a link or a FIFO since: no link followed, no open that blocks.
fn open_regular(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// The files an export's records come from, hashed by contents.
fn is_record_file(relative: &str) -> bool {
    !relative.contains(['/', '\\']) && (relative == "batch.json" || relative.ends_with(".jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_when_records_change() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("batch.json"), "{}").unwrap();
        fs::write(dir.path().join("responses.jsonl"), "a\n").unwrap();
        let first = fingerprint(dir.path()).unwrap();
        assert_eq!(first, fingerprint(dir.path()).unwrap());
        fs::write(dir.path().join("responses.jsonl"), "b\n").unwrap();
        let second = fingerprint(dir.path()).unwrap();
        assert_ne!(first, second);
        fs::create_dir(dir.path().join("uploads")).unwrap();
        fs::write(dir.path().join("uploads/u1"), "bytes").unwrap();
        assert_ne!(second, fingerprint(dir.path()).unwrap());
    }

    #[cfg(feature = "s3")]
    #[test]
    fn an_s3_dump_changes_with_its_records_and_its_objects_versions() {
        use crate::s3::{block_on, S3Dump, S3Location};
        use object_store::{path::Path as Key, ObjectStoreExt};
        let store = std::sync::Arc::new(object_store::memory::InMemory::new());
        let put = |key: &str, bytes: &'static str| {
            block_on(store.put(&Key::from(key), bytes.into())).unwrap();
        };
        let dump = S3Dump::new(store.clone(), S3Location::parse("s3://b/d").unwrap());
        put("d/batch.json", "{}");
        put("d/uploads/u1", "bytes");
        // Another dump beside it is not this dump's.
        put("d2/batch.json", "{}");
        let first = fingerprint_s3(&dump).unwrap();
        assert_eq!(first, fingerprint_s3(&dump).unwrap());
        put("d2/uploads/u9", "x");
        assert_eq!(first, fingerprint_s3(&dump).unwrap());
        // Written again with the same size: a new ETag.
        put("d/uploads/u1", "BYTES");
        let second = fingerprint_s3(&dump).unwrap();
        assert_ne!(first, second);
        put("d/batch.json", "{ }");
        assert_ne!(second, fingerprint_s3(&dump).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn links_are_hashed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("batch.json"), "{}").unwrap();
        fs::write(outside.path().join("tasks.jsonl"), "a\n").unwrap();
        let link = dir.path().join("tasks.jsonl");
        std::os::unix::fs::symlink(outside.path().join("tasks.jsonl"), &link).unwrap();
        let first = fingerprint(dir.path()).unwrap();
        // The target's contents are not read: changing them changes nothing.
        fs::write(outside.path().join("tasks.jsonl"), "b\n").unwrap();
        assert_eq!(first, fingerprint(dir.path()).unwrap());
        // Re-pointing the link (here: dangling) does change it, and is no error.
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/nonexistent/tasks.jsonl", &link).unwrap();
        assert_ne!(first, fingerprint(dir.path()).unwrap());
    }
}
