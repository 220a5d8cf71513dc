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
//!   so instead of offering a link that can only fail.
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
    Ok(fixes)
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
