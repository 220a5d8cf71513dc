//! `batch-export verify`: checks an archive, prints every problem found,
//! and exits 1 when there is any.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use batch_export::{verify, Dump, ExportOptions};

use super::{EXIT_OK, EXIT_REFUSED};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The archive to check.
    archive: PathBuf,
    /// The dump the archive should have been built from: also check that
    /// the archive holds exactly what it says.
    #[arg(long, value_name = "DUMP")]
    dump: Option<PathBuf>,
    /// The most memory reading the dump may take, e.g. 400M or 2G; a
    /// bigger dump is built into a temporary archive under --temp-dir
    /// (spilling as `build` does) and compared an entry at a time.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = super::parse_memory_size)]
    memory_budget: u64,
    /// Where the comparison with a dump past its memory budget builds its
    /// temporary archive and runs [default: the system's temporary folder].
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let file =
        File::open(&args.archive).with_context(|| format!("opening {}", args.archive.display()))?;
    let archive = BufReader::new(file);
    let report = match &args.dump {
        None => verify::verify(archive),
        Some(path) => {
            let temp_dir = args.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
            let options = ExportOptions::new()
                .memory_budget(args.memory_budget)
                .temp_dir(temp_dir);
            Dump::verify_archive(path, archive, &options)
        }
    };
    let report = match report {
        Ok(report) => report,
        // A dump that is itself refused is refused input, as in `build`.
        Err(verify::VerifyError::Expected(err)) => {
            return Err(anyhow::Error::new(err).context("the dump to compare with"))
        }
        Err(err) => {
            return Err(err).with_context(|| format!("verifying {}", args.archive.display()))
        }
    };
    if report.is_ok() {
        println!(
            "{}: ok, {} entries checked",
            args.archive.display(),
            report.entries()
        );
        Ok(EXIT_OK)
    } else {
        println!("{}: {report}", args.archive.display());
        Ok(EXIT_REFUSED)
    }
}
