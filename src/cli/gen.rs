//! `batch-export gen`: writes a synthetic dump for benchmarks and scale
//! tests; the generator itself is `batch_export::synth`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use batch_export::synth::{generate, Preset, SynthOptions};

use super::EXIT_OK;

/// Arguments of `gen`. A preset sets every size; flags given after it
/// override single values.
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// Directory to write the dump into (created if needed).
    out_dir: PathBuf,
    /// Start from a benchmark workload: responses-heavy or uploads-heavy.
    #[arg(long, value_parser = ["responses-heavy", "uploads-heavy"])]
    preset: Option<String>,
    /// Seed of every generator; the same seed gives the same files [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Submissions [default: 100].
    #[arg(long)]
    submissions: Option<usize>,
    /// Tasks; every submission answers every task [default: 20].
    #[arg(long)]
    tasks: Option<usize>,
    /// Instructions, cycling through the five types [default: 5].
    #[arg(long)]
    instructions: Option<usize>,
    /// Share of no_submission responses, 0 to 1 [default: 0.05].
    #[arg(long)]
    no_submission_share: Option<f64>,
    /// Uploads [default: 200].
    #[arg(long)]
    uploads: Option<usize>,
    /// Smallest upload in bytes [default: 1000].
    #[arg(long)]
    upload_min_bytes: Option<u64>,
    /// Largest upload in bytes [default: 8000].
    #[arg(long)]
    upload_max_bytes: Option<u64>,
    /// Share of incompressible (JPEG/MP4/PNG-typed random) uploads [default: 0.5].
    #[arg(long)]
    incompressible_share: Option<f64>,
}

pub fn run(args: GenArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let mut o = match args.preset.as_deref().and_then(Preset::from_name) {
        Some(preset) => preset.options(),
        None => SynthOptions::default(),
    };
    o.seed = args.seed.unwrap_or(o.seed);
    o.submissions = args.submissions.unwrap_or(o.submissions);
    o.tasks = args.tasks.unwrap_or(o.tasks);
    o.instructions = args.instructions.unwrap_or(o.instructions);
    o.no_submission_share = args.no_submission_share.unwrap_or(o.no_submission_share);
    o.uploads = args.uploads.unwrap_or(o.uploads);
    o.upload_min_bytes = args.upload_min_bytes.unwrap_or(o.upload_min_bytes);
    o.upload_max_bytes = args.upload_max_bytes.unwrap_or(o.upload_max_bytes);
    o.incompressible_share = args.incompressible_share.unwrap_or(o.incompressible_share);
    let summary = generate(&args.out_dir, &o)
        .with_context(|| format!("writing dump {}", args.out_dir.display()))?;
    eprintln!(
        "wrote {} in {:.1}s: {} responses ({} no_submission), {} uploads ({})",
        args.out_dir.display(),
        started.elapsed().as_secs_f64(),
        summary.responses,
        summary.no_submission,
        summary.uploads,
        indicatif::HumanBytes(summary.upload_bytes),
    );
    Ok(EXIT_OK)
}
