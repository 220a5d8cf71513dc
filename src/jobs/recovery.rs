//! Putting the state folder back in order at start, after a crash, a
//! `kill -9` or an operator's mistake.
//!
//! Before any worker starts, [`Jobs::open`](super::Jobs::open):
//!
//! - says so when the job store was empty or missing while `exports/`
//!   holds archives (a store truncated to 0 bytes opens as a new, empty
//!   database: without this, every archive would be silently orphaned);
//! - moves each archive that no job refers to into `orphaned/` (kept, not
//!   deleted: it cannot be served without its job, but an operator may
//!   still want it);
//! - marks failed each complete job whose archive is gone, so a poll says
//!   so instead of offering a link that can only fail;
//! - removes the `.partial` temporary files of builds that were killed
//!   ([`crate::remove_stale_partials`]: only those whose lock nobody holds,
//!   so a build of another process writing into the same folder keeps its
//!   file);
//! - removes the attempt files (`.<id>.attempt-<n>.zip`, a finished build
//!   not yet published) that no live lease can own any more: the job is
//!   gone, no longer generating, or already at a later attempt. The file of
//!   a generating job's current attempt is kept, since its worker may be
//!   alive in another process (and the store's fencing lets only that
//!   attempt publish); once a worker takes the job over, the older
//!   attempts' files go (`remove_superseded_attempts`).
//!
//! Each fix is one [`Recovery`]; the binary logs one line per fix.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::store::JobStore;
use super::{JobError, JobStatus};

/// The reason given to a complete job whose archive is gone.
pub const LOST_ARCHIVE: &str =
    "the archive was removed from the service's state folder; request the export again";

/// One thing found wrong with the state folder at start, and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// The job store was missing or empty while archives were present:
    /// their jobs are lost (the archives are moved aside, see below).
    EmptyStore {
        /// The store file.
        store: PathBuf,
        /// How many archives `exports/` held.
        archives: usize,
    },
    /// An archive no job refers to was moved aside.
    OrphanArchive {
        /// Where it was.
        from: PathBuf,
        /// Where it is now.
        to: PathBuf,
    },
    /// A complete job's archive was missing; the job is now failed.
    LostArchive {
        /// The job.
        export_id: String,
    },
    /// The temporary file of a build that died was removed.
    StalePartial {
        /// The file removed.
        path: PathBuf,
    },
    /// The finished but unpublished archive of an attempt no live lease
    /// owns (a worker killed between its build and publishing) was removed.
    StaleAttempt {
        /// The file removed.
        path: PathBuf,
        /// Why no lease owns it.
        why: StaleWhy,
    },
    /// Leftovers could not be looked through or removed; they stay where
    /// they are (start-up goes on, as a build does).
    LeftoversKept {
        /// The folder or file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Why an attempt file belongs to no live lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleWhy {
    /// The store has no job of that id.
    NoJob,
    /// The job is complete or failed.
    Finished(JobStatus),
    /// The job was taken over: it is at this later attempt.
    Superseded(u32),
}

impl fmt::Display for StaleWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleWhy::NoJob => f.write_str("no job has that id"),
            StaleWhy::Finished(status) => write!(f, "its job is {}", status.as_str()),
            StaleWhy::Superseded(attempt) => write!(f, "its job is at attempt {attempt}"),
        }
    }
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovery::EmptyStore { store, archives } => write!(
                f,
                "the job store {} was empty or missing, but {archives} archives were left from \
                 earlier jobs: the store was lost or truncated, and those jobs with it",
                store.display()
            ),
            Recovery::OrphanArchive { from, to } => write!(
                f,
                "archive {} belongs to no job: moved to {}",
                from.display(),
                to.display()
            ),
            Recovery::LostArchive { export_id } => write!(
                f,
                "export {export_id} was complete but its archive is gone: marked failed"
            ),
            Recovery::StalePartial { path } => {
                write!(f, "removed stale partial {}", path.display())
            }
            Recovery::StaleAttempt { path, why } => write!(
                f,
                "removed stale attempt file {} ({why}): no live lease owns it",
                path.display()
            ),
            Recovery::LeftoversKept { path, reason } => write!(
                f,
                "could not remove leftovers at {}: {reason}; they stay",
                path.display()
            ),
        }
    }
}

/// Whether the store file at `path` is missing or empty, looked at before
/// SQLite opens (and so fills) it.
pub(crate) fn store_is_empty(path: &Path) -> bool {
    fs::metadata(path).map_or(true, |meta| meta.len() == 0)
}

