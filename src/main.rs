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
    no_transparent_huge_pages();
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

/// Opts the process out of transparent huge pages. mimalloc asks for them,
/// and each first touch then zeroes 2 MiB at once, which on this project's
/// virtual machines made page faults a third of the time spent reading a
/// dump. Without them, responses-heavy builds ~15% faster with ~10% less
/// peak memory (BENCHMARKS.md). A hint: if refused, nothing else changes.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only and
    // changes a flag of this process; no memory of ours is involved.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
