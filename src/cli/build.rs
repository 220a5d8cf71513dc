//! `batch-export build`: a dump directory to an export archive.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use batch_export::{Dump, ExportOptions};

use super::progress::BarProgress;
use super::EXIT_OK;

/// Arguments of `build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The dump directory (batch.json, instructions.jsonl, tasks.jsonl, ...).
    dump: PathBuf,
    /// Where to write the archive, a file or an existing directory
    /// [default: <batch-id>-export-<YYYYMMDD-HHMMSS>.zip].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The archive's generated_at and entry times (RFC 3339)
    /// [default: the latest timestamp in the records].
    #[arg(long, value_name = "RFC3339")]
    generated_at: Option<String>,
    /// Deflate level, 0 (store) to 9.
    #[arg(long, default_value_t = batch_export::options::DEFAULT_LEVEL, value_parser = clap::value_parser!(u32).range(0..=9))]
    level: u32,
    /// Worker threads [default: one per core].
    #[arg(long, env = "RAYON_NUM_THREADS")]
    threads: Option<usize>,
    /// Also write responses.csv (one row per answer item) and codebook.csv.
    #[arg(long)]
    tables: bool,
    /// Leave the uploaded files out: no files/ entries, no upload read;
    /// file_upload items get "path": null.
    #[arg(long)]
    no_files: bool,
    /// Pseudonymise every participant_id with the key in FILE (its bytes,
    /// less trailing line ends): p_ + 16 hex digits of HMAC-SHA256.
    #[arg(long, value_name = "FILE")]
    pseudonymise_key: Option<PathBuf>,
    /// The most memory the build may use for the records, e.g. 400M or 2G;
    /// a bigger dump is built by spilling sorted runs to --temp-dir, with
    /// the same archive bytes.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = super::parse_memory_size)]
    memory_budget: u64,
    /// Where a build past its memory budget writes its temporary runs
    /// [default: the output's directory].
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Debug: write only the two JSONL views, as plain files into DIR (no
    /// ZIP, no uploads); for comparing the pivot alone with other tools.
    #[arg(long, value_name = "DIR", hide = true)]
    views_only: Option<PathBuf>,
}

pub fn run(args: BuildArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let reading = || format!("reading dump {}", args.dump.display());
    // Without a usable batch.json the build is refused below anyway.
    let default_name = Dump::batch_id(&args.dump)
        .with_context(reading)?
        .map_or_else(
            || PathBuf::from("export.zip"),
            |id| super::default_archive_name(&id),
        );
    let output = match &args.output {
        // An existing directory receives the archive under its default name.
        Some(path) if path.is_dir() => path.join(default_name),
        Some(path) => path.clone(),
        None => default_name,
    };

    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    // A second Ctrl-C while the first is being handled kills as usual.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));

    let progress = Arc::new(BarProgress::new());
    let mut options = ExportOptions::new()
        .level(args.level)
        .progress(progress)
        .cancel_flag(cancel)
        .tables(args.tables)
        .include_files(!args.no_files)
        .memory_budget(args.memory_budget);
    if let Some(dir) = &args.temp_dir {
        options = options.temp_dir(dir);
    }
    if let Some(path) = &args.pseudonymise_key {
        options = options.pseudonymise(super::read_key_file(path)?);
    }
    if let Some(at) = args.generated_at {
        options = options.generated_at(at);
    }
    if let Some(threads) = args.threads.filter(|&t| t > 0) {
        options = options.threads(threads);
    }
    if let Some(dir) = &args.views_only {
        let dump = batch_export::bench_support::write_views_of(&args.dump, dir, &options)
            .with_context(|| format!("writing views into {}", dir.display()))?;
        // The process ends now: freeing the records would only take time.
        std::mem::forget(dump);
        return Ok(EXIT_OK);
    }
    let summary = Dump::build(&args.dump, &output, &options)
        .with_context(|| format!("building {}", output.display()))?;

    let c = summary.counts;
    eprintln!(
        "wrote {} ({}, {} entries) in {:.1}s: {} responses from {} submissions on {} tasks, \
         {} files; {} no_submission responses left out",
        output.display(),
        indicatif::HumanBytes(summary.archive_bytes),
        summary.entries,
        started.elapsed().as_secs_f64(),
        c.responses,
        c.submissions,
        c.tasks,
        c.files,
        c.excluded_no_submission,
    );
    Ok(EXIT_OK)
}