/// Reconciles `exports/` (under `state_dir`) with the store; see the
/// module docs. `empty_store` is the SQLite file when [`store_is_empty`]
/// found it missing or empty before it was opened.
pub(crate) fn reconcile(
    state_dir: &Path,
    exports: &Path,
    store: &dyn JobStore,
    empty_store: Option<PathBuf>,
    now: OffsetDateTime,
) -> Result<Vec<Recovery>, JobError> {
    let mut fixes = Vec::new();
    let archives = archives_in(exports)?;
    if let Some(store) = empty_store.filter(|_| !archives.is_empty()) {
        fixes.push(Recovery::EmptyStore {
            store,
            archives: archives.len(),
        });
    }
    let jobs = store.statuses()?;
    let known: HashSet<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
    for (id, from) in &archives {
        // A generating job may already have its archive (the process died
        // between the rename and recording it): its rebuild replaces it.
        if known.contains(id.as_str()) {
            continue;
        }
        let orphaned = state_dir.join("orphaned");
        fs::create_dir_all(&orphaned).map_err(|e| JobError::io(&orphaned, e))?;
        let to = orphaned.join(format!("{id}.zip"));
        fs::rename(from, &to).map_err(|e| JobError::io(from, e))?;
        fixes.push(Recovery::OrphanArchive {
            from: from.clone(),
            to,
        });
    }
    let present: HashSet<&str> = archives.iter().map(|(id, _)| id.as_str()).collect();
    for (id, status) in &jobs {
        if *status == JobStatus::Complete && !present.contains(id.as_str()) {
            store.lose(id, now, LOST_ARCHIVE)?;
            fixes.push(Recovery::LostArchive {
                export_id: id.clone(),
            });
        }
    }
    remove_leftovers(exports, store, &mut fixes)?;
    Ok(fixes)
}

/// Cleans the staging folder of archives bound for S3: the temporary files
/// of killed builds and the attempt files no live lease owns, as
/// [`reconcile`] does for a local archive folder (the objects themselves
/// are not reconciled: see docs/deploy.md).
pub(crate) fn reconcile_staging(
    staging: &Path,
    store: &dyn JobStore,
) -> Result<Vec<Recovery>, JobError> {
    let mut fixes = Vec::new();
    remove_leftovers(staging, store, &mut fixes)?;
    Ok(fixes)
}

/// Removes the temporary files of killed builds and the attempt files no
/// live lease owns, one [`Recovery`] each.
fn remove_leftovers(
    exports: &Path,
    store: &dyn JobStore,
    fixes: &mut Vec<Recovery>,
) -> Result<(), JobError> {
    match crate::remove_stale_partials(exports) {
        Ok(removed) => {
            fixes.extend(
                removed
                    .into_iter()
                    .map(|path| Recovery::StalePartial { path }),
            );
        }
        Err(err) => fixes.push(Recovery::LeftoversKept {
            path: exports.to_path_buf(),
            reason: crate::error::display_chain(&err),
        }),
    }
    // The files are listed before their jobs are read: an attempt file
    // exists only once its job was claimed, so a job it belongs to is
    // already in the store when it is looked up.
    for (path, export_id, attempt) in attempt_files(exports)? {
        let why = match store.get(&export_id)? {
            None => StaleWhy::NoJob,
            Some(job) if job.status != JobStatus::Generating => StaleWhy::Finished(job.status),
            Some(job) if job.attempts > attempt => StaleWhy::Superseded(job.attempts),
            // The current attempt: its worker may be alive elsewhere.
            Some(_) => continue,
        };
        match remove_regular_file(&path) {
            Ok(true) => fixes.push(Recovery::StaleAttempt { path, why }),
            Ok(false) => {}
            Err(e) => fixes.push(Recovery::LeftoversKept {
                path,
                reason: e.to_string(),
            }),
        }
    }
    Ok(())
}

/// Removes the attempt files of `export_id` older than `attempt`, which
/// the worker holding `attempt` just claimed: the store's fencing keeps
/// their workers, dead or alive, from ever publishing them. Returns the
/// files removed; a file that cannot be removed is left for the next
/// start-up.
pub(super) fn remove_superseded_attempts(
    exports: &Path,
    export_id: &str,
    attempt: u32,
) -> Vec<PathBuf> {
    let Ok(files) = attempt_files(exports) else {
        return Vec::new();
    };
    files
        .into_iter()
        .filter(|(_, id, n)| id == export_id && *n < attempt)
        .filter_map(|(path, _, _)| remove_regular_file(&path).ok()?.then_some(path))
        .collect()
}

