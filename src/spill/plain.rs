//! `build --views-only` past the memory budget: the two views merged from
//! their runs, as in an archive past the budget, but written to plain JSON
//! Lines files instead of compressed entries.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::{report_spilling, stream_checked, with_views};
use crate::archive::{self, text::View};
use crate::dump::DumpDir;
use crate::error::Error;
use crate::options::Config;

/// Checks the dump at `root` as a build past the budget does and writes
/// its two views into `dir` (`responses-by-submission.jsonl`,
/// `responses-by-task.jsonl`), the same bytes as the archive's entries.
/// The runs go under the options' temporary directory, or `dir`.
pub(crate) fn write_plain_views(root: &Path, dir: &Path, config: &Config) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = DumpDir::new(root);
    report_spilling(&files, config);
    let temp_parent = config.temp_dir.clone().unwrap_or_else(|| dir.to_path_buf());
    archive::in_pool(config, || {
        stream_checked(&files, &temp_parent, config, |checked| {
            with_views(checked, config, |_, views, _| {
                for (name, view) in [
                    ("responses-by-submission.jsonl", View::BySubmission),
                    ("responses-by-task.jsonl", View::ByTask),
                ] {
                    let path = dir.join(name);
                    let io_error = |e| Error::io(&path, e);
                    let file = File::create(&path).map_err(io_error)?;
                    let mut out = BufWriter::with_capacity(1 << 20, file);
                    out.write_all(&view.prefix()).map_err(io_error)?;
                    views.for_each_window(view, config, &mut |pieces| {
                        config.check_cancelled()?;
                        pieces
                            .iter()
                            .try_for_each(|piece| out.write_all(piece))
                            .map_err(io_error)
                    })?;
                    out.flush().map_err(io_error)?;
                }
                Ok(())
            })
        })
    })?
}
