//! Building a dump too big for the memory budget: its responses are never
//! all in memory.
//!
//! A dump whose records would take more than
//! [`ExportOptions::memory_budget`](crate::ExportOptions::memory_budget) is
//! read in two parts. Everything but `responses.jsonl` is read whole (those
//! files are small beside it). `responses.jsonl` is streamed once: each
//! slice of lines is parsed and checked against the other records in
//! parallel, and every exported response goes, encoded ([`codec`]), into a
//! buffer that is sorted into runs on disk ([`runs`]) whenever it fills its
//! share of the budget: one run in the by-submission order and one in the
//! by-task order. The response ids go into runs of their own, merged after
//! the stream to find every repeated id exactly. Then the archive is written
//! as in memory, each view's lines coming from a k-way merge of its runs a
//! window at a time ([`views`]).
//!
//! The bytes are those of the in-memory build: the runs' keys sort as the
//! pivot sorts, uploads are named in the order the by-submission view meets
//! them, problems are listed in the same order with the same cap, and the
//! views are compressed in the same chunks. The runs live in a temporary
//! directory (`.batch-export-spill-*`, under the output's directory or
//! [`ExportOptions::temp_dir`](crate::ExportOptions::temp_dir)) removed when
//! the build ends, whether it succeeds, fails or is cancelled.

mod check;
mod codec;
mod pass;
mod plain;

pub(crate) use plain::write_plain_views;
mod runs;
mod views;

use std::path::Path;

use crate::dump::{DirBlobSource, Dump, DumpDir, DumpFiles};
use crate::options::{ExportOptions, ProgressEvent};
use crate::output;

use crate::archive::{self, write_pivoted, Context, WriteSeek};
use crate::blob::BlobSource;
use crate::dump::{stream_responses, Partial};
use crate::error::{Error, Problems};
use crate::model::file_keys::FileKeys;
use crate::model::origin::{Origins, RecordFile};
use crate::model::Records;
use crate::options::Config;
use crate::pivot::{name_files, ExportCounts, Lookup, Pivot};
use crate::validate::Resolved;
use crate::ExportSummary;

impl Dump {
    /// Reads the dump at `root` and writes its archive to `path`
    /// atomically, within [`ExportOptions::memory_budget`]: a dump whose
    /// records fit is read whole ([`Dump::open`], then
    /// [`Dump::export_to_path`]); a bigger one has its responses streamed
    /// and spilled to sorted runs in a temporary directory
    /// ([`ExportOptions::temp_dir`], default: beside `path`), removed
    /// however the build ends. The archive is the same byte for byte
    /// either way, and so is a refusal.
    pub fn build(
        root: impl AsRef<Path>,
        path: impl AsRef<Path>,
        options: &ExportOptions,
    ) -> Result<ExportSummary, Error> {
        let root = root.as_ref();
        let (files, blobs) = (DumpDir::new(root), DirBlobSource::new(root));
        build_within(&files, &blobs, path.as_ref(), options, || Dump::open(root))
    }
}

/// [`Dump::build`] for the dump of any `files` (a directory, an
/// object-store prefix) with upload bytes from `blobs`: read whole by
/// `read_whole` when it fits the budget, else streamed from `files`.
pub(crate) fn build_within(
    files: &dyn DumpFiles,
    blobs: &dyn BlobSource,
    path: &Path,
    options: &ExportOptions,
    read_whole: impl FnOnce() -> Result<Dump, Error>,
) -> Result<ExportSummary, Error> {
    let config = options.freeze()?;
    if !needs_spill(files, &config) {
        return read_whole()?.export_to_path_from(blobs, path, options);
    }
    report_spilling(files, &config);
    let temp_parent = match (&config.temp_dir, path.parent()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(parent)) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        (None, _) => ".".into(),
    };
    output::write_atomically(path, |out| {
        archive::in_pool(&config, || {
            stream_checked(files, &temp_parent, &config, |checked| {
                write_checked(checked, blobs, out, &config)
            })
        })?
    })
}

/// Sends [`ProgressEvent::Spilling`] for the dump of `files`.
fn report_spilling(files: &dyn DumpFiles, config: &Config) {
    config.report(ProgressEvent::Spilling {
        estimated_bytes: estimated_memory(files).0,
        budget_bytes: config.memory_budget,
    });
}

/// Tenths of a byte of memory a dump read whole takes per byte of its JSON
/// Lines files: 2.5, from a peak of 550 MB for the 258 MB of a million
/// responses (`gen --submissions 10000`), with a margin.
const IN_MEMORY_TENTHS_PER_BYTE: u64 = 25;

/// Memory a spilled build needs beyond its runs and the small records: read
/// blocks, a slice of parsed lines, a window of responses and its lines,
/// deflate's buffers and the merge's reads.
const FIXED_BYTES: u64 = 96 << 20;

/// The least memory given to the run buffer, however small the budget.
const MIN_RUN_BYTES: u64 = 1 << 20;

/// What reading the JSON Lines files of the dump of `files` whole would
/// take in memory, estimated from their sizes: `(all, all but responses)`.
fn estimated_memory(files: &dyn DumpFiles) -> (u64, u64) {
    let size = |file: RecordFile| files.size_of(file.file_name()).unwrap_or(0);
    let others: u64 = [
        RecordFile::Instructions,
        RecordFile::Tasks,
        RecordFile::Submissions,
        RecordFile::Uploads,
    ]
    .into_iter()
    .map(size)
    .sum();
    let all = others + size(RecordFile::Responses);
    let in_memory = |bytes: u64| bytes.saturating_mul(IN_MEMORY_TENTHS_PER_BYTE) / 10;
    (in_memory(all), in_memory(others))
}

