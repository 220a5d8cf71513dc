//! The `build` binary past its memory budget, as an operator runs it: the
//! line saying it spills, a budget too small refused before anything is
//! read, and Ctrl-C (SIGINT) or a service manager's SIGTERM in the middle
//! of a spill leaving neither runs nor a temporary archive, and the output
//! path as it was.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;

/// A bound on every wait, so a build that never spills or never stops
/// fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(120);

/// What the output path holds before each build: a signal must leave it so.
const OLD_ARCHIVE: &[u8] = b"the archive of an earlier build";

/// 200,000 responses (about 55 MB of JSON Lines): at 16 MiB a build
/// writes runs for seconds, long enough to be caught in the middle.
fn long_dump() -> &'static Path {
    static DUMP: OnceLock<tempfile::TempDir> = OnceLock::new();
    generated_once(&DUMP, 2_000, 20, 20)
}

fn build_command(dump: &Path, output: &Path, budget: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batch-export"));
    command
        .args(["build", "--generated-at", "2024-06-01T00:00:00Z"])
        .args(["--memory-budget", budget, "-o"])
        .arg(output)
        .arg(dump)
        .env_remove("RAYON_NUM_THREADS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// The spill directory under `dir` once it holds a run file: the build is
/// then in the middle of its spill.
fn wait_for_runs(dir: &Path, child: &mut Child) -> PathBuf {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let spill = fs::read_dir(dir).unwrap().find_map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name()?.to_string_lossy().into_owned();
            name.starts_with(".batch-export-spill-").then_some(path)
        });
        // Emptied and removed between the two reads when the build ends.
        if let Some(spill) = spill {
            if fs::read_dir(&spill).is_ok_and(|mut runs| runs.next().is_some()) {
                return spill;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended ({status}) before it was seen spilling");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("no run in {} after {PATIENCE:?}", dir.display());
}

fn wait_with_patience(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    panic!("the build did not stop within {PATIENCE:?} of the signal");
}

fn stopped_mid_spill_leaves_nothing(signal: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.zip");
    fs::write(&output, OLD_ARCHIVE).unwrap();
    let mut child = build_command(long_dump(), &output, "16M").spawn().unwrap();
    let spill = wait_for_runs(dir.path(), &mut child);
    // SAFETY: kill(2) on our own child's pid, with a plain signal number.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
    let status = wait_with_patience(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    // Stopped by the build itself (not killed by the signal), with an error.
    assert_eq!(status.code(), Some(2), "{status}: {stderr}");
    assert!(stderr.contains("the build was cancelled"), "{stderr}");
    assert!(!spill.exists(), "{} left behind", spill.display());
    assert_eq!(files_in(dir.path()), ["out.zip"], "{stderr}");
    assert_eq!(fs::read(&output).unwrap(), OLD_ARCHIVE);
}

#[test]
fn sigint_mid_spill_leaves_no_run_no_partial_and_the_output_as_it_was() {
    stopped_mid_spill_leaves_nothing(libc::SIGINT);
}

#[test]
fn sigterm_mid_spill_leaves_no_run_no_partial_and_the_output_as_it_was() {
    stopped_mid_spill_leaves_nothing(libc::SIGTERM);
}

#[test]
fn a_build_past_its_budget_says_it_spills_and_one_within_says_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spilled = dir.path().join("spilled.zip");
    let run = |output: &Path, budget: &str| {
        let out = build_command(long_dump(), output, budget).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let stderr = run(&spilled, "16M");
    assert!(
        stderr.contains("past the memory budget of 16.00 MiB: spilling sorted runs to disk"),
        "{stderr}"
    );
    let in_memory = dir.path().join("in-memory.zip");
    let stderr = run(&in_memory, "1G");
    assert!(!stderr.contains("spilling"), "{stderr}");
    assert!(fs::read(&spilled).unwrap() == fs::read(&in_memory).unwrap());
}

#[test]
fn a_budget_below_16_mib_or_not_a_size_is_refused_by_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.zip");
    for (budget, says) in [
        ("15M", "the smallest budget is 16M"),
        ("1.5G", "is not a size such as 400M or 2G"),
    ] {
        let out = build_command(&sample_dump(), &output, budget)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{budget}: {stderr}");
        assert!(stderr.contains(says), "{budget}: {stderr}");
        assert!(!output.exists());
    }
}
