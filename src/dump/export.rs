//! Checking, exporting and verifying against a dump read from a directory.

use std::io::{Seek, Write};
use std::path::Path;

use super::Dump;
use crate::archive::{self, ExportSummary};
use crate::blob::BlobSource;
use crate::error::Error;
use crate::export::{export_records, export_records_to_path};
use crate::model::Records;
use crate::options::ExportOptions;
use crate::verify::Expected;

impl Dump {
    /// Checks the dump against the contract without writing anything,
    /// returning every problem found as one [`Error::Refused`].
    pub fn check(&self) -> Result<(), Error> {
        let (records, origins, problems) = self.parts();
        match records {
            Some(records) => archive::check(records, origins, problems).map(drop),
            None => problems.clone().into_result(),
        }
    }

    /// Writes the dump's archive to `path` atomically.
    pub fn export_to_path(
        &self,
        path: impl AsRef<Path>,
        options: &ExportOptions,
    ) -> Result<ExportSummary, Error> {
        self.export_to_path_from(&self.blobs(), path, options)
    }

    /// Writes the dump's archive to `path` atomically, with upload bytes
    /// from `blobs` instead of the dump directory (a dump read with
    /// [`Dump::read`] from elsewhere).
    pub fn export_to_path_from(
        &self,
        blobs: &dyn BlobSource,
        path: impl AsRef<Path>,
        options: &ExportOptions,
    ) -> Result<ExportSummary, Error> {
        let (records, origins, problems) = self.parts();
        // Without records, batch.json was unusable, which is a problem listed.
        let Some(records) = records else {
            return Err(Error::Refused(problems.clone()));
        };
        export_records_to_path(records, origins, problems, blobs, path.as_ref(), options)
    }

    /// Writes the dump's archive to `out`; on error `out` must be discarded.
    pub fn export<W: Write + Seek + Send>(
        &self,
        out: W,
        options: &ExportOptions,
    ) -> Result<ExportSummary, Error> {
        self.export_from(&self.blobs(), out, options)
    }

    /// Writes the dump's archive to `out` with upload bytes from `blobs`;
    /// on error `out` must be discarded.
    pub fn export_from<W: Write + Seek + Send>(
        &self,
        blobs: &dyn BlobSource,
        out: W,
        options: &ExportOptions,
    ) -> Result<ExportSummary, Error> {
        let (records, origins, problems) = self.parts();
        // Without records, batch.json was unusable, which is a problem listed.
        let Some(records) = records else {
            return Err(Error::Refused(problems.clone()));
        };
        export_records(records, origins, problems, blobs, out, options)
    }
}

impl Expected for Dump {
    fn checked_records(&self) -> Result<&Records, Error> {
        self.check()?;
        let (records, _, problems) = self.parts();
        // A dump without records has a problem listed, so its check failed.
        records.ok_or_else(|| Error::Refused(problems.clone()))
    }

    fn upload_bytes(&self) -> Box<dyn BlobSource + '_> {
        Box::new(self.blobs())
    }
}
