//! The `batch-export` binary: parse arguments, run one subcommand, map the
//! outcome to an exit code. All the work is in the library; see `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

// The build allocates and frees millions of small strings (one per field of
// every record); mimalloc does that markedly faster than the system
// allocator and hands fewer pages back and forth with the kernel. The
// library leaves the choice of allocator to its embedder.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if cli::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            cli::exit_code_of(&err)
        }
    }
}
