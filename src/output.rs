//! Atomic output: an archive appears at its path complete or not at all.
//!
//! The archive is written to a temporary file beside the output (same
//! directory, so the final rename cannot cross file systems), finished
//! explicitly, synced, and only then renamed into place. On any error the
//! temporary file is removed and the output path is left untouched.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::Error;

/// Buffer between the archive writer and the file: large, so big sequential
/// writes reach the disk in few system calls.
const WRITE_BUFFER: usize = 1 << 20;

/// Runs `write` against a temporary file beside `path` and renames the file
/// into place when it succeeds.
pub(crate) fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<WritebackFile>) -> Result<T, Error>,
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
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, WritebackFile::new(temp_file));
    let value = write(&mut writer)?;
    writer.flush().map_err(Error::Write)?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::Write(e.into_error()))?
        .file;
    file.sync_all().map_err(|e| Error::io(&*temp_path, e))?;
    drop(file);
    temp_path
        .persist(path)
        .map_err(|e| Error::io(path, e.error))?;
    Ok(value)
}

/// Bytes written between two writeback requests.
const WRITEBACK_STEP: u64 = 32 << 20;

/// The archive file, asking the kernel to start writing each finished
/// stretch of it to disk while the build goes on (Linux
/// `sync_file_range`), so the `fsync` that ends a build of gigabytes waits
/// for the last stretch only. A stretch already on disk is then dropped
/// from the page cache (`posix_fadvise(DONTNEED)`): the kernel reuses its
/// pages for the next stretches instead of taking fresh memory for every
/// byte of the archive, which on virtual machines costs more than the copy
/// itself, and a multi-gigabyte export does not push the rest of the
/// machine's cache out. Elsewhere a plain file.
pub(crate) struct WritebackFile {
    file: File,
    /// End of the stretch already handed to writeback.
    requested: u64,
    /// The stretch handed to writeback last, dropped once it is on disk.
    in_flight: Option<(u64, u64)>,
    position: u64,
}

impl WritebackFile {
    fn new(file: File) -> WritebackFile {
        WritebackFile {
            file,
            requested: 0,
            in_flight: None,
            position: 0,
        }
    }

    fn request_writeback(&mut self) {
        if self.position < self.requested + WRITEBACK_STEP {
            return;
        }
        let stretch = (self.requested, self.position - self.requested);
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = self.file.as_raw_fd();
            // SAFETY: plain system calls on a file descriptor we own; they
            // schedule or wait for writeback and drop clean cached pages of
            // the file, touching no memory of ours. Hints only: whatever
            // they return, the fsync() at the end is what makes the file
            // durable, so their results are not needed.
            unsafe {
                if let Some((offset, length)) = self.in_flight {
                    // Started one step ago, so usually done already.
                    libc::sync_file_range(
                        fd,
                        offset as libc::off64_t,
                        length as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WAIT_BEFORE
                            | libc::SYNC_FILE_RANGE_WRITE
                            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                    );
                    libc::posix_fadvise(
                        fd,
                        offset as libc::off64_t,
                        length as libc::off64_t,
                        libc::POSIX_FADV_DONTNEED,
                    );
                }
                libc::sync_file_range(
                    fd,
                    stretch.0 as libc::off64_t,
                    stretch.1 as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.in_flight = Some(stretch);
        self.requested = self.position;
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.position += n as u64;
        self.request_writeback();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for WritebackFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = self.file.seek(to)?;
        // A seek back patches a header already written; writeback resumes
        // from wherever writing goes on.
        self.requested = self.requested.min(self.position);
        Ok(self.position)
    }
}
