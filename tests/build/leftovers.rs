//! What a killed build leaves behind (issue 9): a build holds a lock on its
//! temporary file, and a later build into the same folder removes the
//! temporary files of dead builds only, never one a live process holds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::readers::tool;

fn build_into(dir: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_batch-export"))
        .arg("build")
        .arg(sample_dump())
        .arg("-o")
        .arg(dir.join("out.zip"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_build_removes_partials_of_killed_processes_but_not_of_live_ones() {
    let Some(flock) = tool("flock (util-linux)", &["flock"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join(".old.zip.AAAAAA.partial");
    let live = dir.path().join(".other.zip.BBBBBB.partial");
    std::fs::write(&dead, vec![0u8; 4096]).unwrap();
    std::fs::write(&live, vec![0u8; 4096]).unwrap();

    // Another process writing `live` holds its lock, as a build does, and
    // says so once it has it: the shell opens the file, flock(1) locks that
    // open file, and the shell becomes `sleep`, keeping it (so killing this
    // one process is what drops the lock).
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 9<\"$0\"; \"$1\" -x 9; echo locked; exec sleep 600")
        .arg(&live)
        .arg(&flock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");

    build_into(dir.path());
    assert!(!dead.exists(), "the dead build's partial was removed");
    assert!(live.exists(), "a live process's partial was kept");

    // kill -9: the kernel drops the lock with the process.
    holder.kill().unwrap();
    holder.wait().unwrap();
    build_into(dir.path());
    assert!(!live.exists(), "once its holder is killed, it is stale");
    assert_eq!(files_in(dir.path()), vec!["out.zip".to_owned()]);
}
