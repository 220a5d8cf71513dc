//! Atomic output: an archive appears at its path complete or not at all.
//!
//! The archive is written to a temporary file beside the output (same
//! directory, so the final rename cannot cross file systems), finished
//! explicitly, synced, and only then renamed into place. On any error the
//! temporary file is removed and the output path is left untouched.
//!
//! A build killed outright (`kill -9`, a power cut) cannot remove its
//! temporary file, so every build holds an exclusive `flock` on its
//! temporary file from creation to rename, and [`remove_stale_partials`]
//! (which every build runs on its output folder first) deletes only the
//! temporary files whose lock it can take: the kernel drops a lock when its
//! holder dies, so a lockable one belongs to nobody, while one that a live
//! build is writing is never touched, even when two builds share a folder.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;

/// How a build's temporary file name ends: `.<output name>.<random>.partial`.
pub const PARTIAL_SUFFIX: &str = ".partial";

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
    builder.prefix(&prefix).suffix(PARTIAL_SUFFIX);
    // Temporary files default to 0600; the archive should get the mode any
    // new file of the user gets, that is 0666 less the umask, which open()
    // applies for us.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    // Leftovers of killed builds go first; failing to remove one (another
    // user's file, a read-only folder) must not stop this build.
    let _ = remove_stale_partials(dir);
    let (temp_file, temp_path) = locked_temp_file(&builder, dir)?;
    // From here on, dropping `temp_path` deletes the temporary file.
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, WritebackFile::new(temp_file));
    let value = write(&mut writer)?;
    writer.flush().map_err(Error::Write)?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::Write(e.into_error()))?
        .file;
    file.sync_all().map_err(|e| Error::io(&*temp_path, e))?;
    // The file stays open, and so locked, until it has its final name: a
    // cleaner must never see a finished temporary file unlocked.
    temp_path
        .persist(path)
        .map_err(|e| Error::io(path, e.error))?;
    drop(file);
    Ok(value)
}

/// Creates a temporary file in `dir` and takes its exclusive lock.
///
/// Between the creation and the lock, a cleaner may lock and delete the
/// brand-new file; the lock then lands on a file without a name. So after
/// locking, the path must still name the locked file; if not, try again
/// with a fresh name.
fn locked_temp_file(
    builder: &tempfile::Builder<'_, '_>,
    dir: &Path,
) -> Result<(File, tempfile::TempPath), Error> {
    loop {
        let temp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
        let (file, temp_path) = temp.into_parts();
        if !try_lock_exclusive(&file).map_err(|e| Error::io(&*temp_path, e))? {
            // A cleaner holds it and is about to delete it.
            let _ = temp_path.keep();
            continue;
        }
        if same_file(&file, &temp_path).map_err(|e| Error::io(&*temp_path, e))? {
            return Ok((file, temp_path));
        }
        // The name is gone (or, in theory, is someone else's now): not ours
        // to delete.
        let _ = temp_path.keep();
    }
}

