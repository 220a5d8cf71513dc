//! Synthetic dumps: a batch of any size, for benchmarks, scale tests and
//! the `batch-export gen` command.
//!
//! The same [`SynthOptions`] (seed included) always give the same files,
//! byte for byte, whatever the thread count: every record and every upload
//! draws from its own generator seeded by the dump's seed and its index.
//!
//! The dump has all five instruction types (cycled in order), one response
//! per submission, task and instruction, a share of them `no_submission`,
//! and uploads answering the `file_upload` instructions: compressible ones
//! (CSV, JSON, text) and incompressible ones (JPEG, MP4, PNG lookalikes of
//! random bytes), each listed in `uploads.jsonl` with its size and SHA-256.
//!
//! ```
//! use batch_export::synth::{generate, SynthOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let options = SynthOptions { submissions: 3, tasks: 2, uploads: 4, ..SynthOptions::default() };
//! let summary = generate(dir.path(), &options)?;
//! assert_eq!(summary.responses, 3 * 2 * 5);
//! batch_export::Dump::open(dir.path())?.check()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod content;
mod records;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;

use crate::error::Error;
use content::Kind;

/// What a synthetic dump holds. Fields are public so callers can start from
/// [`SynthOptions::default`] or a [`Preset`] and change what they need.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthOptions {
    /// Seeds every generator. Default 1.
    pub seed: u64,
    /// Submissions, one participant each. Default 100.
    pub submissions: usize,
    /// Tasks; every submission answers every task. Default 20.
    pub tasks: usize,
    /// Instructions, their types cycling through all five. Default 5.
    pub instructions: usize,
    /// Share of responses that are `no_submission`, 0 to 1. Default 0.05.
    pub no_submission_share: f64,
    /// Upload records (and files), spread evenly over the `file_upload`
    /// responses. Default 200.
    pub uploads: usize,
    /// Smallest upload, bytes. Default 1,000.
    pub upload_min_bytes: u64,
    /// Largest upload, bytes. Default 8,000.
    pub upload_max_bytes: u64,
    /// Share of uploads that are random bytes typed as JPEG/MP4/PNG, 0 to 1.
    /// Default 0.5.
    pub incompressible_share: f64,
}

impl Default for SynthOptions {
    fn default() -> SynthOptions {
        SynthOptions {
            seed: 1,
            submissions: 100,
            tasks: 20,
            instructions: 5,
            no_submission_share: 0.05,
            uploads: 200,
            upload_min_bytes: 1_000,
            upload_max_bytes: 8_000,
            incompressible_share: 0.5,
        }
    }
}

/// The benchmark workloads of BENCHMARKS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// 5,000 submissions × 20 tasks × 5 instructions (500,000 responses)
    /// and 75,000 uploads of 1–8 KB.
    ResponsesHeavy,
    /// About 2 GB of uploads: 240 files of 1–16 MB, 70% incompressible,
    /// answering 1,000 responses.
    UploadsHeavy,
}

impl Preset {
    /// The preset called `name` (`responses-heavy`, `uploads-heavy`).
    pub fn from_name(name: &str) -> Option<Preset> {
        match name {
            "responses-heavy" => Some(Preset::ResponsesHeavy),
            "uploads-heavy" => Some(Preset::UploadsHeavy),
            _ => None,
        }
    }

