//! `batch-export serve`: the export-job service over a data folder of dumps.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use batch_export::http::{self, Service, Signer, Tokens};
use batch_export::jobs::ReusePolicy;

use super::backend::BackendArgs;
use super::{printable, EXIT_OK};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The token file [default: <state>/tokens.json, created with a
    /// development token when missing; the token is in the file, never
    /// printed].
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// The base URL of download links, as clients reach the service
    /// [default: http://<listen address>].
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// How long download links stay valid, in seconds (HMAC links to local
    /// archives and presigned S3 links alike).
    #[arg(long, default_value_t = 3600, value_name = "N")]
    link_seconds: u64,
    /// How many exports this process builds at once (0: none, leaving
    /// builds to `worker` processes on the same store).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// recent: a POST returns a recent complete export of unchanged records
    /// (200); never: every POST answers 202 and only a job still generating
    /// (same batch, filter and options) is returned.
    #[arg(long, default_value = "recent", value_name = "recent|never")]
    reuse: ReusePolicy,
    /// Log lines as text, or as one JSON object per line. Which lines:
    /// RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum LogFormat {
    /// For people: time, level, message, fields.
    Text,
    /// For machines: one JSON object per line.
    Json,
}

/// Sends the library's `tracing` events to standard error, filtered by
/// `RUST_LOG` (default `info`).
pub(super) fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second subscriber (never the case in the binary) is not an error
    // worth stopping for; the first one keeps logging.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    init_logging(args.log_format);
    let backend = &args.backend;
    std::fs::create_dir_all(&backend.state)
        .with_context(|| format!("creating state folder {}", backend.state.display()))?;
    let catalog = backend.catalog()?;
    let batches = catalog
        .batches()
        .with_context(|| format!("reading data folder {}", backend.data.display()))?;
    let tokens_path = args
        .tokens
        .clone()
        .unwrap_or_else(|| backend.state.join("tokens.json"));
    let tokens = if tokens_path.exists() || !is_default(&tokens_path, &backend.state) {
        Tokens::load(&tokens_path)?
    } else {
        let mut workspaces: Vec<String> = batches.iter().map(|b| b.workspace_id.clone()).collect();
        workspaces.sort();
        workspaces.dedup();
        let tokens = Tokens::create_default(&tokens_path, workspaces.clone())?;
        // The token itself stays in the file (mode 0600): a secret never
        // goes to a log, and standard error of a service usually is one.
        tracing::info!(
            path = %printable(&tokens_path.display().to_string()),
            workspaces = %printable(&workspaces.join(",")),
            "created a token file holding a development token, readable by its owner only"
        );
        tokens
    };
    let signer = Signer::load_or_create(&backend.state.join("signing.key"))?;
    let jobs = backend.open(args.workers, args.reuse)?;
    for fix in jobs.recovered() {
        tracing::warn!(fix = %printable(&fix.to_string()), "state folder repaired");
    }
    let mut service = Service::new(jobs, catalog, tokens, signer)
        .with_link_ttl(std::time::Duration::from_secs(args.link_seconds.max(1)));
    if let Some(url) = args.public_url {
        service = service.with_public_url(url);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        for batch in &batches {
            // Ids come from the dumps' batch.json: a CR or LF in one must
            // not start a log line of its own.
            tracing::info!(
                batch_id = %printable(&batch.id),
                workspace_id = %printable(&batch.workspace_id),
                dir = %printable(&batch.dir.display().to_string()),
                "batch found"
            );
        }
        tracing::info!(address = %addr, "serving http://{addr}/api/v1/data-collection/ (Ctrl-C to stop)");
        http::serve(listener, service, stop_signal())
            .await
            .context("serving")
    })?;
    tracing::info!("stopped");
    Ok(EXIT_OK)
}

/// Ctrl-C, or SIGTERM (how service managers stop a process): either lets
/// open requests finish and leaves running builds for the next start.
pub(super) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Only the default token file is created on demand; a path given with
/// `--tokens` must exist, so a typo does not silently mint a new token.
fn is_default(path: &std::path::Path, state: &std::path::Path) -> bool {
    path == state.join("tokens.json")
}
