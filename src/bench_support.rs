//! The engine's stages one at a time, for the criterion benches and the
//! `build --views-only` debug flag that compares the pivot alone with
//! other tools. Not a stable API: hidden from the docs and free to change.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::archive::text::{self, View};
use crate::archive::{self, deflate, entries};
use crate::dump::Dump;
use crate::error::Error;
use crate::model::file_keys::FileKeys;
use crate::model::Records;
use crate::options::ExportOptions;
use crate::pivot::{pivot, ExportCounts};

/// The two JSON Lines views of `records` (`responses-by-submission.jsonl`,
/// `responses-by-task.jsonl`), exactly as the archive holds them, after
/// the same checks as a build; on the options' thread pool.
pub fn views(records: &Records, options: &ExportOptions) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let config = options.freeze()?;
    let file_keys = archive::check(records, &Default::default(), &Default::default())?;
    archive::in_pool(&config, || {
        let pivot = pivot(records, &file_keys, &config);
        (
            entries::responses_by_submission(&pivot),
            entries::responses_by_task(&pivot),
        )
    })
}

/// [`write_views`] for the dump at `root`, within the options' memory
/// budget: a dump that fits is read whole and returned once its views are
/// written (the caller may drop it, or not); a bigger one is streamed
/// through the sorted runs of a build past the budget (under the options'
/// temporary directory, or `dir`), the views merged from them into the
/// same bytes, and `None` is returned.
pub fn write_views_of(
    root: &Path,
    dir: &Path,
    options: &ExportOptions,
) -> Result<Option<Dump>, Error> {
    let config = options.freeze()?;
    if crate::spill::needs_spill(&crate::dump::DumpDir::new(root), &config) {
        crate::spill::write_plain_views(root, dir, &config)?;
        return Ok(None);
    }
    let dump = Dump::open(root)?;
    write_views(&dump, dir, options)?;
    Ok(Some(dump))
}

/// Only the pivot (exclusion, grouping, ordering, file naming) of checked
/// records, returning its counts; on the options' thread pool.
pub fn pivot_only(records: &Records, options: &ExportOptions) -> Result<ExportCounts, Error> {
    let config = options.freeze()?;
    archive::in_pool(&config, || {
        let file_keys = FileKeys::decode(records);
        pivot(records, &file_keys, &config).counts
    })
}

/// Deflates `data` as the archive does (parallel 1 MiB chunks) on the
/// current rayon pool, returning the raw deflate stream.
pub fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    deflate::deflate(data, level, true).pieces.concat()
}

/// Checks the dump and writes its two views as plain files into `dir`: the
/// pivot without the ZIP, what `build --views-only DIR` does. Lines are
/// streamed to the files a window at a time, as the archive writer does.
pub fn write_views(dump: &Dump, dir: &Path, options: &ExportOptions) -> Result<(), Error> {
    let (records, origins, problems) = dump.parts();
    let Some(records) = records else {
        return problems.clone().into_result();
    };
    let config = options.freeze()?;
    let file_keys = archive::check(records, origins, problems)?;
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    archive::in_pool(&config, || {
        let pivot = pivot(records, &file_keys, &config);
        for (name, view) in [
            ("responses-by-submission.jsonl", View::BySubmission),
            ("responses-by-task.jsonl", View::ByTask),
        ] {
            let path = dir.join(name);
            let write = || -> std::io::Result<()> {
                let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
                text::write_plain(view, &pivot, &mut out)?;
                out.flush()
            };
            write().map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    })?
}
