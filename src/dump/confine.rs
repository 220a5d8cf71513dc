//! Opening files of a dump without ever leaving it.
//!
//! Every file the reader or [`DirBlobSource`](super::DirBlobSource) opens
//! (record files, upload bytes at `uploads/<file_key>` or at a record's
//! `path`) goes through [`DumpDir`], which resolves the whole path (`..`,
//! symbolic links, also a linked directory on the way such as
//! `blobs -> /etc`) and refuses:
//!
//! - a path that resolves outside the dump directory
//!   ([`DumpPathError::Outside`]);
//! - anything but a regular file: a FIFO, a socket, a device, a directory
//!   ([`DumpPathError::NotRegular`]).
//!
//! A symbolic link that stays inside the dump is allowed: dumps that share
//! one blob between records by linking stay readable, and nothing outside
//! the dump can be reached that way.
//!
//! The resolved path is opened with `O_NOFOLLOW | O_NONBLOCK`, so a FIFO
//! can never block the open, and the type is then checked on the open
//! file itself (no window between check and use). On Linux, where the open
//! file's path can be read back (`/proc/self/fd`), that path is checked
//! again, so a directory swapped for a link between resolving and opening
//! is caught as well. A hard link is a name inside the dump like any
//! other, so it is allowed.
//!
//! On Linux a file is first opened with `openat2(RESOLVE_BENEATH)` from the
//! dump directory itself: the kernel resolves the path and refuses any step
//! out of the directory, in one system call and with no window between
//! check and use. Resolving a path component by component (`realpath`: a
//! `readlink` per component) cost about a tenth of a build's CPU over
//! 75,000 uploads. Whatever that call does not open as a regular file (a
//! link out of the dump, an absolute link back into it, `..` above the
//! dump, a FIFO, a kernel without `openat2`) goes the resolving way above,
//! which decides and words every refusal: the fast way only ever opens
//! what the slow way would have opened.

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use crate::blob::RefusedBlob;

/// Why a path of the dump cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpPathError {
    /// Nothing is there (a dangling symbolic link counts as nothing).
    #[error("missing from the dump")]
    Missing,
    /// The path resolves outside the dump directory.
    #[error("resolves outside the dump directory")]
    Outside,
    /// The path is not a regular file; the kind names what it is.
    #[error("not a regular file (a {0})")]
    NotRegular(&'static str),
    /// Reading failed for another reason.
    #[error(transparent)]
    Io(io::Error),
}

impl DumpPathError {
    /// The error as an [`io::Error`], for the [`BlobSource`](crate::BlobSource)
    /// interface: [`io::ErrorKind::NotFound`] when missing, a
    /// [`RefusedBlob`] when outside the dump or not a regular file.
    pub fn into_io(self) -> io::Error {
        match self {
            DumpPathError::Missing => io::Error::new(io::ErrorKind::NotFound, "missing"),
            DumpPathError::Io(err) => err,
            refused => RefusedBlob {
                reason: refused.to_string(),
            }
            .into_io(),
        }
    }
}

