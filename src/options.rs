//! Options of an export: a builder that freezes into the private
//! configuration the worker reads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;

use crate::error::Error;
pub use crate::filter::ExportFilter;
use crate::filter::Window;
use crate::model::Records;
use crate::pseudonym::Pseudonymiser;
use crate::timestamp::{latest_instant, parse_rfc3339, utc_rfc3339, EPOCH_1980};

/// Something the caller wants to hear about while an export is built. The
/// binary draws a progress bar from these; the library never prints.
pub trait Progress: Send + Sync {
    /// Called as the build moves on.
    fn event(&self, event: ProgressEvent);
}

/// A step of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// The dump's records would take about `estimated_bytes` read whole,
    /// past the memory budget of `budget_bytes`: the build spills its
    /// responses to sorted runs on disk (sent once, before any other event).
    Spilling {
        /// What reading the dump whole would take, estimated from its size.
        estimated_bytes: u64,
        /// The memory budget.
        budget_bytes: u64,
    },
    /// Records were checked and pivoted; `bytes` of entry data will be written.
    Writing {
        /// Uncompressed bytes of all entries together.
        bytes: u64,
        /// How many entries the archive will hold.
        entries: u64,
    },
    /// `bytes` more uncompressed bytes were written.
    Advanced {
        /// Bytes since the previous event.
        bytes: u64,
    },
    /// The archive is complete.
    Finished,
}

/// Options of an export. Every setter documents its default.
#[derive(Clone, Default)]
pub struct ExportOptions {
    generated_at: Option<String>,
    threads: Option<usize>,
    level: Option<u32>,
    filter: ExportFilter,
    progress: Option<Arc<dyn Progress>>,
    cancel: Option<Arc<AtomicBool>>,
    tables: bool,
    /// `None` is the default, `true`.
    include_files: Option<bool>,
    /// The pseudonymisation key; never printed.
    pseudonym_key: Option<Arc<[u8]>>,
    /// `None` is the default, [`DEFAULT_MEMORY_BUDGET`].
    memory_budget: Option<u64>,
    temp_dir: Option<PathBuf>,
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("generated_at", &self.generated_at)
            .field("threads", &self.threads)
            .field("level", &self.level)
            .field("filter", &self.filter)
            .field("tables", &self.tables)
            .field("include_files", &self.include_files.unwrap_or(true))
            // Only whether there is a key: the key itself never reaches a log.
            .field("pseudonymise", &self.pseudonym_key.is_some())
            .field("memory_budget", &self.memory_budget_bytes())
            .field("temp_dir", &self.temp_dir)
            .finish_non_exhaustive()
    }
}

/// The deflate level used when none is set: see BENCHMARKS.md for why.
pub const DEFAULT_LEVEL: u32 = 1;

/// The memory budget used when none is set: 1 GiB, under which ordinary
/// batches (up to about 1.5 million responses) are built in memory.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;

/// The smallest memory budget accepted: below it the fixed costs of a
/// build (read blocks, merge buffers, a window of lines) alone exceed it.
pub const MIN_MEMORY_BUDGET: u64 = 16 << 20;