/// True when the dump of `files` would not fit the budget read whole.
pub(crate) fn needs_spill(files: &dyn DumpFiles, config: &Config) -> bool {
    estimated_memory(files).0 > config.memory_budget
}

/// Bytes the run buffer may hold: what the budget leaves beside the small
/// records and the fixed costs, halved again because a sort's indices and
/// the slice being parsed sit beside it.
fn run_bytes(config: &Config, others: u64) -> usize {
    // A small budget (in tests) has small windows too, not all of 96 MB.
    let fixed = FIXED_BYTES.min(config.memory_budget / 4);
    let free = config.memory_budget.saturating_sub(fixed + others);
    usize::try_from((free / 2).max(MIN_RUN_BYTES)).unwrap_or(usize::MAX)
}

/// What streaming the responses of a dump left once every check passed:
/// the other records, and the runs the views are merged from.
pub(crate) struct Checked<'c, 'r> {
    records: &'r Records,
    origins: &'c Origins,
    lookup: &'c Lookup<'r>,
    streamed: pass::Streamed,
    /// The temporary directory of the runs.
    dir: &'c Path,
}

/// Reads the dump of `files` within the budget, streaming its responses
/// into sorted runs in a temporary directory under `temp_parent`, and
/// checks it as a build in memory does (a refusal lists the same problems
/// in the same order); then hands what it left to `then`. The temporary
/// directory is removed when `then` returns, whatever it returns.
pub(crate) fn stream_checked<T>(
    files: &dyn DumpFiles,
    temp_parent: &Path,
    config: &Config,
    then: impl FnOnce(Checked<'_, '_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let read = Partial::open(files)?.finish(Vec::new(), Vec::new());
    let mut line_problems = Problems::default();
    let Some(records) = &read.records else {
        // Refused for its batch.json; the lines are still read, so the
        // refusal lists their problems as a build in memory does.
        stream_responses(files, &mut line_problems, &mut |_| config.check_cancelled())?;
        let mut problems = read.before;
        problems.extend(line_problems);
        problems.extend(read.after);
        return Err(Error::Refused(problems));
    };
    let temp = tempfile::Builder::new()
        .prefix(".batch-export-spill-")
        .tempdir_in(temp_parent)
        .map_err(|e| Error::io(temp_parent, e))?;

    let lookup = Lookup::new(records);
    let mut id_problems = Problems::default();
    let mut upload_id_problems = Problems::default();
    let resolved = Resolved::new(
        records,
        &read.origins,
        &mut id_problems,
        &mut upload_id_problems,
    );
    let limit = run_bytes(config, estimated_memory(files).1);
    let mut pass = pass::Pass::new(&lookup, &resolved, records, config, temp.path(), limit);
    stream_responses(files, &mut line_problems, &mut |slice| pass.take(slice))?;
    let mut streamed = pass.finish()?;

    // In the order a build in memory lists them (see `validate`).
    let mut problems = read.before;
    problems.extend(line_problems);
    problems.extend(read.after);
    problems.extend(id_problems);
    problems.extend(std::mem::take(&mut streamed.duplicates));
    problems.extend(upload_id_problems);
    problems.extend(std::mem::take(&mut streamed.problems));
    problems.into_result()?;

    let checked = Checked {
        records,
        origins: &read.origins,
        lookup: &lookup,
        streamed,
        dir: temp.path(),
    };
    let result = then(checked)?;
    temp.close().map_err(|e| Error::io(temp_parent, e))?;
    Ok(result)
}

/// Writes the archive of a checked dump into `out`.
fn write_checked(
    checked: Checked<'_, '_>,
    blobs: &dyn BlobSource,
    out: &mut dyn WriteSeek,
    config: &Config,
) -> Result<ExportSummary, Error> {
    let (records, origins) = (checked.records, checked.origins);
    with_views(checked, config, |pivot, views, latest| {
        let cx = Context {
            config,
            blobs,
            origins,
        };
        write_pivoted(records, pivot, views, latest, out, &cx)
    })
}

/// The pivot of a checked dump (counts, upload names, pseudonyms; no
/// responses) and its views merged from their runs, handed to `then` with
/// the latest time the streamed responses name.
fn with_views<T>(
    checked: Checked<'_, '_>,
    config: &Config,
    then: impl FnOnce(
        &Pivot<'_>,
        &mut views::MergedViews<'_, '_>,
        Option<time::OffsetDateTime>,
    ) -> Result<T, Error>,
) -> Result<T, Error> {
    let Checked {
        records,
        origins: _,
        lookup,
        streamed,
        dir,
    } = checked;
    let named = if config.include_files {
        name_files(records, streamed.first_uses.iter())
    } else {
        Default::default()
    };
    let counts = ExportCounts {
        files: named.1.len() as u64,
        codebook_csv_rows: config.tables.then(|| crate::pivot::codebook_rows(records)),
        ..streamed.counts
    };
    let no_keys = FileKeys::default();
    let pseudonyms = lookup.pseudonyms(config);
    let pivot = Pivot::spilled(records, &no_keys, config, pseudonyms, named, counts);
    let mut views = views::MergedViews {
        pivot: &pivot,
        lookup,
        runs: streamed.runs,
        dir,
        estimate: streamed.estimate,
    };
    then(&pivot, &mut views, streamed.latest)
}