/// A dump directory whose files are only opened when they resolve inside it.
#[derive(Debug, Clone)]
pub struct DumpDir {
    root: PathBuf,
    /// `root` with every link resolved, what resolved paths must start with.
    canonical: Option<PathBuf>,
    /// The directory itself (`O_PATH`), what `openat2` resolves beneath.
    #[cfg(target_os = "linux")]
    beneath: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl DumpDir {
    /// The dump at `root`. A root that cannot be resolved (it does not
    /// exist) makes every file missing.
    pub fn new(root: impl AsRef<Path>) -> DumpDir {
        let root = root.as_ref().to_path_buf();
        let canonical = root.canonicalize().ok();
        DumpDir {
            #[cfg(target_os = "linux")]
            beneath: canonical.as_deref().and_then(beneath::open_dir),
            root,
            canonical,
        }
    }

    /// The directory as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `relative` (a path inside the dump) resolves, if it stays
    /// inside the dump.
    pub fn resolve(&self, relative: impl AsRef<Path>) -> Result<PathBuf, DumpPathError> {
        let canonical = self.canonical.as_ref().ok_or(DumpPathError::Missing)?;
        let joined = self.root.join(relative.as_ref());
        let resolved = match joined.canonicalize() {
            Ok(resolved) => resolved,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(DumpPathError::Missing)
            }
            // A path through a file (`uploads/x/y` with `x` a file).
            Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(DumpPathError::Missing)
            }
            Err(err) => return Err(DumpPathError::Io(err)),
        };
        if resolved.starts_with(canonical) {
            Ok(resolved)
        } else {
            Err(DumpPathError::Outside)
        }
    }

    /// The metadata of the regular file `relative` resolves to, without
    /// opening it (what a directory walk or a size check needs).
    pub fn metadata(&self, relative: impl AsRef<Path>) -> Result<Metadata, DumpPathError> {
        #[cfg(target_os = "linux")]
        if let Some(meta) = self.beneath_regular(relative.as_ref(), libc::O_PATH) {
            return Ok(meta.1);
        }
        let resolved = self.resolve(relative)?;
        let meta = std::fs::symlink_metadata(&resolved).map_err(not_found_is_missing)?;
        check_regular(&meta)?;
        Ok(meta)
    }

    /// Opens the regular file `relative` resolves to, for reading.
    pub fn open(&self, relative: impl AsRef<Path>) -> Result<File, DumpPathError> {
        #[cfg(target_os = "linux")]
        if let Some((file, _)) =
            self.beneath_regular(relative.as_ref(), libc::O_RDONLY | libc::O_NONBLOCK)
        {
            return Ok(file);
        }
        let resolved = self.resolve(relative)?;
        let file = open_no_follow(&resolved)?;
        let meta = file.metadata().map_err(DumpPathError::Io)?;
        check_regular(&meta)?;
        self.check_opened(&file)?;
        Ok(file)
    }

    /// `relative` opened beneath the dump directory with `flags`, when it
    /// is a regular file there; `None` sends the caller the resolving way.
    #[cfg(target_os = "linux")]
    fn beneath_regular(&self, relative: &Path, flags: libc::c_int) -> Option<(File, Metadata)> {
        let file = beneath::open(self.beneath.as_deref()?, relative, flags)?;
        let meta = file.metadata().ok()?;
        meta.file_type().is_file().then_some((file, meta))
    }

    /// On Linux, the open file's own path must still lie inside the dump.
    #[cfg(target_os = "linux")]
    fn check_opened(&self, file: &File) -> Result<(), DumpPathError> {
        use std::os::fd::AsRawFd;
        let canonical = self.canonical.as_ref().ok_or(DumpPathError::Missing)?;
        match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            Ok(actual) if !actual.starts_with(canonical) => Err(DumpPathError::Outside),
            // No /proc (a sandbox): the resolved path was checked already.
            _ => Ok(()),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn check_opened(&self, _file: &File) -> Result<(), DumpPathError> {
        Ok(())
    }
}

/// `openat2` with `RESOLVE_BENEATH`: the kernel's own confinement.
#[cfg(target_os = "linux")]
mod beneath {
    use std::ffi::CString;
    use std::fs::File;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::Arc;

