//! Atomic output: an archive appears at its path complete or not at all.
//!
//! The archive is written to a temporary file beside the output (same
//! directory, so the final rename cannot cross file systems), finished
//! explicitly, synced, and only then renamed into place. On any error the
//! temporary file is removed and the output path is left untouched.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::Error;

/// Buffer between the archive writer and the file: large, so big sequential
/// writes reach the disk in few system calls.
const WRITE_BUFFER: usize = 1 << 20;

/// Runs `write` against a temporary file beside `path` and renames the file
/// into place when it succeeds.
pub(crate) fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, Error>,
) -> Result<T, Error> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    // Temporary files default to 0600; the archive should get the mode any
    // new file of the user gets, that is 0666 less the umask, which open()
    // applies for us.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let temp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    let (temp_file, temp_path) = temp.into_parts();
    // From here on, dropping `temp_path` deletes the temporary file.
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, temp_file);
    let value = write(&mut writer)?;
    writer.flush().map_err(Error::Write)?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::Write(e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&*temp_path, e))?;
    drop(file);
    temp_path
        .persist(path)
        .map_err(|e| Error::io(path, e.error))?;
    Ok(value)
}
