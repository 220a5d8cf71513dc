//! Every refusal rule, from the invalid dumps in `fixtures/invalid/`: the
//! error names file, line and field, and nothing is left at the output path
//! or beside it, also when the problem is only found while streaming.

use std::fs;
use std::io::{self, Read};

use batch_export::model::Upload;
use batch_export::{BlobSource, DirBlobSource, Dump, ExportOptions, ProblemKind};

use crate::common::*;

fn invalid_dumps() -> Vec<std::path::PathBuf> {
    let mut dumps: Vec<_> = fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dumps.sort();
    dumps
}

#[test]
fn every_invalid_fixture_is_refused_with_its_message_and_leaves_nothing() {
    let dumps = invalid_dumps();
    assert!(dumps.len() >= 20, "one fixture per refusal rule");
    for dump in dumps {
        let expected = fs::read_to_string(dump.join("expected.txt")).unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("export.zip");
        let err = build(&dump, &out, &ExportOptions::new()).expect_err(&dump.display().to_string());
        assert!(err.is_refusal(), "{}: {err}", dump.display());
        let message = err.to_string();
        for line in expected.lines() {
            assert!(
                message.contains(line),
                "{}: expected {line:?} in:\n{message}",
                dump.display()
            );
        }
        assert!(
            files_in(out_dir.path()).is_empty(),
            "{}: left {:?}",
            dump.display(),
            files_in(out_dir.path())
        );
    }
}

#[test]
fn check_reports_the_same_problems_without_writing() {
    let dump = Dump::open(fixtures().join("invalid/many-problems")).unwrap();
    let err = dump.check().unwrap_err();
    assert_eq!(err.problems().len(), 3);
    let kinds: Vec<ProblemKind> = err.problems().iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProblemKind::Duplicate));
    assert!(kinds.contains(&ProblemKind::DanglingReference));
    assert!(kinds.contains(&ProblemKind::MissingField));
    let located = err
        .problems()
        .iter()
        .all(|p| p.line.is_some() && p.field.is_some());
    assert!(located, "each problem has a line and a field");
}

#[test]
fn problems_beyond_the_cap_are_counted() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("invalid/not-json"), copy.path());
    let tasks = format!(
        "{{\"id\":\"t-1\"}}\n{{\"id\":\"t-2\"}}\n{}",
        "not json\n".repeat(500)
    );
    fs::write(copy.path().join("tasks.jsonl"), tasks).unwrap();
    let err = Dump::open(copy.path()).unwrap().check().unwrap_err();
    assert_eq!(err.problems().len(), batch_export::error::PROBLEM_CAP);
    assert!(err
        .to_string()
        .contains("input refused, 500 problems found"));
    assert!(err.to_string().contains("... and 300 more"));
}

#[test]
fn sha256_mismatch_found_mid_stream_removes_the_partial_archive() {
    // The size is right, so nothing is refused before writing starts.
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("export.zip");
    let err = build(
        &fixtures().join("invalid/sha256-mismatch"),
        &out,
        &ExportOptions::new(),
    )
    .unwrap_err();
    assert!(err.is_refusal());
    assert_eq!(err.problems()[0].kind, ProblemKind::UploadBytes);
    assert!(files_in(out_dir.path()).is_empty());
}

/// Claims every blob has its record's size, then serves fewer bytes: the
/// short read is only found while streaming.
struct Truncating(DirBlobSource);

impl BlobSource for Truncating {
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>> {
        let keep = upload.size_bytes.saturating_sub(3);
        Ok(Box::new(self.0.open(upload)?.take(keep)))
    }
    fn len(&self, upload: &Upload) -> io::Result<Option<u64>> {
        Ok(Some(upload.size_bytes))
    }
}

#[test]
fn size_mismatch_found_mid_stream_removes_the_partial_archive() {
    let dump = Dump::open(sample_dump()).unwrap();
    let records = dump.records().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("export.zip");
    // An existing file at the output path survives a failed build untouched.
    fs::write(&out, b"previous export").unwrap();
    let blobs = Truncating(dump.blobs());
    let err =
        batch_export::export_to_path(records, &blobs, &out, &ExportOptions::new()).unwrap_err();
    assert!(err.is_refusal(), "{err}");
    assert!(err.to_string().contains("field `size_bytes`"), "{err}");
    assert_eq!(files_in(out_dir.path()), ["export.zip"]);
    assert_eq!(fs::read(&out).unwrap(), b"previous export");
}

#[test]
fn an_unwritable_output_is_an_io_error_not_a_refusal() {
    let err = build(
        &sample_dump(),
        std::path::Path::new("/nonexistent-dir/x.zip"),
        &ExportOptions::new(),
    )
    .unwrap_err();
    assert!(!err.is_refusal());
    assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
}
