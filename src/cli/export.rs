//! `batch-export export`: fetch a batch's export from the service, with a
//! spinner while it is generated and a progress bar while it downloads.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use batch_export::client::{Client, ClientConfig, ClientError, ClientEvent, ExportRequest};
use batch_export::wire::{ArchiveOptions, ExportQuery};
use batch_export::ExportFilter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{EXIT_OK, EXIT_REFUSED};

/// Arguments of `export`. The token comes from `PROLIFIC_TOKEN`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The batch to export.
    batch_id: String,
    /// Where to write the archive [default: <batch-id>-export-<YYYYMMDD-HHMMSS>.zip].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The service's base URL.
    #[arg(
        long,
        env = "BATCH_EXPORT_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api_url: String,
    /// Seconds between status polls.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    poll_interval: f64,
    /// Seconds to wait for the export before giving up.
    #[arg(long, default_value_t = 3600.0, value_name = "SECONDS")]
    timeout: f64,
    /// Only submissions of this study.
    #[arg(long)]
    study_id: Option<String>,
    /// Only responses created at or after this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    from: Option<String>,
    /// Only responses created before this instant (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    to: Option<String>,
    /// Ask for responses.csv and codebook.csv in the archive.
    #[arg(long)]
    tables: bool,
    /// Ask for the archive without the uploaded files.
    #[arg(long)]
    no_files: bool,
    /// Ask for pseudonymised participant ids (the service holds the key).
    #[arg(long)]
    pseudonymise: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<u8> {
    let token = std::env::var("PROLIFIC_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .context("PROLIFIC_TOKEN is not set: export your API token first")?;
    let seconds = |value: f64, name: &str| {
        Duration::try_from_secs_f64(value)
            .with_context(|| format!("{name} must be a non-negative number"))
    };
    let config = ClientConfig::new(&args.api_url, token)
        .poll_interval(seconds(args.poll_interval, "--poll-interval")?)
        .timeout(seconds(args.timeout, "--timeout")?);
    let client = Client::new(config)?;
    let request = ExportRequest {
        batch_id: args.batch_id,
        query: ExportQuery {
            filter: ExportFilter {
                study_id: args.study_id,
                from: args.from,
                to: args.to,
            },
            options: ArchiveOptions {
                tables: args.tables,
                include_files: !args.no_files,
                pseudonymise: args.pseudonymise,
            },
        },
        output: args.output,
        dir: None,
    };

    let bar = Bar::new();
    let result = client.export(&request, &mut |event| bar.event(event));
    bar.finish();
    match result {
        Ok(done) => {
            eprintln!(
                "wrote {} ({}) from export {}",
                done.path.display(),
                indicatif::HumanBytes(done.bytes),
                done.export_id
            );
            Ok(EXIT_OK)
        }
        // The server refused to build the batch: almost always its records
        // break the contract, the same case `build` exits 1 on.
        Err(err @ ClientError::ExportFailed { .. }) => {
            eprintln!("error: {err}");
            Ok(EXIT_REFUSED)
        }
        Err(err) => Err(err).context(format!("exporting batch {}", request.batch_id)),
    }
}

/// A spinner while the export is generated, then a download bar.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::new_spinner();
        if std::io::stderr().is_terminal() {
            bar.enable_steady_tick(Duration::from_millis(120));
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_message("requesting export");
        Bar { bar }
    }

    fn event(&self, event: ClientEvent) {
        match event {
            ClientEvent::Requested { export_id } => {
                self.bar.set_message(format!("export {export_id}"));
            }
            ClientEvent::Generating { elapsed } => {
                self.bar
                    .set_message(format!("generating ({}s)", elapsed.as_secs()));
            }
            ClientEvent::Downloading { done, total } => {
                if self.bar.length() != Some(total) {
                    let style = ProgressStyle::with_template(
                        "downloading [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    self.bar.set_style(style);
                    self.bar.set_length(total);
                }
                self.bar.set_position(done);
            }
            ClientEvent::Resuming { offset } => {
                self.bar.set_message(format!("resuming at byte {offset}"));
            }
            ClientEvent::RefreshingLink => {
                self.bar.set_message("link expired, fetching a fresh one")
            }
            _ => {}
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
