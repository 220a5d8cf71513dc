//! Synthetic dumps: `gen` is deterministic, its dumps pass the checks, and
//! they build into byte-identical archives whatever the thread count or the
//! order of the input lines.

use std::fs;
use std::path::Path;

use batch_export::synth::{generate, SynthOptions};
use batch_export::{Dump, ExportOptions};

fn options() -> SynthOptions {
    SynthOptions {
        seed: 42,
        submissions: 12,
        tasks: 4,
        instructions: 7,
        no_submission_share: 0.1,
        uploads: 30,
        upload_min_bytes: 100,
        // A few uploads above the 4 MiB at which the writer streams them.
        upload_max_bytes: 6 << 20,
        incompressible_share: 0.5,
    }
}

fn build(dir: &Path, threads: usize) -> Vec<u8> {
    let dump = Dump::open(dir).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    dump.export(&mut out, &ExportOptions::new().threads(threads))
        .unwrap();
    out.into_inner()
}

/// Reverses, then interleaves, the lines: a fixed but thorough reordering.
fn shuffle_lines(path: &Path) {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().rev().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let mut mixed: Vec<&str> = Vec::new();
    for i in 0..a.len().max(b.len()) {
        mixed.extend(b.get(i));
        mixed.extend(a.get(i));
    }
    assert_ne!(mixed, text.lines().collect::<Vec<_>>());
    fs::write(path, mixed.join("\n") + "\n").unwrap();
}

#[test]
fn the_same_seed_writes_the_same_files() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), &options()).unwrap();
    generate(b.path(), &options()).unwrap();
    for name in [
        "batch.json",
        "instructions.jsonl",
        "tasks.jsonl",
        "submissions.jsonl",
        "responses.jsonl",
        "uploads.jsonl",
        "uploads/u-0000029",
    ] {
        assert_eq!(
            fs::read(a.path().join(name)).unwrap(),
            fs::read(b.path().join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn generated_dump_has_every_type_and_passes_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), &options()).unwrap();
    assert_eq!(summary.responses, 12 * 4 * 7);
    let dump = Dump::open(dir.path()).unwrap();
    dump.check().unwrap();
    let responses = fs::read_to_string(dir.path().join("responses.jsonl")).unwrap();
    for kind in [
        "\"free_text\"",
        "\"multiple_choice\"",
        "\"multiple_choice_with_free_text\"",
        "\"free_text_with_unit\"",
        "\"file_upload\"",
        "\"no_submission\"",
    ] {
        assert!(responses.contains(kind), "{kind}");
    }
    let uploads = fs::read_to_string(dir.path().join("uploads.jsonl")).unwrap();
    assert!(uploads.contains("image/jpeg") || uploads.contains("video/mp4"));
    assert!(uploads.contains("text/csv") || uploads.contains("application/json"));

    let mut out = std::io::Cursor::new(Vec::new());
    let built = dump.export(&mut out, &ExportOptions::new()).unwrap();
    assert_eq!(built.counts.excluded_no_submission, summary.no_submission);
    assert_eq!(
        built.counts.responses,
        summary.responses - summary.no_submission
    );
}

#[test]
fn builds_are_identical_across_threads_and_line_order() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &options()).unwrap();
    let one = build(dir.path(), 1);
    let four = build(dir.path(), 4);
    assert!(one == four, "1 and 4 threads differ");

    for name in ["submissions.jsonl", "responses.jsonl", "uploads.jsonl"] {
        shuffle_lines(&dir.path().join(name));
    }
    let shuffled = build(dir.path(), 3);
    assert!(one == shuffled, "shuffled input lines change the archive");
}

/// Every upload above the size at which the writer streams them, so each
/// one's first buffer is read while the one before it finishes.
fn large_uploads_only() -> SynthOptions {
    SynthOptions {
        submissions: 4,
        tasks: 2,
        instructions: 5,
        no_submission_share: 0.0,
        uploads: 7,
        upload_min_bytes: (4 << 20) + 1,
        upload_max_bytes: 9 << 20,
        ..options()
    }
}

#[test]
fn consecutive_large_uploads_are_written_whole_and_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &large_uploads_only()).unwrap();
    let one = build(dir.path(), 1);
    let three = build(dir.path(), 3);
    assert!(one == three, "1 and 3 threads differ");
    let dump = Dump::open(dir.path()).unwrap();
    let report =
        batch_export::verify::verify_against_dump(std::io::Cursor::new(&one), &dump).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        report.entries() >= 4 + 2,
        "several uploads: {}",
        report.entries()
    );
}

/// The uploads of a dump's archive in archive order: entry name, whether
/// it is stored, and its bytes.
fn uploads_in_archive(archive: Vec<u8>) -> Vec<(String, bool, Vec<u8>)> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).unwrap();
    let mut found = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        if !entry.name().starts_with("files/") {
            continue;
        }
        let stored = entry.compression() == zip::CompressionMethod::Stored;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        found.push((entry.name().to_owned(), stored, bytes));
    }
    found
}

/// Each large upload, stored or deflated, first or read ahead of its turn,
/// is checked against its SHA-256, and a mismatch names that upload.
#[test]
fn every_large_upload_is_checked_and_blamed_on_itself() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &large_uploads_only()).unwrap();
    let uploads = uploads_in_archive(build(dir.path(), 2));
    assert!(uploads.iter().any(|u| u.1) && uploads.iter().any(|u| !u.1));
    for (name, _, bytes) in &uploads {
        let victim = fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| fs::read(p).unwrap() == *bytes)
            .expect("the upload behind the entry");
        let mut altered = bytes.clone();
        altered[bytes.len() / 2] ^= 0xff;
        fs::write(&victim, &altered).unwrap();

        let dump = Dump::open(dir.path()).unwrap();
        let options = ExportOptions::new().threads(2);
        let err = dump
            .export(std::io::Cursor::new(Vec::new()), &options)
            .expect_err(name);
        let problem = &err.problems()[0];
        let key = victim.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(problem.field.as_deref(), Some("sha256"), "{name}: {err}");
        assert!(problem.message.contains(&key), "{name}: {err}");
        fs::write(&victim, bytes).unwrap();
    }
}