/// Removes the temporary files of builds that died in `dir`
/// (`.<name>.<random>.partial`, regular files only), returning the paths
/// removed.
///
/// A temporary file is stale when no process holds its lock: a live build
/// keeps an exclusive `flock` on its temporary file until it is renamed
/// into place, and the kernel releases it when the build dies, however it
/// dies. So this is safe to call while other builds write into `dir`; it
/// never deletes their files. Each build calls it on its output folder, and
/// a service can call it at start on its archive folder.
///
/// Locks are advisory and per host: a folder shared over a network file
/// system with builds on other machines is only safe where that file system
/// passes `flock` through (NFSv4 does). Off Unix nothing is removed.
pub fn remove_stale_partials(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
    let dir = dir.as_ref();
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if !is_file || !looks_like_partial(&entry.file_name().to_string_lossy()) {
            continue;
        }
        match remove_if_stale(&path) {
            Ok(true) => removed.push(path),
            Ok(false) => {}
            // Gone meanwhile: another cleaner, or its build finished.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    removed.sort();
    Ok(removed)
}

/// Random characters tempfile puts in a name by default.
const RANDOM_CHARS: usize = 6;

/// The names [`write_atomically`] gives its temporary files,
/// `.<name>.<6 letters or digits>.partial`, so that a user's own
/// `.notes.partial` is left alone.
fn looks_like_partial(name: &str) -> bool {
    let Some(inner) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(PARTIAL_SUFFIX))
    else {
        return false;
    };
    match inner.rsplit_once('.') {
        Some((output, random)) => {
            !output.is_empty()
                && random.len() == RANDOM_CHARS
                && random.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Deletes `path` if it is a regular file nobody holds the lock of.
#[cfg(unix)]
fn remove_if_stale(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    // No link is followed, and a FIFO planted under such a name cannot
    // block the open.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        // A symbolic link: not a file a build made.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() || !try_lock_exclusive(&file)? {
        return Ok(false);
    }
    // Locked by us now; only delete it if the name still leads to it.
    if !same_file(&file, path)? {
        return Ok(false);
    }
    std::fs::remove_file(path)?;
    Ok(true)
}

#[cfg(not(unix))]
fn remove_if_stale(_path: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Takes an exclusive `flock` on `file` without waiting; false when another
/// open file holds a lock on it.
#[cfg(unix)]
fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(error)
    }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Whether `path` (not followed if a link) names the open `file`.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(named) => Ok(open.dev() == named.dev() && open.ino() == named.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> io::Result<bool> {
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_our_temporary_files_count_as_partials() {
        assert!(looks_like_partial(".out.zip.a1B2c3.partial"));
        assert!(!looks_like_partial(".notes.partial"));
        assert!(!looks_like_partial("out.zip.a1B2c3.partial"));
        assert!(!looks_like_partial(".out.zip.a1B2c3.partial.bak"));
        assert!(!looks_like_partial("..a1B2c3.partial"));
    }

    #[cfg(unix)]
    #[test]
    fn a_locked_partial_is_kept_and_an_unlocked_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".a.zip.AAAAAA.partial");
        let live = dir.path().join(".b.zip.BBBBBB.partial");
        let other = dir.path().join(".notes.partial");
        for path in [&stale, &live, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        // A second open file description, as another process would have:
        // flock locks of two opens conflict even within one process.
        let holder = File::open(&live).unwrap();
        assert!(try_lock_exclusive(&holder).unwrap());

        assert_eq!(
            remove_stale_partials(dir.path()).unwrap(),
            vec![stale.clone()]
        );
        assert!(!stale.exists());
        assert!(live.exists() && other.exists());

        // The holder dies: its lock goes with it.
        drop(holder);
        assert_eq!(
            remove_stale_partials(dir.path()).unwrap(),
            vec![live.clone()]
        );
        assert!(other.exists());
    }

    #[cfg(unix)]
    #[test]
    fn links_and_fifos_named_like_partials_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join(".l.zip.CCCCCC.partial");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join(".f.zip.DDDDDD.partial");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

        assert!(remove_stale_partials(dir.path()).unwrap().is_empty());
        assert!(target.exists() && link.symlink_metadata().is_ok() && fifo.exists());
    }

    #[test]
    fn the_temporary_file_is_locked_while_the_archive_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.zip");
        write_atomically(&output, |file| {
            file.write_all(b"archive").map_err(Error::Write)?;
            file.flush().map_err(Error::Write)?;
            // What a second build starting now would do.
            assert!(remove_stale_partials(dir.path()).unwrap().is_empty());
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names.len(), 1);
            assert!(looks_like_partial(&names[0]), "{names:?}");
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&output).unwrap(), b"archive");
    }

    #[test]
    fn a_build_removes_what_killed_builds_left_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".old.zip.EEEEEE.partial");
        std::fs::write(&stale, b"left by kill -9").unwrap();
        write_atomically(&dir.path().join("new.zip"), |_| Ok(())).unwrap();
        assert!(!stale.exists());
    }
}