/// Parses a memory size as the command line and the service take it: a
/// whole number of bytes, or one with a binary suffix `K`, `M`, `G` or `T`
/// (`400M` is 400 MiB, `2G` is 2 GiB; `KiB`/`MB`-style spellings and a
/// lowercase letter are accepted too). `None` for anything else.
pub fn parse_memory_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_uppercase();
    // `M`, `MB` and `MiB` all mean MiB; a lone `B` is bytes.
    let letter = unit
        .strip_suffix("IB")
        .filter(|letter| !letter.is_empty())
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match letter {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

impl ExportOptions {
    /// Default options.
    pub fn new() -> ExportOptions {
        ExportOptions::default()
    }

    /// The archive's `generated_at` and entry times, RFC 3339. Default: the
    /// latest `created_at`/`started_at`/`completed_at` of the records, or
    /// 1980-01-01T00:00:00Z.
    pub fn generated_at(mut self, rfc3339: impl Into<String>) -> ExportOptions {
        self.generated_at = Some(rfc3339.into());
        self
    }

    /// Worker threads of the build's own pool. Default: one per core.
    /// The archive is byte-identical whatever the count.
    pub fn threads(mut self, threads: usize) -> ExportOptions {
        self.threads = Some(threads);
        self
    }

    /// Deflate level, 0 (store) to 9. Default: [`DEFAULT_LEVEL`].
    pub fn level(mut self, level: u32) -> ExportOptions {
        self.level = Some(level);
        self
    }

    /// Which responses to export. Default: all but `no_submission` ones.
    /// Checked (and normalised) when the build starts: see [`ExportFilter::normalized`].
    pub fn filter(mut self, filter: ExportFilter) -> ExportOptions {
        self.filter = filter;
        self
    }

    /// Receives progress events. Default: none.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> ExportOptions {
        self.progress = Some(progress);
        self
    }

    /// A flag that, once set, stops the build with [`Error::Cancelled`] and
    /// removes the partial archive. Default: none.
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> ExportOptions {
        self.cancel = Some(flag);
        self
    }

    /// Adds `responses.csv` (one row per answer item) and `codebook.csv`
    /// (one row per instruction and per option of a choice instruction)
    /// after the JSON Lines views. Default: `false`.
    pub fn tables(mut self, tables: bool) -> ExportOptions {
        self.tables = tables;
        self
    }

    /// With `false`, the archive has no `files/` entries and no upload
    /// bytes are read (so missing or changed bytes are no error); every
    /// `file_upload` answer item gets `"path": null`. Default: `true`.
    pub fn include_files(mut self, include_files: bool) -> ExportOptions {
        self.include_files = Some(include_files);
        self
    }

    /// Replaces every `participant_id` in the archive by `p_` + the first
    /// 16 hex digits of HMAC-SHA256(`key`, id): stable across exports with
    /// one key. The key is never written to the archive nor shown by
    /// `Debug`. An empty key is refused. Default: no pseudonymisation.
    pub fn pseudonymise(mut self, key: impl AsRef<[u8]>) -> ExportOptions {
        self.pseudonym_key = Some(key.as_ref().into());
        self
    }

    /// The most memory the build may use for the records of a dump it
    /// reads, in bytes; at least [`MIN_MEMORY_BUDGET`]. A dump whose
    /// records would not fit is built by spilling sorted runs of its
    /// responses to temporary files (see [`ExportOptions::temp_dir`]) and
    /// merging them while the views are written, with the same archive
    /// bytes. Records handed over in memory (`export`, `export_to_path`) are already
    /// in memory and are not affected. Default: [`DEFAULT_MEMORY_BUDGET`].
    pub fn memory_budget(mut self, bytes: u64) -> ExportOptions {
        self.memory_budget = Some(bytes);
        self
    }

    /// Where a build past its memory budget writes its temporary runs; they
    /// are removed when the build ends, whether it succeeds, fails or is
    /// cancelled. Default: the directory of the output archive (for a
    /// build to a path), so the runs sit on the disk the archive goes to.
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> ExportOptions {
        self.temp_dir = Some(dir.into());
        self
    }

    /// The memory budget in bytes: the one set, or [`DEFAULT_MEMORY_BUDGET`].
    pub fn memory_budget_bytes(&self) -> u64 {
        self.memory_budget.unwrap_or(DEFAULT_MEMORY_BUDGET)
    }

    /// True when [`ExportOptions::tables`] is set.
    pub fn has_tables(&self) -> bool {
        self.tables
    }

    /// False when [`ExportOptions::include_files`] was set to `false`.
    pub fn includes_files(&self) -> bool {
        self.include_files.unwrap_or(true)
    }

    /// True when a pseudonymisation key is set.
    pub fn is_pseudonymised(&self) -> bool {
        self.pseudonym_key.is_some()
    }

    pub(crate) fn freeze(&self) -> Result<Config, Error> {
        let level = self.level.unwrap_or(DEFAULT_LEVEL);
        if level > 9 {
            return Err(Error::InvalidOption {
                option: "level",
                message: format!("{level} is not between 0 and 9"),
            });
        }
        if self.threads == Some(0) {
            return Err(Error::InvalidOption {
                option: "threads",
                message: "must be at least 1".to_owned(),
            });
        }
        let generated_at = match &self.generated_at {
            None => None,
            Some(text) => match parse_rfc3339(text) {
                Some(time) => Some((text.clone(), time)),
                None => {
                    return Err(Error::InvalidOption {
                        option: "generated_at",
                        message: format!("{text:?} is not an RFC 3339 timestamp"),
                    })
                }
            },
        };
        let filter = self.filter.window().map_err(|err| Error::InvalidOption {
            option: err.parameter,
            message: err.message,
        })?;
        if self.pseudonym_key.as_deref().is_some_and(<[u8]>::is_empty) {
            return Err(Error::InvalidOption {
                option: "pseudonymise",
                message: "the key is empty".to_owned(),
            });
        }
        let memory_budget = self.memory_budget_bytes();
        if memory_budget < MIN_MEMORY_BUDGET {
            return Err(Error::InvalidOption {
                option: "memory_budget",
                message: format!(
                    "{memory_budget} bytes is below the smallest budget, {} MiB",
                    MIN_MEMORY_BUDGET >> 20
                ),
            });
        }
        Ok(Config {
            memory_budget,
            temp_dir: self.temp_dir.clone(),
            tables: self.tables,
            include_files: self.includes_files(),
            pseudonymiser: self.pseudonym_key.as_deref().map(Pseudonymiser::new),
            generated_at,
            threads: self.threads,
            level,
            filter,
            progress: self.progress.clone(),
            cancel: self.cancel.clone(),
        })
    }
}

