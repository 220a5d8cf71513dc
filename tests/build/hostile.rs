//! A dump that reaches outside itself, or holds something other than
//! regular files (issue 9): refused with the file, line and field at
//! fault, never read, never hanging.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use batch_export::ExportOptions;

use crate::common::*;

/// A copy of the sample dump, and a folder outside it with a secret.
fn sample_copy() -> (tempfile::TempDir, tempfile::TempDir) {
    let dump = tempfile::tempdir().unwrap();
    copy_dir(&sample_dump(), dump.path());
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("passwd"), "root:x:0:0\n").unwrap();
    fs::copy(
        dump.path().join("blobs/scan-05.png"),
        outside.path().join("scan-05.png"),
    )
    .unwrap();
    (dump, outside)
}

fn refusal(dump: &Path) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("x.zip");
    let err = build(dump, &out, &ExportOptions::new()).unwrap_err();
    assert!(err.is_refusal(), "{err}");
    assert!(files_in(out_dir.path()).is_empty());
    err.to_string()
}

#[test]
fn an_upload_linked_outside_the_dump_is_refused() {
    let (dump, outside) = sample_copy();
    let upload = dump.path().join("uploads/up-01");
    fs::remove_file(&upload).unwrap();
    symlink(outside.path().join("passwd"), &upload).unwrap();
    let message = refusal(dump.path());
    assert!(
        message.contains(
            "uploads.jsonl:1: field `file_key`: the bytes of upload \"up-01\": resolves outside the dump directory"
        ),
        "{message}"
    );
}

#[test]
fn an_upload_reached_through_a_linked_directory_is_refused() {
    let (dump, outside) = sample_copy();
    fs::remove_dir_all(dump.path().join("blobs")).unwrap();
    symlink(outside.path(), dump.path().join("blobs")).unwrap();
    let message = refusal(dump.path());
    assert!(
        message.contains(
            "uploads.jsonl:5: field `path`: the bytes of upload \"up-05\": resolves outside the dump directory"
        ),
        "{message}"
    );
}

#[test]
fn a_link_that_stays_inside_the_dump_is_followed() {
    let (dump, _outside) = sample_copy();
    let blob = dump.path().join("blobs/scan-05.png");
    fs::rename(&blob, dump.path().join("uploads/scan")).unwrap();
    symlink("../uploads/scan", &blob).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    build(
        dump.path(),
        &out_dir.path().join("x.zip"),
        &ExportOptions::new(),
    )
    .unwrap();
}

#[test]
fn a_record_file_linked_outside_the_dump_is_refused() {
    let (dump, outside) = sample_copy();
    let tasks = dump.path().join("tasks.jsonl");
    fs::rename(&tasks, outside.path().join("tasks.jsonl")).unwrap();
    symlink(outside.path().join("tasks.jsonl"), &tasks).unwrap();
    let message = refusal(dump.path());
    assert!(
        message.contains("tasks.jsonl: resolves outside the dump directory"),
        "{message}"
    );
}

#[test]
fn a_fifo_or_a_directory_in_place_of_a_file_is_refused_without_hanging() {
    let (dump, _outside) = sample_copy();
    let tasks = dump.path().join("tasks.jsonl");
    fs::remove_file(&tasks).unwrap();
    let c_path = std::ffi::CString::new(tasks.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let responses = dump.path().join("responses.jsonl");
    fs::remove_file(&responses).unwrap();
    fs::create_dir(&responses).unwrap();
    let upload = dump.path().join("uploads/up-02");
    fs::remove_file(&upload).unwrap();
    // SAFETY: as above.
    let c_upload = std::ffi::CString::new(upload.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_upload.as_ptr(), 0o600) }, 0);
    let message = refusal(dump.path());
    for expected in [
        "tasks.jsonl: not a regular file (a FIFO)",
        "responses.jsonl: not a regular file (a directory)",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    // With the record files back, the FIFO upload is what is refused.
    fs::remove_file(&tasks).unwrap();
    fs::copy(sample_dump().join("tasks.jsonl"), &tasks).unwrap();
    fs::remove_dir(&responses).unwrap();
    fs::copy(sample_dump().join("responses.jsonl"), &responses).unwrap();
    let message = refusal(dump.path());
    assert!(
        message.contains(
            "uploads.jsonl:2: field `file_key`: the bytes of upload \"up-02\": not a regular file (a FIFO)"
        ),
        "{message}"
    );
}

#[test]
fn the_deepest_record_build_accepts_verify_accepts_too() {
    let (dump, _outside) = sample_copy();
    let limit = batch_export::dump::MAX_JSON_DEPTH;
    // The task is level 1, its datapoint level 2, then lists to the limit.
    let deep = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    let tasks = fs::read_to_string(dump.path().join("tasks.jsonl")).unwrap();
    let first = tasks.lines().next().unwrap();
    let with_depth = |levels: usize| {
        first.replacen(
            "\"datapoint\": {",
            &format!("\"datapoint\": {{\"deep\": {}, ", deep(levels)),
            1,
        )
    };
    let deepest = with_depth(limit - 2);
    assert_ne!(deepest, first);
    let rest: Vec<&str> = tasks.lines().skip(1).collect();
    fs::write(
        dump.path().join("tasks.jsonl"),
        format!("{deepest}\n{}\n", rest.join("\n")),
    )
    .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("x.zip");
    build(dump.path(), &out, &ExportOptions::new()).unwrap();
    let report = batch_export::verify::verify(fs::File::open(&out).unwrap()).unwrap();
    assert!(report.is_ok(), "{report}");

    // One level more is refused, by line.
    let deeper = with_depth(limit - 1);
    fs::write(
        dump.path().join("tasks.jsonl"),
        format!("{deeper}\n{}\n", rest.join("\n")),
    )
    .unwrap();
    let message = refusal(dump.path());
    assert!(
        message.contains(&format!("tasks.jsonl:1: nested deeper than {limit}")),
        "{message}"
    );
}
