//! The sample dump's archive through every reader, and its README's
//! examples (pandas, and R for the tables).

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The archive README's R block, run as written by Rscript on the sample's
/// archive with tables: every row read, every column text, nothing turned
/// into NA, values as the input wrote them.
#[test]
fn the_readme_r_example_runs_on_an_archive_with_tables() {
    let Some(rscript) = super::tool("R", &["Rscript"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("tables.zip");
    Dump::open(sample_dump())
        .unwrap()
        .export_to_path(&archive, &ExportOptions::new().tables(true))
        .unwrap();
    let folder = dir.path().join("extracted");
    zip::ZipArchive::new(std::fs::File::open(&archive).unwrap())
        .unwrap()
        .extract(&folder)
        .unwrap();
    let readme = std::fs::read_to_string(folder.join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```r\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 1, "the README's R blocks");
    // What the block made, printed after it as written.
    let script = dir.path().join("check.R");
    let report = r#"
cat(nrow(responses), nrow(codebook), nrow(labelled), sum(is.na(responses)),
    all(sapply(responses, is.character)), "\n")
cat(responses$value[responses$response_id == "r-0004"],
    responses$value[responses$response_id == "r-0016"],
    responses$unit[responses$response_id == "r-0004"], "\n")
"#;
    std::fs::write(&script, format!("{}{report}", blocks[0])).unwrap();
    let out = super::run(Command::new(rscript).arg(&script).current_dir(&folder));
    let batch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("batch.json")).unwrap()).unwrap();
    let counts = &batch["export"]["counts"];
    let rows = &counts["responses_csv_rows"];
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{rows} {} {rows} 0 TRUE \n12.5 true m \n",
            counts["codebook_csv_rows"]
        )
    );
}
