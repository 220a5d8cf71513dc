//! Random dumps checked against an independent reading of the contract.
//!
//! `export_views.py` computes the expected views from the dump with plain
//! Python, sharing no code with the library; the archive must agree with it
//! line for line (as parsed JSON), name for name, count for count. The dumps
//! are seeded, so a failure names a seed that reproduces it.

mod random_dump;
mod tables;

use std::path::Path;
use std::process::Command;

use batch_export::ExportOptions;
use serde_json::Value;

use crate::common::*;

/// Runs the oracle, or fails (in CI) or skips (elsewhere) without Python.
fn oracle(dump: &Path) -> Option<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/export_views.py");
    let output = match Command::new("python3").arg(script).arg(dump).output() {
        Ok(output) => output,
        Err(err) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "python3 is needed in CI: {err}"
            );
            eprintln!("skipping: python3 not found ({err})");
            return None;
        }
    };
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn random_dumps_match_the_independent_oracle() {
    for seed in 1..=12u64 {
        let dump = tempfile::tempdir().unwrap();
        random_dump::write(dump.path(), seed);
        let Some(expected) = oracle(dump.path()) else {
            return;
        };
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("a.zip");
        build(dump.path(), &out, &ExportOptions::new())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for view in ["responses-by-submission.jsonl", "responses-by-task.jsonl"] {
            let actual = jsonl(&out, view);
            let wanted = expected[view].as_array().unwrap();
            assert_eq!(actual.len(), wanted.len(), "seed {seed}: lines of {view}");
            for (index, (a, w)) in actual.iter().zip(wanted).enumerate() {
                assert_eq!(a, w, "seed {seed}: {view} line {}", index + 1);
            }
        }
        let files: Vec<String> = read_entries(&out)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("files/"))
            .collect();
        let wanted: Vec<String> = serde_json::from_value(expected["files"].clone()).unwrap();
        assert_eq!(files, wanted, "seed {seed}: files/");
        let batch: Value = serde_json::from_slice(&entry(&out, "batch.json")).unwrap();
        assert_eq!(
            batch["export"]["counts"], expected["counts"],
            "seed {seed}: counts"
        );
    }
}
