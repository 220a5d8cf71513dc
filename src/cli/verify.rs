//! `batch-export verify`: checks an archive, prints every problem found,
//! and exits 1 when there is any.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use batch_export::{verify, Dump};

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
}

pub fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let file =
        File::open(&args.archive).with_context(|| format!("opening {}", args.archive.display()))?;
    let archive = BufReader::new(file);
    let report = match &args.dump {
        None => verify::verify(archive),
        Some(path) => {
            let dump =
                Dump::open(path).with_context(|| format!("reading dump {}", path.display()))?;
            verify::verify_against_dump(archive, &dump)
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
