//! `batch-export worker`: builds export jobs from a shared job store, with
//! no HTTP; stops on Ctrl-C or SIGTERM, giving its leases up.

use anyhow::Context;
use batch_export::jobs::ReusePolicy;

use super::backend::BackendArgs;
use super::EXIT_OK;

/// Arguments of `worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    backend: BackendArgs,
    /// How many exports this process builds at once.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(args.workers > 0, "a worker needs --workers 1 or more");
    super::serve::init_logging(super::serve::LogFormat::Text);
    let jobs = args.backend.open(args.workers, ReusePolicy::default())?;
    for fix in jobs.recovered() {
        tracing::warn!(fix = %super::printable(&fix.to_string()), "state folder repaired");
    }
    eprintln!(
        "worker building exports with {} thread(s) (Ctrl-C to stop)",
        args.workers
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(super::serve::stop_signal());
    jobs.shutdown();
    Ok(EXIT_OK)
}