    /// The preset's options.
    pub fn options(self) -> SynthOptions {
        match self {
            Preset::ResponsesHeavy => SynthOptions {
                submissions: 5_000,
                tasks: 20,
                instructions: 5,
                uploads: 75_000,
                upload_min_bytes: 1_000,
                upload_max_bytes: 8_000,
                incompressible_share: 0.5,
                ..SynthOptions::default()
            },
            Preset::UploadsHeavy => SynthOptions {
                submissions: 50,
                tasks: 4,
                instructions: 5,
                no_submission_share: 0.02,
                uploads: 240,
                upload_min_bytes: 1 << 20,
                upload_max_bytes: 16 << 20,
                incompressible_share: 0.7,
                ..SynthOptions::default()
            },
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSummary {
    /// Lines of `responses.jsonl`.
    pub responses: u64,
    /// Of which `no_submission`.
    pub no_submission: u64,
    /// Upload files written.
    pub uploads: u64,
    /// Their bytes together.
    pub upload_bytes: u64,
}

/// Writes a synthetic dump into `dir` (created if needed), on the current
/// rayon pool. Files already there with the dump's names are replaced.
pub fn generate(dir: &Path, options: &SynthOptions) -> Result<SynthSummary, Error> {
    check(options)?;
    let uploads_dir = dir.join("uploads");
    fs::create_dir_all(&uploads_dir).map_err(|e| Error::io(&uploads_dir, e))?;
    let plan = records::Plan::new(options);

    write_file(dir, "batch.json", |out| records::batch(&plan, out))?;
    write_lines(dir, "instructions.jsonl", options.instructions, |i, out| {
        records::instruction(&plan, i, out)
    })?;
    write_lines(dir, "tasks.jsonl", options.tasks, |i, out| {
        records::task(&plan, i, out)
    })?;
    write_lines(dir, "submissions.jsonl", options.submissions, |i, out| {
        records::submission(&plan, i, out)
    })?;
    let responses = plan.responses();
    let no_submission = write_lines(dir, "responses.jsonl", responses, |i, out| {
        records::response(&plan, i, out)
    })?;

    // Upload bytes first, in parallel: their records need the SHA-256.
    let digests: Vec<(Kind, u64, [u8; 32])> = (0..options.uploads)
        .into_par_iter()
        .map(|j| {
            let (kind, size, mut rng) = plan.upload(j);
            let path = uploads_dir.join(records::file_key(j));
            let sha = content::write_upload(&path, kind, size, &mut rng)
                .map_err(|e| Error::io(&path, e))?;
            Ok((kind, size, sha))
        })
        .collect::<Result<_, Error>>()?;
    write_lines(dir, "uploads.jsonl", options.uploads, |j, out| {
        let (kind, size, sha) = &digests[j];
        records::upload(&plan, j, *kind, *size, sha, out);
        false
    })?;
    Ok(SynthSummary {
        responses: responses as u64,
        no_submission,
        uploads: options.uploads as u64,
        upload_bytes: digests.iter().map(|d| d.1).sum(),
    })
}

fn check(options: &SynthOptions) -> Result<(), Error> {
    let invalid = |option, message: &str| {
        Err(Error::InvalidOption {
            option,
            message: message.to_owned(),
        })
    };
    if !(0.0..=1.0).contains(&options.no_submission_share) {
        return invalid("no_submission_share", "must be between 0 and 1");
    }
    if !(0.0..=1.0).contains(&options.incompressible_share) {
        return invalid("incompressible_share", "must be between 0 and 1");
    }
    if options.upload_min_bytes > options.upload_max_bytes {
        return invalid("upload_min_bytes", "must not exceed upload_max_bytes");
    }
    Ok(())
}

fn write_file(dir: &Path, name: &str, body: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
    let path = dir.join(name);
    let mut out = Vec::new();
    body(&mut out);
    fs::write(&path, out).map_err(|e| Error::io(&path, e))
}

/// Lines generated in parallel per block, then written in order; memory
/// stays at one window of blocks whatever the line count.
const BLOCK: usize = 4096;
const WINDOW: usize = 64;

/// Writes `count` lines made by `line` (which returns true for lines to
/// count, e.g. `no_submission` responses); returns how many were counted.
fn write_lines(
    dir: &Path,
    name: &str,
    count: usize,
    line: impl Fn(usize, &mut Vec<u8>) -> bool + Sync,
) -> Result<u64, Error> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let blocks = count.div_ceil(BLOCK);
    let mut counted = 0;
    for window in (0..blocks).collect::<Vec<_>>().chunks(WINDOW) {
        let texts: Vec<(Vec<u8>, u64)> = window
            .par_iter()
            .map(|&block| {
                let mut text = Vec::with_capacity(BLOCK * 200);
                let mut n = 0;
                for i in block * BLOCK..((block + 1) * BLOCK).min(count) {
                    n += u64::from(line(i, &mut text));
                }
                (text, n)
            })
            .collect();
        for (text, n) in texts {
            out.write_all(&text).map_err(|e| Error::io(&path, e))?;
            counted += n;
        }
    }
    out.flush().map_err(|e| Error::io(&path, e))?;
    Ok(counted)
}
