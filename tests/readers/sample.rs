//! The sample dump's archive through every reader, and its README example.

use std::path::{Path, PathBuf};

use batch_export::{verify, Dump, ExportOptions};

use super::{check_all, dumps, Depth};

pub fn sample_dump() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-batch")
}

/// Builds a dump's archive into `dir` and checks it with `verify`
/// against the dump before any reader sees it.
pub fn build_verified(dump_dir: &Path, dir: &Path) -> PathBuf {
    let dump = Dump::open(dump_dir).unwrap();
    let archive = dir.join("export.zip");
    dump.export_to_path(&archive, &ExportOptions::new())
        .unwrap();
    let file = std::fs::File::open(&archive).unwrap();
    let report = verify::verify_against_dump(file, &dump).unwrap();
    assert!(report.is_ok(), "{report}");
    archive
}

#[test]
fn every_reader_reads_the_sample_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = build_verified(&sample_dump(), dir.path());
    let manifest = dumps::manifest(&archive, &sample_dump());
    assert!(
        manifest.keys().any(|n| !n.is_ascii()),
        "the sample has a non-ASCII name"
    );
    check_all(&archive, &manifest, Depth::Extract);
}

#[test]
fn the_sample_readme_example_runs_and_prints_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let archive = build_verified(&sample_dump(), dir.path());
    dumps::run_readme_example(&archive);
}

#[test]
fn the_readme_examples_run_on_an_archive_with_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("options.zip");
    let options = ExportOptions::new()
        .tables(true)
        .include_files(false)
        .pseudonymise(b"key");
    Dump::open(sample_dump())
        .unwrap()
        .export_to_path(&archive, &options)
        .unwrap();
    dumps::run_readme_example(&archive);
}
