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

mod codec;
mod pass;
mod runs;
mod views;

use std::path::Path;

use crate::dump::{DirBlobSource, Dump, DumpDir};
use crate::options::{ExportOptions, ProgressEvent};
use crate::output;

use crate::archive::{self, write_pivoted, Context, WriteSeek};
use crate::blob::BlobSource;
use crate::dump::{stream_responses, Partial};
use crate::error::{Error, Problems};
use crate::model::file_keys::FileKeys;
use crate::model::origin::RecordFile;
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
        let (root, path) = (root.as_ref(), path.as_ref());
        let config = options.freeze()?;
        if !needs_spill(root, &config) {
            return Dump::open(root)?.export_to_path(path, options);
        }
        config.report(ProgressEvent::Spilling {
            estimated_bytes: estimated_memory(root).0,
            budget_bytes: config.memory_budget,
        });
        let temp_parent = match (&config.temp_dir, path.parent()) {
            (Some(dir), _) => dir.clone(),
            (None, Some(parent)) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            (None, _) => ".".into(),
        };
        let blobs = DirBlobSource::new(root);
        output::write_atomically(path, |file| {
            build(root, &temp_parent, &blobs, file, &config)
        })
    }
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

/// What reading the JSON Lines files of the dump at `root` whole would
/// take in memory, estimated from their sizes: `(all, all but responses)`.
fn estimated_memory(root: &Path) -> (u64, u64) {
    let size =
        |file: RecordFile| std::fs::metadata(root.join(file.file_name())).map_or(0, |m| m.len());
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

/// True when the dump at `root` would not fit the budget read whole.
pub(crate) fn needs_spill(root: &Path, config: &Config) -> bool {
    estimated_memory(root).0 > config.memory_budget
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

/// Builds the archive of the dump at `root` into `out`, streaming its
/// responses through sorted runs in a temporary directory under `temp_parent`.
pub(crate) fn build(
    root: &Path,
    temp_parent: &Path,
    blobs: &dyn BlobSource,
    out: &mut dyn WriteSeek,
    config: &Config,
) -> Result<ExportSummary, Error> {
    archive::in_pool(config, || {
        build_in_pool(root, temp_parent, blobs, out, config)
    })?
}

fn build_in_pool(
    root: &Path,
    temp_parent: &Path,
    blobs: &dyn BlobSource,
    out: &mut dyn WriteSeek,
    config: &Config,
) -> Result<ExportSummary, Error> {
    let read = Partial::open(&DumpDir::new(root))?.finish(Vec::new(), Vec::new());
    let mut line_problems = Problems::default();
    let Some(records) = &read.records else {
        // Refused for its batch.json; the lines are still read, so the
        // refusal lists their problems as a build in memory does.
        stream_responses(root, &mut line_problems, &mut |_| config.check_cancelled())?;
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
    let limit = run_bytes(config, estimated_memory(root).1);
    let mut pass = pass::Pass::new(&lookup, &resolved, records, config, temp.path(), limit);
    stream_responses(root, &mut line_problems, &mut |slice| pass.take(slice))?;
    let streamed = pass.finish()?;

    // In the order a build in memory lists them (see `validate`).
    let mut problems = read.before;
    problems.extend(line_problems);
    problems.extend(read.after);
    problems.extend(id_problems);
    problems.extend(streamed.duplicates);
    problems.extend(upload_id_problems);
    problems.extend(streamed.problems);
    problems.into_result()?;

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
        lookup: &lookup,
        runs: streamed.runs,
        dir: temp.path(),
        estimate: streamed.estimate,
    };
    let cx = Context {
        config,
        blobs,
        origins: &read.origins,
    };
    let summary = write_pivoted(records, &pivot, &mut views, streamed.latest, out, &cx)?;
    temp.close().map_err(|e| Error::io(temp_parent, e))?;
    Ok(summary)
}