    /// The directory at `canonical`, opened to resolve paths beneath it.
    pub(super) fn open_dir(canonical: &Path) -> Option<Arc<OwnedFd>> {
        let path = CString::new(canonical.as_os_str().as_bytes()).ok()?;
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: a valid NUL-terminated path; the fd returned is ours.
        let fd = unsafe { libc::open(path.as_ptr(), flags) };
        // SAFETY: a fresh fd, owned by nothing else.
        (fd >= 0).then(|| Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `relative` opened beneath `dir`, following links only while they
    /// stay beneath it (no absolute link, no `..` above it, no `/proc`
    /// magic link); `None` on any failure, whatever its cause.
    pub(super) fn open(dir: &OwnedFd, relative: &Path, flags: libc::c_int) -> Option<File> {
        let path = CString::new(relative.as_os_str().as_bytes()).ok()?;
        // SAFETY: open_how is plain integers; zero is "no flags".
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: a valid directory fd, NUL-terminated path and open_how of
        // the size passed; the fd returned is ours.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        let fd = libc::c_int::try_from(fd).ok().filter(|&fd| fd >= 0)?;
        // SAFETY: a fresh fd, owned by nothing else.
        Some(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

fn not_found_is_missing(err: io::Error) -> DumpPathError {
    if err.kind() == io::ErrorKind::NotFound {
        DumpPathError::Missing
    } else {
        DumpPathError::Io(err)
    }
}

fn check_regular(meta: &Metadata) -> Result<(), DumpPathError> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    Err(DumpPathError::NotRegular(describe(&kind)))
}

/// What a file that is not a regular file is, in a word.
fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
        if kind.is_socket() {
            return "socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "device";
        }
    }
    if kind.is_dir() {
        "directory"
    } else if kind.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Opens without following a final link and without blocking on a FIFO.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> Result<File, DumpPathError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => Ok(file),
        // The resolved path became a link after it was resolved.
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => Err(DumpPathError::Outside),
        Err(err) => Err(not_found_is_missing(err)),
    }
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> Result<File, DumpPathError> {
    File::open(path).map_err(not_found_is_missing)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dump() -> (tempfile::TempDir, tempfile::TempDir, DumpDir) {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("uploads")).unwrap();
        std::fs::write(dir.path().join("uploads/real"), b"bytes").unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dump = DumpDir::new(dir.path());
        (dir, outside, dump)
    }

    /// [`dump`] with three links: `uploads/inside` to a file beside it,
    /// `uploads/out` to the secret outside, `blobs` to the outside folder.
    fn dump_with_links() -> (tempfile::TempDir, tempfile::TempDir, DumpDir) {
        let (dir, outside, dump) = dump();
        symlink("real", dir.path().join("uploads/inside")).unwrap();
        symlink(
            outside.path().join("secret"),
            dir.path().join("uploads/out"),
        )
        .unwrap();
        symlink(outside.path(), dir.path().join("blobs")).unwrap();
        (dir, outside, dump)
    }

    #[test]
    fn links_inside_are_followed_links_outside_refused() {
        let (dir, outside, dump) = dump_with_links();
        assert!(dump.open("uploads/inside").is_ok());
        assert!(matches!(
            dump.open("uploads/out"),
            Err(DumpPathError::Outside)
        ));
        assert!(matches!(
            dump.open("blobs/secret"),
            Err(DumpPathError::Outside)
        ));
        assert!(matches!(
            dump.metadata("blobs/secret"),
            Err(DumpPathError::Outside)
        ));
        assert!(matches!(
            dump.open("uploads/../../x"),
            Err(DumpPathError::Missing | DumpPathError::Outside)
        ));
        // `..` that comes back inside is fine; out of the dump is not.
        let uploads = DumpDir::new(dir.path().join("uploads"));
        assert!(uploads.open("../uploads/real").is_ok());
        std::fs::write(dir.path().join("batch.json"), b"{}").unwrap();
        assert!(matches!(
            uploads.open("../batch.json"),
            Err(DumpPathError::Outside)
        ));
        assert!(matches!(
            dump.open(outside.path().join("secret")),
            Err(DumpPathError::Outside)
        ));
    }

    #[test]
    fn fifos_directories_and_dangling_links_are_refused_without_blocking() {
        let (dir, _outside, dump) = dump();
        let fifo = dir.path().join("tasks.jsonl");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            dump.open("tasks.jsonl"),
            Err(DumpPathError::NotRegular("FIFO"))
        ));
        assert!(matches!(
            dump.open("uploads"),
            Err(DumpPathError::NotRegular("directory"))
        ));
        assert!(matches!(
            dump.open("/dev/null"),
            Err(DumpPathError::Outside)
        ));
        symlink("nowhere", dir.path().join("uploads/dangling")).unwrap();
        assert!(matches!(
            dump.open("uploads/dangling"),
            Err(DumpPathError::Missing)
        ));
        assert!(matches!(
            dump.open("uploads/real/x"),
            Err(DumpPathError::Missing)
        ));
    }

    /// The kernel's way opens what lies beneath the dump and nothing else;
    /// what it leaves to the resolving way (an absolute link back inside)
    /// still opens.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_way_opens_only_beneath_the_dump() {
        let (dir, outside, dump) = dump_with_links();
        let absolute = dump.canonical.clone().unwrap().join("uploads/real");
        symlink(&absolute, dir.path().join("uploads/absolute")).unwrap();
        let root = dump.beneath.as_deref().expect("the dump directory opens");
        let opens = |relative: &str| beneath::open(root, Path::new(relative), libc::O_RDONLY);
        let mut bytes = String::new();
        let mut file = opens("uploads/inside").expect("a link inside");
        io::Read::read_to_string(&mut file, &mut bytes).unwrap();
        assert_eq!(bytes, "bytes");
        for refused in ["uploads/out", "blobs/secret", "../x", "uploads/absolute"] {
            assert!(opens(refused).is_none(), "{refused}");
        }
        assert!(opens(outside.path().join("secret").to_str().unwrap()).is_none());
        // Left to the resolving way, which allows the absolute link inside.
        assert!(dump.open("uploads/absolute").is_ok());
        assert_eq!(dump.metadata("uploads/absolute").unwrap().len(), 5);
        assert_eq!(dump.metadata("uploads/inside").unwrap().len(), 5);
        assert!(matches!(
            dump.metadata("uploads"),
            Err(DumpPathError::NotRegular("directory"))
        ));
    }

    #[test]
    fn refusals_survive_the_blob_source_interface() {
        let err = DumpPathError::Outside.into_io();
        let refused = RefusedBlob::from_io(&err).unwrap();
        assert_eq!(refused.reason, "resolves outside the dump directory");
        let missing = DumpPathError::Missing.into_io();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(RefusedBlob::from_io(&missing).is_none());
    }
}
