//! Binary-only code: argument definitions, one module per subcommand, and
//! terminal progress. Exit codes: 0 success, 1 refused input or a failed
//! verification, 2 any other error.

mod backend;
mod build;
mod export;
mod gen;
mod progress;
mod serve;
mod verify;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit code of success.
pub const EXIT_OK: u8 = 0;
/// Exit code of refused input or a failed verification.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code of every other error.
pub const EXIT_ERROR: u8 = 2;

/// Turns annotation-batch dumps into export archives.
#[derive(Debug, Parser)]
#[command(name = "batch-export", version, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the export archive of a batch dump.
    Build(build::BuildArgs),
    /// Check an archive against the contract, and optionally against its dump.
    Verify(verify::VerifyArgs),
    /// Serve export jobs over HTTP for a data folder of batch dumps.
    Serve(serve::ServeArgs),
    /// Build export jobs from a shared job store, with no HTTP.
    Worker(worker::WorkerArgs),
    /// Fetch a batch's export from the service (token in PROLIFIC_TOKEN).
    Export(export::ExportArgs),
    /// Write a synthetic dump for benchmarks and scale tests.
    Gen(gen::GenArgs),
}

/// Runs one subcommand and returns its exit code.
pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.command {
        Command::Build(args) => build::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Export(args) => export::run(args),
        Command::Gen(args) => gen::run(args),
    }
}

/// The exit code of an error that reached `main`.
pub fn exit_code_of(err: &anyhow::Error) -> std::process::ExitCode {
    let refused = err
        .downcast_ref::<batch_export::Error>()
        .is_some_and(batch_export::Error::is_refusal);
    std::process::ExitCode::from(if refused { EXIT_REFUSED } else { EXIT_ERROR })
}

/// True when the error is only a closed standard output (`| head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `text` safe to put in one log line: control characters (CR, LF, ESC,
/// ...) and invisible format characters (bidi overrides, zero-width
/// spaces) are written as escapes (`\r`, `\u{202e}`), so text from a dump
/// can neither split a line nor disguise what follows it.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_debug());
        } else if is_invisible_format(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The characters of Unicode category Cf (format) that reorder or hide text.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// [`batch_export::naming::archive_file_name`] in the current directory,
/// at the current time.
pub fn default_archive_name(batch_id: &str) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    PathBuf::from(batch_export::naming::archive_file_name(batch_id, now))
}

/// The pseudonymisation key in `path`: the file's bytes, less trailing line
/// ends (so `echo secret > key` and an editor's final newline give the key
/// `secret`). An empty key is refused; the key is never printed.
pub fn read_key_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let mut key = std::fs::read(path)
        .with_context(|| format!("reading the pseudonymisation key {}", path.display()))?;
    while key.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        key.pop();
    }
    anyhow::ensure!(
        !key.is_empty(),
        "the pseudonymisation key {} is empty",
        path.display()
    );
    Ok(key)
}

/// A `--memory-budget` value: bytes, or a number with `K`, `M`, `G` or `T`
/// (binary multiples: `400M` is 400 MiB), at least 16M.
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let min = batch_export::options::MIN_MEMORY_BUDGET;
    match batch_export::options::parse_memory_size(text) {
        Some(bytes) if bytes >= min => Ok(bytes),
        Some(_) => Err(format!("the smallest budget is {}M", min >> 20)),
        None => Err(format!("{text:?} is not a size such as 400M or 2G")),
    }
}
