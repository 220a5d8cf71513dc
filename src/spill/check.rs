//! Checking a dump, and verifying an archive against one, within the
//! memory budget: a dump that fits is read whole, as [`Dump::check`] and
//! [`verify::verify_against_dump`] do; a bigger one is streamed through
//! the spill path, the very checks of a build past the budget.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use super::{needs_spill, stream_checked};
use crate::dump::{Dump, DumpDir};
use crate::error::Error;
use crate::options::{Config, ExportOptions};
use crate::verify::{self, ExpectedArchive, Report, VerifyError};

impl Dump {
    /// Checks the dump at `root` against the contract without writing an
    /// archive, within [`ExportOptions::memory_budget`]: every problem
    /// found is one [`Error::Refused`], the same as [`Dump::check`] and
    /// a build would list. A dump past the budget has its responses
    /// streamed into sorted runs (under [`ExportOptions::temp_dir`],
    /// default: the current directory), removed before this returns.
    pub fn check_within(root: impl AsRef<Path>, options: &ExportOptions) -> Result<(), Error> {
        let root = root.as_ref();
        let config = options.freeze()?;
        let files = DumpDir::new(root);
        if !needs_spill(&files, &config) {
            return Dump::open(root)?.check();
        }
        super::report_spilling(&files, &config);
        let temp_parent = temp_parent_of(&config);
        crate::archive::in_pool(&config, || {
            stream_checked(&files, &temp_parent, &config, |_| Ok(()))
        })?
    }

    /// Checks `archive` against the contract and against the dump at
    /// `root` ([`verify::verify_against_dump`]), within
    /// [`ExportOptions::memory_budget`]: a dump past the budget is not
    /// read whole but built, through [`Dump::build`], into an archive in
    /// a temporary directory ([`ExportOptions::temp_dir`], default: the
    /// current directory), which is compared with `archive` an entry and
    /// a line at a time ([`verify::verify_against_built`]). The archive
    /// being verified is still read as [`verify::verify`] reads it: its
    /// text entries whole.
    pub fn verify_archive<R: Read + Seek>(
        root: impl AsRef<Path>,
        archive: R,
        options: &ExportOptions,
    ) -> Result<Report, VerifyError> {
        let root = root.as_ref();
        let config = options.freeze().map_err(VerifyError::Expected)?;
        if !needs_spill(&DumpDir::new(root), &config) {
            let dump = Dump::open(root).map_err(VerifyError::Expected)?;
            return verify::verify_against_dump(archive, &dump);
        }
        let built = BuiltFromDump {
            root: root.to_path_buf(),
            budget: config.memory_budget,
            temp_parent: temp_parent_of(&config),
            threads: config.threads,
        };
        verify::verify_against_built(archive, &built)
    }
}

fn temp_parent_of(config: &Config) -> PathBuf {
    config.temp_dir.clone().unwrap_or_else(|| ".".into())
}

/// The archive a dump directory gives, built within a budget for
/// comparing with.
struct BuiltFromDump {
    root: PathBuf,
    budget: u64,
    temp_parent: PathBuf,
    threads: Option<usize>,
}

impl ExpectedArchive for BuiltFromDump {
    fn build_archive(&self, options: &ExportOptions) -> Result<File, Error> {
        let dir = tempfile::Builder::new()
            .prefix(".batch-export-verify-")
            .tempdir_in(&self.temp_parent)
            .map_err(|e| Error::io(&self.temp_parent, e))?;
        let path = dir.path().join("expected.zip");
        let mut options = options
            .clone()
            .memory_budget(self.budget)
            .temp_dir(dir.path());
        if let Some(threads) = self.threads {
            options = options.threads(threads);
        }
        Dump::build(&self.root, &path, &options)?;
        // Open, the file outlives its name: the directory goes now, and
        // its space when the comparison drops the file.
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        dir.close().map_err(|e| Error::io(&self.temp_parent, e))?;
        Ok(file)
    }
}