/// The frozen options the build reads.
pub(crate) struct Config {
    /// Bytes the records of a dump may take before the build spills.
    pub(crate) memory_budget: u64,
    /// Where spilled runs go; `None`: beside the output.
    pub(crate) temp_dir: Option<PathBuf>,
    pub(crate) tables: bool,
    pub(crate) include_files: bool,
    pub(crate) pseudonymiser: Option<Pseudonymiser>,
    pub(crate) generated_at: Option<(String, OffsetDateTime)>,
    pub(crate) threads: Option<usize>,
    pub(crate) level: u32,
    /// The checked filter.
    pub(crate) filter: Window,
    pub(crate) progress: Option<Arc<dyn Progress>>,
    pub(crate) cancel: Option<Arc<AtomicBool>>,
}

impl Config {
    pub(crate) fn report(&self, event: ProgressEvent) {
        if let Some(progress) = &self.progress {
            progress.event(event);
        }
    }

    pub(crate) fn check_cancelled(&self) -> Result<(), Error> {
        match &self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    /// The archive's `generated_at` as written, and as an instant for the
    /// entry times: the one set, or the latest time in the records.
    pub(crate) fn generated_at_for(&self, records: &Records) -> (String, OffsetDateTime) {
        self.generated_at_with(records, None)
    }

    /// [`Config::generated_at_for`] when some responses are not in
    /// `records` (a build past its memory budget streams them) and
    /// `streamed` is the latest time they name.
    pub(crate) fn generated_at_with(
        &self,
        records: &Records,
        streamed: Option<OffsetDateTime>,
    ) -> (String, OffsetDateTime) {
        if let Some((text, time)) = &self.generated_at {
            return (text.clone(), *time);
        }
        match latest_instant(records).max(streamed) {
            Some(time) => (utc_rfc3339(time), time),
            None => (
                EPOCH_1980.to_owned(),
                // 1980-01-01 00:00 UTC: ten years, two of them leap, after 1970.
                OffsetDateTime::UNIX_EPOCH + time::Duration::days(10 * 365 + 2),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_take_binary_suffixes() {
        let mib = 1u64 << 20;
        assert_eq!(parse_memory_size("400M"), Some(400 * mib));
        assert_eq!(parse_memory_size("2G"), Some(2 << 30));
        assert_eq!(parse_memory_size("1T"), Some(1 << 40));
        assert_eq!(parse_memory_size("64K"), Some(64 << 10));
        assert_eq!(parse_memory_size("16777216"), Some(16 * mib));
        // The spellings an operator may reach for, all binary.
        for text in ["400m", "400MB", "400MiB", "400 M", " 400M "] {
            assert_eq!(parse_memory_size(text), Some(400 * mib), "{text:?}");
        }
        assert_eq!(parse_memory_size("512B"), Some(512));
    }

    #[test]
    fn memory_sizes_refuse_what_is_not_a_whole_size() {
        for text in [
            "", "M", "-1M", "+1M", "1.5G", "400X", "4 0M", "400MM", "G400", "0x10", "1e9", "400IB",
            "400I", "400BB", "400MBB", "400MIIB", "400BM",
        ] {
            assert_eq!(parse_memory_size(text), None, "{text:?}");
        }
    }

    #[test]
    fn memory_sizes_that_overflow_are_refused() {
        // 2^64 bytes, as a number and as 16 EiB spelt in terabytes.
        assert_eq!(parse_memory_size("18446744073709551616"), None);
        assert_eq!(parse_memory_size("16777216T"), None);
        assert_eq!(parse_memory_size("16777215T"), Some(16_777_215 << 40));
        assert_eq!(parse_memory_size("18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn a_budget_below_16_mib_is_refused_at_freeze() {
        let below = parse_memory_size("16383K").unwrap();
        let refused = ExportOptions::new().memory_budget(below).freeze();
        assert!(
            matches!(
                refused,
                Err(Error::InvalidOption {
                    option: "memory_budget",
                    ..
                })
            ),
            "{:?}",
            refused.err()
        );
        let least = parse_memory_size("16M").unwrap();
        assert_eq!(least, MIN_MEMORY_BUDGET);
        assert!(ExportOptions::new().memory_budget(least).freeze().is_ok());
    }
}
