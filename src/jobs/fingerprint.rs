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

use std::fs;
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::JobError;

/// Hex SHA-256 fingerprint of the dump at `dir`; see the module docs.
pub fn fingerprint(dir: &Path) -> Result<String, JobError> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            JobError::io(path, io::Error::other(e.to_string()))
        })?;
        if entry.file_type().is_file() {
            let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            files.push((relative.to_string_lossy().into_owned(), entry.into_path()));
        }
    }
    files.sort();

    let mut hasher = Sha256::new();
    for (relative, path) in files {
        hasher.update((relative.len() as u64).to_le_bytes());
        hasher.update(relative.as_bytes());
        if is_record_file(&relative) {
            let mut file = fs::File::open(&path).map_err(|e| JobError::io(&path, e))?;
            let len = io::copy(&mut file, &mut hasher).map_err(|e| JobError::io(&path, e))?;
            hasher.update(len.to_le_bytes());
        } else {
            let meta = fs::metadata(&path).map_err(|e| JobError::io(&path, e))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            hasher.update(meta.len().to_le_bytes());
            hasher.update(mtime.to_le_bytes());
        }
    }
    Ok(hex::encode(hasher.finalize()))
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
}
