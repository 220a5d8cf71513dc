//! The export functions: records checked, then written to a writer or
//! atomically to a path. A dump's methods end here too, with the origins and
//! line problems of the dump they read.

use std::io::{Seek, Write};
use std::path::Path;

use crate::archive::{self, ExportSummary};
use crate::blob::BlobSource;
use crate::error::{Error, Problems};
use crate::model::origin::Origins;
use crate::model::Records;
use crate::options::ExportOptions;
use crate::output;

/// Checks `records` and writes their archive to `out`.
///
/// On error `out` holds a partial archive that must be discarded; use
/// [`export_to_path`] to have that done for you.
pub fn export<W: Write + Seek + Send>(
    records: &Records,
    blobs: &dyn BlobSource,
    out: W,
    options: &ExportOptions,
) -> Result<ExportSummary, Error> {
    let origins = Origins::positional();
    export_records(records, &origins, &Problems::default(), blobs, out, options)
}

/// Checks `records` and writes their archive to `path`, atomically: on any
/// error nothing is left at `path` nor beside it.
pub fn export_to_path(
    records: &Records,
    blobs: &dyn BlobSource,
    path: impl AsRef<Path>,
    options: &ExportOptions,
) -> Result<ExportSummary, Error> {
    let origins = Origins::positional();
    export_records_to_path(
        records,
        &origins,
        &Problems::default(),
        blobs,
        path.as_ref(),
        options,
    )
}

pub(crate) fn export_records<W: Write + Seek + Send>(
    records: &Records,
    origins: &Origins,
    earlier: &Problems,
    blobs: &dyn BlobSource,
    out: W,
    options: &ExportOptions,
) -> Result<ExportSummary, Error> {
    let config = options.freeze()?;
    let file_keys = archive::check(records, origins, earlier)?;
    let mut out = out;
    archive::write_archive(records, &file_keys, origins, blobs, &mut out, &config)
}

pub(crate) fn export_records_to_path(
    records: &Records,
    origins: &Origins,
    earlier: &Problems,
    blobs: &dyn BlobSource,
    path: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, Error> {
    let config = options.freeze()?;
    let file_keys = archive::check(records, origins, earlier)?;
    output::write_atomically(path, |file| {
        archive::write_archive(records, &file_keys, origins, blobs, file, &config)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::MemoryBlobSource;
    use crate::model::{Batch, RawJson, Task, MAX_JSON_DEPTH};

    /// JSON nesting exactly `levels` deep: lists around a number.
    fn nested(levels: usize) -> RawJson {
        RawJson::parse(&format!("{}1{}", "[".repeat(levels), "]".repeat(levels))).unwrap()
    }

    #[test]
    fn the_library_export_refuses_records_a_dump_could_not_carry() {
        // Records that pass every other check: only the depth is wrong.
        let mut records = Records::new(Batch::new("b-1", "B", "ws-1"));
        records.tasks.push(Task {
            id: "t-1".into(),
            datapoint: Some(nested(MAX_JSON_DEPTH)),
            ..Task::default()
        });
        let blobs = MemoryBlobSource::new();
        let options = ExportOptions::new();
        let out = std::io::Cursor::new(Vec::new());
        let err = export(&records, &blobs, out, &options).unwrap_err();
        assert!(err.is_refusal(), "{err}");
        let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            ["tasks.jsonl:1: field `datapoint`: nested deeper than 64"]
        );

        records.tasks[0].datapoint = Some(nested(MAX_JSON_DEPTH - 1));
        let out = std::io::Cursor::new(Vec::new());
        export(&records, &blobs, out, &options).unwrap();
    }
}
