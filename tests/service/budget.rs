//! `serve --memory-budget` (issue 13): a job on a dump past the budget is
//! built by spilling, says so in the service's log, and its archive is the
//! one a build in memory writes, byte for byte.

use std::path::Path;

use batch_export::synth::{generate, SynthOptions};
use batch_export::{Dump, ExportOptions};

use super::logs::wait_until_done;
use super::process::ServeProcess;
use super::*;

/// 60,000 responses (about 17 MB of JSON Lines), past a 16 MiB budget.
fn big_dump(data: &Path) -> std::path::PathBuf {
    let dir = data.join("big");
    let options = SynthOptions {
        submissions: 1_200,
        tasks: 10,
        instructions: 5,
        uploads: 30,
        ..SynthOptions::default()
    };
    generate(&dir, &options).unwrap();
    dir
}

#[test]
fn a_job_past_the_budget_spills_logs_it_and_gives_the_in_memory_bytes() {
    let dirs = Dirs::new();
    let dump = big_dump(dirs.data.path());
    let serve = ServeProcess::start_with(
        dirs.data.path(),
        dirs.state.path(),
        &["--memory-budget", "16M"],
    );
    let batch = Dump::batch_id(&dump).unwrap().unwrap();
    let exports = format!(
        "{}/api/v1/data-collection/batches/{batch}/export",
        serve.base
    );
    let posted = call("POST", &exports, Some(TOKEN));
    assert_eq!(posted.status, 202, "{}", posted.text);
    let id = posted.json["export_id"].as_str().unwrap().to_owned();
    let done = wait_until_done(&format!("{exports}/{id}"));
    assert_eq!(done["status"], "complete", "{done}");
    let download = call("GET", done["url"].as_str().unwrap(), None);
    assert_eq!(download.status, 200);
    let log = serve.stop();

    let spills = log
        .iter()
        .find(|line| line.contains("build spills past the memory budget"))
        .unwrap_or_else(|| panic!("no spill line in\n{}", log.join("\n")));
    assert!(spills.contains(&id), "{spills}");
    assert!(spills.contains("budget_mib=16"), "{spills}");

    // The same job's archive built in memory, as a serve with the default
    // budget builds it.
    let reference = dirs.state.path().join("in-memory.zip");
    let options = ExportOptions::new();
    assert!(options.memory_budget_bytes() > 1 << 28);
    Dump::open(&dump)
        .unwrap()
        .export_to_path(&reference, &options)
        .unwrap();
    assert!(
        download.bytes == std::fs::read(&reference).unwrap(),
        "the spilled archive differs from the one built in memory"
    );
}
