//! Same records, same bytes: whatever the line order of the unordered
//! files, the line endings, or the number of threads.

use std::fs;

use batch_export::ExportOptions;

use crate::common::*;

fn archive_bytes(dump: &std::path::Path, options: &ExportOptions) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    build(dump, &out, options).unwrap();
    fs::read(out).unwrap()
}

#[test]
fn shuffled_lines_give_identical_bytes() {
    let reference = archive_bytes(&sample_dump(), &ExportOptions::new());
    let orders: [fn(&mut Vec<String>); 3] = [
        |lines| lines.reverse(),
        |lines| lines.rotate_left(3),
        |lines| {
            // Evens then odds: a permutation unlike the others.
            let (even, odd): (Vec<_>, Vec<_>) =
                lines.drain(..).enumerate().partition(|(i, _)| i % 2 == 0);
            lines.extend(even.into_iter().chain(odd).map(|(_, l)| l));
        },
    ];
    for reorder in orders {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&sample_dump(), copy.path());
        for file in ["submissions.jsonl", "responses.jsonl", "uploads.jsonl"] {
            reorder_lines(&copy.path().join(file), reorder);
        }
        assert_eq!(archive_bytes(copy.path(), &ExportOptions::new()), reference);
    }
}

#[test]
fn line_endings_and_blank_lines_do_not_matter() {
    let reference = archive_bytes(&sample_dump(), &ExportOptions::new());
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&sample_dump(), copy.path());
    for file in [
        "instructions.jsonl",
        "tasks.jsonl",
        "submissions.jsonl",
        "responses.jsonl",
    ] {
        let path = copy.path().join(file);
        let text = fs::read_to_string(&path).unwrap().replace("\r\n", "\n");
        fs::write(&path, text.replace('\n', "\r\n\r\n")).unwrap();
    }
    assert_eq!(archive_bytes(copy.path(), &ExportOptions::new()), reference);
}

#[test]
fn thread_count_does_not_change_the_bytes() {
    let one = archive_bytes(&sample_dump(), &ExportOptions::new().threads(1));
    for threads in [2, 3, 8] {
        assert_eq!(
            archive_bytes(&sample_dump(), &ExportOptions::new().threads(threads)),
            one
        );
    }
}

#[test]
fn large_text_entries_are_identical_across_thread_counts() {
    // Enough responses that the JSONL views span several deflate chunks.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&sample_dump(), copy.path());
    let mut lines = String::new();
    for i in 0..12_000 {
        lines.push_str(&format!(
            "{{\"id\":\"bulk-{i:05}\",\"submission_id\":\"sub-b2\",\"task_id\":\"t-00{}\",\"created_at\":\"2024-05-01T10:{:02}:{:02}Z\",\"response\":{{\"instruction_id\":\"i-caption\",\"type\":\"free_text\",\"answer\":[{{\"value\":\"note number {i} with some words to compress\"}}]}}}}\n",
            1 + i % 4,
            (i / 60) % 60,
            i % 60
        ));
    }
    let path = copy.path().join("responses.jsonl");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(&lines);
    fs::write(&path, text).unwrap();
    let one = archive_bytes(copy.path(), &ExportOptions::new().threads(1));
    let four = archive_bytes(copy.path(), &ExportOptions::new().threads(4));
    assert!(one.len() > 100_000);
    assert_eq!(one, four);
}

/// `responses.jsonl` padded with blank lines to span many of the reader's
/// 8 MB blocks: records fall across block boundaries, and one blank line
/// is longer than a block.
fn pad_across_blocks(path: &std::path::Path) -> usize {
    let text = fs::read_to_string(path).unwrap();
    let mut padded = String::new();
    for (index, line) in text.lines().enumerate() {
        padded.push_str(line);
        padded.push('\n');
        let blank = if index == 10 { 9 << 20 } else { 700_001 };
        padded.push_str(&" ".repeat(blank));
        padded.push('\n');
    }
    fs::write(path, &padded).unwrap();
    padded.lines().count()
}

#[test]
fn records_across_read_blocks_give_identical_bytes() {
    let reference = archive_bytes(&sample_dump(), &ExportOptions::new());
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&sample_dump(), copy.path());
    let responses = copy.path().join("responses.jsonl");
    pad_across_blocks(&responses);
    assert!(fs::metadata(&responses).unwrap().len() > 3 * (8 << 20));
    assert_eq!(archive_bytes(copy.path(), &ExportOptions::new()), reference);
}

#[test]
fn line_numbers_count_every_read_block() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&sample_dump(), copy.path());
    let responses = copy.path().join("responses.jsonl");
    let lines = pad_across_blocks(&responses);
    let mut text = fs::read_to_string(&responses).unwrap();
    text.push_str("{\"id\": \"broken\"\n");
    fs::write(&responses, text).unwrap();
    let err = batch_export::Dump::open(copy.path())
        .unwrap()
        .check()
        .unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.file, "responses.jsonl");
    assert_eq!(problem.line, Some(lines as u64 + 1), "{problem:?}");
}
