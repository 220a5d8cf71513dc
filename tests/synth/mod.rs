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
