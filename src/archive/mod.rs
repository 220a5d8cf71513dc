//! Writing the archive: the text entries, then the uploads, into one ZIP.
//!
//! # Layout
//!
//! ```text
//! README.md                         quick-start for the batch
//! batch.json                        the batch, its instructions, export metadata
//! responses-by-submission.jsonl     one line per submission
//! responses-by-task.jsonl           one line per task
//! responses.csv                     with `tables`: one row per answer item
//! codebook.csv                      with `tables`: instructions and their options
//! files/<submission_id>_<name>      uploads answers refer to, sorted by name
//!                                   (none with `include_files(false)`)
//! ```
//!
//! Everything that can be refused is checked before the first byte is
//! written, except what only streaming reveals (an upload's real size and
//! SHA-256); then the caller discards the partial archive.

pub(crate) mod deflate;
pub(crate) mod entries;
mod readme;
mod sync_flush;
pub(crate) mod tables;
pub(crate) mod text;
mod uploads;
pub(crate) mod zip;

use std::io::{Seek, Write};

pub use entries::FORMAT_VERSION;

use self::text::View;
use self::zip::{EntryData, Method, ZipWriter};
use crate::blob::BlobSource;
use crate::error::{Error, Problems};
use crate::model::file_keys::FileKeys;
use crate::model::origin::Origins;
use crate::model::Records;
use crate::options::{Config, ProgressEvent};
use crate::pivot::{pivot, ExportCounts, Pivot};
use crate::timestamp::dos_time;
use crate::validate::check_records;

/// What a finished export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The batch exported.
    pub batch_id: String,
    /// The counts written to `batch.json`.
    pub counts: ExportCounts,
    /// Entries in the archive.
    pub entries: u64,
    /// Size of the archive.
    pub archive_bytes: u64,
    /// Size of all entries before compression.
    pub content_bytes: u64,
    /// The `generated_at` written, also the entries' time.
    pub generated_at: String,
}

/// What the steps of one build share.
pub(crate) struct Context<'a> {
    pub(crate) config: &'a Config,
    pub(crate) blobs: &'a dyn BlobSource,
    pub(crate) origins: &'a Origins,
}

/// Checks the records as a whole, refusing with every problem found
/// (including `earlier` ones, found while reading lines). What passes comes
/// with its upload answers' file keys, decoded once for every later stage.
pub(crate) fn check(
    records: &Records,
    origins: &Origins,
    earlier: &Problems,
) -> Result<FileKeys, Error> {
    let file_keys = FileKeys::decode(records);
    let mut problems = earlier.clone();
    problems.extend(crate::model::depth::check_records(records, origins));
    problems.extend(check_records(records, &file_keys, origins));
    problems.into_result().map(|()| file_keys)
}

/// A seekable sink the archive can be written to. Public functions are
/// generic over their sink and hand it here as a trait object, so the
/// writer is compiled once.
pub(crate) trait WriteSeek: Write + Seek + Send {}

impl<T: Write + Seek + Send + ?Sized> WriteSeek for T {}

/// Builds the archive into `out`, on the build's own thread pool.
pub(crate) fn write_archive(
    records: &Records,
    file_keys: &FileKeys,
    origins: &Origins,
    blobs: &dyn BlobSource,
    out: &mut dyn WriteSeek,
    config: &Config,
) -> Result<ExportSummary, Error> {
    let cx = Context {
        config,
        blobs,
        origins,
    };
    in_pool(config, || write_in_pool(records, file_keys, out, &cx))?
}

/// Runs `work` on the build's own rayon pool, sized by the configuration.
pub(crate) fn in_pool<T: Send>(
    config: &Config,
    work: impl FnOnce() -> T + Send,
) -> Result<T, Error> {
    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::InvalidOption {
            option: "threads",
            message: e.to_string(),
        })?;
    Ok(pool.install(work))
}

fn write_in_pool(
    records: &Records,
    file_keys: &FileKeys,
    out: &mut dyn WriteSeek,
    cx: &Context<'_>,
) -> Result<ExportSummary, Error> {
    let pivot = pivot(records, file_keys, cx.config);
    write_pivoted(
        records,
        &pivot,
        &mut InMemory { pivot: &pivot },
        None,
        out,
        cx,
    )
}

/// Where the views' lines come from: the pivot in memory, or (in a build
/// past its memory budget) runs merged from disk.
pub(crate) trait Views {
    /// About the size of `view` in bytes, for progress reports.
    fn estimate(&self, view: View) -> u64;

    /// Writes `view` as the entry `name`; returns its size.
    fn write(
        &mut self,
        zip: &mut ZipWriter<&mut dyn WriteSeek>,
        name: &'static str,
        view: View,
        config: &Config,
    ) -> Result<u64, Error>;
}

/// The views of a pivot in memory.
struct InMemory<'p, 'r> {
    pivot: &'p Pivot<'r>,
}

impl Views for InMemory<'_, '_> {
    fn estimate(&self, view: View) -> u64 {
        text::view_estimate(view, self.pivot)
    }

    fn write(
        &mut self,
        zip: &mut ZipWriter<&mut dyn WriteSeek>,
        name: &'static str,
        view: View,
        config: &Config,
    ) -> Result<u64, Error> {
        // Streamed when a bound of the view's size shows it needs no
        // ZIP64; otherwise built whole, which tells exactly (see `text`).
        match text::view_bound(view, self.pivot) {
            Some(bound) => text::write_view(zip, name, view, self.pivot, bound, config),
            None => write_text(zip, name, &whole_view(view, self.pivot), config),
        }
    }
}

