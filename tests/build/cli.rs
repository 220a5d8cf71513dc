//! The `build` command as a user runs it: default file name, summary,
//! exit codes, the error list.

use std::process::Command;

use crate::common::*;

fn batch_export() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batch-export"))
}

#[test]
fn build_writes_the_default_file_name_and_a_summary() {
    let cwd = tempfile::tempdir().unwrap();
    let output = batch_export()
        .current_dir(cwd.path())
        .arg("build")
        .arg(sample_dump())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let files = files_in(cwd.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = &files[0];
    let stamp = name
        .strip_prefix("batch-7f3a-export-")
        .and_then(|s| s.strip_suffix(".zip"))
        .unwrap();
    assert_eq!(stamp.len(), 15, "{name}");
    assert!(
        stamp
            .chars()
            .enumerate()
            .all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() }),
        "{name}"
    );
    assert!(
        stderr.contains("20 responses from 3 submissions on 4 tasks"),
        "{stderr}"
    );
}

#[test]
fn build_with_output_and_generated_at() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.zip");
    let status = batch_export()
        .args([
            "build",
            "--generated-at",
            "2024-06-01T00:00:00Z",
            "--level",
            "9",
            "-o",
        ])
        .arg(&out)
        .arg(sample_dump())
        .status()
        .unwrap();
    assert!(status.success());
    let batch: serde_json::Value = serde_json::from_slice(&entry(&out, "batch.json")).unwrap();
    assert_eq!(batch["export"]["generated_at"], "2024-06-01T00:00:00Z");
}

#[test]
fn refused_input_exits_1_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.zip");
    let output = batch_export()
        .arg("build")
        .arg(fixtures().join("invalid/many-problems"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("input refused, 3 problems found"),
        "{stderr}"
    );
    assert!(stderr.contains("tasks.jsonl:3: field `id`"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn other_errors_exit_2() {
    let output = batch_export()
        .args(["build", "/no/such/dump"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/dump"));
}

#[test]
fn output_into_an_existing_directory_uses_the_default_name() {
    let dir = tempfile::tempdir().unwrap();
    let status = batch_export()
        .arg("build")
        .arg(sample_dump())
        .arg("-o")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let files = files_in(dir.path());
    assert!(
        files.len() == 1 && files[0].starts_with("batch-7f3a-export-"),
        "{files:?}"
    );
}