/// The attempt files of `exports/`: path, export id and attempt number,
/// in byte order of their names.
fn attempt_files(exports: &Path) -> Result<Vec<(PathBuf, String, u32)>, JobError> {
    let entries = fs::read_dir(exports).map_err(|e| JobError::io(exports, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JobError::io(exports, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((id, attempt)) = parse_attempt_name(&name) {
            found.push((entry.path(), id.to_owned(), attempt));
        }
    }
    found.sort();
    Ok(found)
}

/// `.<id>.attempt-<n>.zip`, as [`super::engine`] names an attempt's file,
/// split into the id and `n`.
fn parse_attempt_name(name: &str) -> Option<(&str, u32)> {
    let inner = name.strip_prefix('.')?.strip_suffix(".zip")?;
    let (id, attempt) = inner.rsplit_once(".attempt-")?;
    let digits = !attempt.is_empty() && attempt.bytes().all(|b| b.is_ascii_digit());
    if id.is_empty() || id.starts_with('.') || !digits {
        return None;
    }
    Some((id, attempt.parse().ok()?))
}

/// Removes `path` if it is a regular file (never what a link points to);
/// false when it is something else or already gone.
fn remove_regular_file(path: &Path) -> std::io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The `<id>.zip` files of `exports/`, by id, in byte order.
fn archives_in(exports: &Path) -> Result<Vec<(String, PathBuf)>, JobError> {
    let entries = fs::read_dir(exports).map_err(|e| JobError::io(exports, e))?;
    let mut archives = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JobError::io(exports, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        // Temporary files start with a dot; anything else is not ours.
        if let Some(id) = name.strip_suffix(".zip").filter(|_| is_file) {
            if !id.starts_with('.') {
                archives.push((id.to_owned(), entry.path()));
            }
        }
    }
    archives.sort();
    Ok(archives)
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::jobs::store::{Claim, Decision, Lease, NewRequest, SqliteStore};
    use crate::jobs::Job;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + seconds).unwrap()
    }

    /// A store with one generating job per id, each claimed `attempts` times.
    fn store_with(dir: &Path, jobs: &[(&str, u32)]) -> SqliteStore {
        let store = SqliteStore::open(&dir.join("jobs.sqlite3")).unwrap();
        for (n, (id, attempts)) in jobs.iter().enumerate() {
            let job = Job {
                id: (*id).to_owned(),
                batch_id: format!("b-{n}"),
                filter: crate::ExportFilter::default(),
                status: JobStatus::Generating,
                created_at: at(0),
                finished_at: None,
                fingerprint: "f".to_owned(),
                dump_dir: "d".into(),
                error: None,
                size: None,
                attempts: 0,
                options: crate::jobs::ArchiveOptions::default(),
            };
            let request = NewRequest {
                job: &job,
                reuse_since: Some(at(0)),
                cap: 10,
            };
            assert_eq!(
                store.request(&request, &|_| true).unwrap(),
                Decision::Inserted
            );
            for attempt in 1..=*attempts {
                // Earlier leases expire (their worker was killed); the
                // last one is live.
                let now = at(i64::from(attempt) * 10);
                let until = if attempt == *attempts {
                    at(1_000_000)
                } else {
                    now
                };
                match store.claim("w", now, until, 10).unwrap() {
                    Claim::Leased(job, _) => assert_eq!(job.id, *id),
                    other => panic!("{other:?}"),
                }
            }
        }
        store
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn attempt_names_are_recognised_exactly() {
        assert_eq!(parse_attempt_name(".ab-1.attempt-3.zip"), Some(("ab-1", 3)));
        assert_eq!(parse_attempt_name("ab-1.attempt-3.zip"), None);
        assert_eq!(parse_attempt_name(".ab-1.attempt-.zip"), None);
        assert_eq!(parse_attempt_name(".ab-1.attempt-3x.zip"), None);
        assert_eq!(parse_attempt_name("..attempt-3.zip"), None);
        assert_eq!(
            parse_attempt_name(".ab-1.attempt-3.zip.Ab12Cd.partial"),
            None
        );
        assert_eq!(parse_attempt_name(".ab-1.zip"), None);
    }

    #[test]
    fn start_up_removes_stale_partials_but_not_one_a_live_build_holds() {
        let state = tempfile::tempdir().unwrap();
        let exports = state.path().join("exports");
        fs::create_dir(&exports).unwrap();
        let stale = exports.join(".j1.attempt-1.zip.AAAAAA.partial");
        let live = exports.join(".j2.attempt-1.zip.BBBBBB.partial");
        fs::write(&stale, b"left by kill -9").unwrap();
        fs::write(&live, b"being written").unwrap();
        // Another process's build holds its file's lock (a second open
        // file description conflicts as another process's would).
        let holder = File::open(&live).unwrap();
        // SAFETY: flock on a descriptor we own.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&holder),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        assert_eq!(locked, 0);
        let store = store_with(state.path(), &[]);

        let fixes = reconcile(state.path(), &exports, &store, None, at(100)).unwrap();
        assert_eq!(
            fixes,
            vec![Recovery::StalePartial {
                path: stale.clone()
            }]
        );
        assert_eq!(
            fixes[0].to_string(),
            format!("removed stale partial {}", stale.display())
        );
        assert!(!stale.exists());
        assert!(live.exists());
        drop(holder);
    }

    #[test]
    fn start_up_cleans_the_staging_folder_of_archives_bound_for_s3() {
        let state = tempfile::tempdir().unwrap();
        let staging = state.path().join("staging");
        fs::create_dir(&staging).unwrap();
        let store = store_with(state.path(), &[("current", 1)]);
        for name in [".current.attempt-1.zip", ".nobody.attempt-2.zip"] {
            fs::write(staging.join(name), b"built, never uploaded").unwrap();
        }
        let fixes = reconcile_staging(&staging, &store).unwrap();
        assert_eq!(
            fixes,
            vec![Recovery::StaleAttempt {
                path: staging.join(".nobody.attempt-2.zip"),
                why: StaleWhy::NoJob,
            }]
        );
        assert!(staging.join(".current.attempt-1.zip").exists());
        assert!(!staging.join(".nobody.attempt-2.zip").exists());
    }

    #[test]
    fn start_up_removes_attempt_files_no_live_lease_owns() {
        let state = tempfile::tempdir().unwrap();
        let exports = state.path().join("exports");
        fs::create_dir(&exports).unwrap();
        // "taken" was claimed twice (its first worker was killed), "done"
        // is complete, "current" is being built by a worker that may be
        // alive in another process.
        let store = store_with(state.path(), &[("taken", 2), ("done", 1), ("current", 1)]);
        let lease = Lease {
            export_id: "done".to_owned(),
            owner: "w".to_owned(),
            attempt: 1,
        };
        assert!(store.complete(&lease, at(50), 3, &mut || Ok(())).unwrap());
        fs::write(exports.join("done.zip"), b"zip").unwrap();
        for name in [
            ".taken.attempt-1.zip",
            ".taken.attempt-2.zip",
            ".done.attempt-1.zip",
            ".current.attempt-1.zip",
            ".nobody.attempt-4.zip",
        ] {
            fs::write(exports.join(name), b"built, never published").unwrap();
        }
        // A link named like one is not followed, nor removed.
        let target = state.path().join("precious");
        fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, exports.join(".linked.attempt-1.zip")).unwrap();

        let fixes = reconcile(state.path(), &exports, &store, None, at(100)).unwrap();
        let stale = |name: &str, why| Recovery::StaleAttempt {
            path: exports.join(name),
            why,
        };
        assert_eq!(
            fixes,
            vec![
                stale(
                    ".done.attempt-1.zip",
                    StaleWhy::Finished(JobStatus::Complete)
                ),
                stale(".nobody.attempt-4.zip", StaleWhy::NoJob),
                stale(".taken.attempt-1.zip", StaleWhy::Superseded(2)),
            ]
        );
        assert!(fixes[2]
            .to_string()
            .ends_with(".taken.attempt-1.zip (its job is at attempt 2): no live lease owns it"));
        assert_eq!(
            names(&exports),
            [
                ".current.attempt-1.zip",
                ".linked.attempt-1.zip",
                ".taken.attempt-2.zip",
                "done.zip"
            ]
        );
        assert!(target.exists());
    }

    #[test]
    fn a_takeover_removes_the_earlier_attempts_of_its_job_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".a.attempt-1.zip",
            ".a.attempt-2.zip",
            ".a.attempt-3.zip",
            ".b.attempt-1.zip",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let removed = remove_superseded_attempts(dir.path(), "a", 3);
        assert_eq!(
            removed,
            [
                dir.path().join(".a.attempt-1.zip"),
                dir.path().join(".a.attempt-2.zip")
            ]
        );
        assert_eq!(names(dir.path()), [".a.attempt-3.zip", ".b.attempt-1.zip"]);
    }
}