/// Writes the archive of `pivot` (its counts and files; its views come
/// from `views`). `streamed_latest` is the latest time named by responses
/// not in `records`, for the default `generated_at`.
pub(crate) fn write_pivoted(
    records: &Records,
    pivot: &Pivot<'_>,
    views: &mut dyn Views,
    streamed_latest: Option<time::OffsetDateTime>,
    out: &mut dyn WriteSeek,
    cx: &Context<'_>,
) -> Result<ExportSummary, Error> {
    uploads::precheck(&pivot.files, cx)?;
    cx.config.check_cancelled()?;

    let (generated_at, time) = cx.config.generated_at_with(records, streamed_latest);
    let header = header_entries(records, pivot, &generated_at);
    let view_list = views_of(pivot);
    let codebook = pivot
        .tables
        .then(|| (tables::CODEBOOK_CSV, tables::codebook(records, pivot)));
    let upload_bytes: u64 = pivot.files.iter().map(|f| f.upload.size_bytes).sum();
    let header_bytes: u64 = header.iter().map(|(_, t)| t.len() as u64).sum::<u64>()
        + codebook.as_ref().map_or(0, |(_, t)| t.len() as u64);
    // The views count at an estimate of their size: progress only.
    let views_estimate: u64 = view_list.iter().map(|v| views.estimate(v.1)).sum();
    let entries =
        2 + view_list.len() as u64 + u64::from(codebook.is_some()) + pivot.files.len() as u64;
    cx.config.report(ProgressEvent::Writing {
        bytes: header_bytes + views_estimate + upload_bytes,
        entries,
    });

    let mut zip = ZipWriter::new(out, dos_time(time));
    let mut text_bytes = 0;
    for (name, text) in header {
        cx.config.check_cancelled()?;
        text_bytes += write_text(&mut zip, name, &text, cx.config)?;
    }
    for (name, view) in view_list {
        cx.config.check_cancelled()?;
        text_bytes += views.write(&mut zip, name, view, cx.config)?;
    }
    if let Some((name, text)) = codebook {
        cx.config.check_cancelled()?;
        text_bytes += write_text(&mut zip, name, &text, cx.config)?;
    }
    uploads::write_all(&mut zip, &pivot.files, cx)?;
    let (_, archive_bytes) = zip.finish().map_err(Error::Write)?;
    cx.config.report(ProgressEvent::Finished);
    let summary = ExportSummary {
        batch_id: records.batch.id.clone(),
        counts: pivot.counts,
        entries,
        archive_bytes,
        content_bytes: text_bytes + upload_bytes,
        generated_at,
    };
    Ok(summary)
}

/// The two entries before the views: `README.md` and `batch.json`.
fn header_entries(
    records: &Records,
    pivot: &Pivot<'_>,
    generated_at: &str,
) -> [(&'static str, Vec<u8>); 2] {
    let readme = readme::readme(records, pivot, generated_at);
    let batch = entries::batch_json(records, pivot, generated_at);
    [("README.md", readme.into_bytes()), ("batch.json", batch)]
}

/// The entries streamed after the header, in archive order: the two views,
/// then, with tables, `responses.csv`.
fn views_of(pivot: &Pivot<'_>) -> Vec<(&'static str, View)> {
    let mut views = vec![
        ("responses-by-submission.jsonl", View::BySubmission),
        ("responses-by-task.jsonl", View::ByTask),
    ];
    if pivot.tables {
        views.push((tables::RESPONSES_CSV, View::ResponsesCsv));
    }
    views
}

/// One view built whole in memory.
fn whole_view(view: View, pivot: &Pivot<'_>) -> Vec<u8> {
    match view {
        View::BySubmission => entries::responses_by_submission(pivot),
        View::ByTask => entries::responses_by_task(pivot),
        View::ResponsesCsv => tables::responses_csv(pivot),
    }
}

/// The text entries, in archive order, built whole: what `verify`
/// compares an archive against.
pub(crate) fn text_entries(
    records: &Records,
    pivot: &Pivot<'_>,
    generated_at: &str,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut texts = header_entries(records, pivot, generated_at).to_vec();
    for (name, view) in views_of(pivot) {
        texts.push((name, whole_view(view, pivot)));
    }
    if pivot.tables {
        texts.push((tables::CODEBOOK_CSV, tables::codebook(records, pivot)));
    }
    texts
}

/// Writes one text entry built whole and reports it; returns its length.
fn write_text<W: Write + Seek>(
    zip: &mut ZipWriter<W>,
    name: &str,
    text: &[u8],
    config: &Config,
) -> Result<u64, Error> {
    let level = config.level;
    let uncompressed = text.len() as u64;
    let result = if level == 0 {
        let data = EntryData {
            crc32: crc32fast::hash(text),
            compressed: uncompressed,
            uncompressed,
        };
        zip.add_prepared(name, Method::Stored, data, &[text.to_vec()])
    } else {
        let deflated = deflate::deflate(text, level, true);
        let data = EntryData {
            crc32: deflated.crc.finalize(),
            compressed: deflated.compressed,
            uncompressed,
        };
        zip.add_prepared(name, Method::Deflated, data, &deflated.pieces)
    };
    result.map_err(Error::Write)?;
    config.report(ProgressEvent::Advanced {
        bytes: uncompressed,
    });
    Ok(uncompressed)
}
