//! The sample dump's archive, entry by entry, against golden files in
//! `fixtures/expected/sample-batch/` (compared as bytes and as parsed JSON),
//! plus the archive properties the golden files cannot show.

use std::collections::BTreeMap;
use std::fs;

use batch_export::ExportOptions;
use serde_json::Value;

use crate::common::*;

fn expected(name: &str) -> Vec<u8> {
    fs::read(fixtures().join("expected/sample-batch").join(name)).unwrap()
}

fn sample_archive() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample.zip");
    build(&sample_dump(), &out, &ExportOptions::new()).unwrap();
    (dir, out)
}

#[test]
fn entries_are_in_contract_order() {
    let (_dir, out) = sample_archive();
    let names: Vec<String> = read_entries(&out).into_iter().map(|(n, _)| n).collect();
    let golden = String::from_utf8(expected("entries.txt")).unwrap();
    assert_eq!(names, golden.lines().collect::<Vec<_>>());
    let files: Vec<&String> = names.iter().filter(|n| n.starts_with("files/")).collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "files/ entries sorted by name");
}

#[test]
fn text_entries_match_golden_files_as_bytes_and_as_json() {
    let (_dir, out) = sample_archive();
    for name in ["responses-by-submission.jsonl", "responses-by-task.jsonl"] {
        let actual = entry(&out, name);
        let golden = expected(name);
        let parse = |bytes: &[u8]| -> Vec<Value> {
            String::from_utf8(bytes.to_vec())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        assert_eq!(parse(&actual), parse(&golden), "{name} as JSON");
        assert_eq!(actual, golden, "{name} as bytes");
    }
    let batch: Value = serde_json::from_slice(&entry(&out, "batch.json")).unwrap();
    let golden: Value = serde_json::from_slice(&expected("batch.json")).unwrap();
    assert_eq!(batch, golden);
    assert_eq!(entry(&out, "batch.json"), expected("batch.json"));
    assert_eq!(entry(&out, "README.md"), expected("README.md"));
}

#[test]
fn batch_json_keeps_the_batch_and_adds_instructions_and_export() {
    let (_dir, out) = sample_archive();
    let batch: Value = serde_json::from_slice(&entry(&out, "batch.json")).unwrap();
    let given: Value =
        serde_json::from_slice(&fs::read(sample_dump().join("batch.json")).unwrap()).unwrap();
    for (key, value) in given.as_object().unwrap() {
        assert_eq!(&batch[key], value, "batch field {key} as given");
    }
    let instructions: Vec<Value> = fs::read_to_string(sample_dump().join("instructions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(batch["instructions"], Value::Array(instructions));
    let export = &batch["export"];
    assert_eq!(export["format_version"], 1);
    // The latest created_at/started_at/completed_at of any record, excluded responses included.
    assert_eq!(export["generated_at"], "2024-05-03T07:06:00Z");
    let counts = &export["counts"];
    let by_submission = jsonl(&out, "responses-by-submission.jsonl");
    let by_task = jsonl(&out, "responses-by-task.jsonl");
    let responses: usize = by_task
        .iter()
        .map(|t| t["responses"].as_array().unwrap().len())
        .sum();
    let files = read_entries(&out)
        .iter()
        .filter(|(n, _)| n.starts_with("files/"))
        .count();
    assert_eq!(counts["submissions"], by_submission.len());
    assert_eq!(counts["tasks"], by_task.len());
    assert_eq!(counts["responses"], responses);
    assert_eq!(counts["files"], files);
    // r-0010, r-0019, r-0020 and r-0021 are no_submission.
    assert_eq!(counts["excluded_no_submission"], 4);
}

#[test]
fn every_line_has_every_key_with_null_for_missing_fields() {
    let (_dir, out) = sample_archive();
    let response_keys = [
        "response_id",
        "instruction_id",
        "type",
        "answer",
        "correlation_id",
        "created_at",
    ];
    for line in jsonl(&out, "responses-by-submission.jsonl") {
        for key in [
            "submission_id",
            "participant_id",
            "study_id",
            "status",
            "started_at",
            "completed_at",
            "tasks",
        ] {
            assert!(
                line.get(key).is_some(),
                "submission line lacks {key}: {line}"
            );
        }
        for task in line["tasks"].as_array().unwrap() {
            for response in task["responses"].as_array().unwrap() {
                for key in response_keys {
                    assert!(response.get(key).is_some(), "response lacks {key}");
                }
            }
        }
    }
    for line in jsonl(&out, "responses-by-task.jsonl") {
        for key in ["task_id", "group_id", "datapoint", "metadata", "responses"] {
            assert!(line.get(key).is_some(), "task line lacks {key}");
        }
        for response in line["responses"].as_array().unwrap() {
            for key in response_keys
                .iter()
                .chain(&["submission_id", "participant_id"])
            {
                assert!(response.get(*key).is_some(), "response lacks {key}");
            }
        }
    }
    let by_submission = jsonl(&out, "responses-by-submission.jsonl");
    let c3 = by_submission
        .iter()
        .find(|s| s["submission_id"] == "sub-c3")
        .unwrap();
    assert_eq!(c3["started_at"], Value::Null, "sub-c3 has no started_at");
    let by_task = jsonl(&out, "responses-by-task.jsonl");
    let t4 = by_task.iter().find(|t| t["task_id"] == "t-004").unwrap();
    assert_eq!(
        (&t4["group_id"], &t4["datapoint"], &t4["metadata"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
}

#[test]
fn excluded_and_unused_records_are_left_out() {
    let (_dir, out) = sample_archive();
    let by_submission = jsonl(&out, "responses-by-submission.jsonl");
    let submissions: Vec<&str> = by_submission
        .iter()
        .map(|s| s["submission_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        submissions,
        ["sub-a1", "sub-b2", "sub-c3"],
        "sorted by id; sub-d4 has only no_submission"
    );
    let by_task = jsonl(&out, "responses-by-task.jsonl");
    let tasks: Vec<&str> = by_task
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        tasks,
        ["t-001", "t-002", "t-003", "t-004"],
        "task order; t-005 only has no_submission"
    );
    let text = String::from_utf8(entry(&out, "responses-by-task.jsonl")).unwrap();
    assert!(!text.contains("no_submission"));
    assert!(
        !read_entries(&out).iter().any(|(n, _)| n.contains("unused")),
        "orphan upload up-06 not exported"
    );
}

#[test]
fn responses_are_ordered_as_the_contract_says() {
    let (_dir, out) = sample_archive();
    let instruction_order = [
        "i-caption",
        "i-species",
        "i-quality",
        "i-distance",
        "i-photo",
    ];
    let rank = |r: &Value| {
        instruction_order
            .iter()
            .position(|i| *i == r["instruction_id"])
            .unwrap()
    };
    let instant = |r: &Value| {
        r["created_at"].as_str().map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp_nanos()
        })
    };
    for line in jsonl(&out, "responses-by-submission.jsonl") {
        for task in line["tasks"].as_array().unwrap() {
            let responses = task["responses"].as_array().unwrap();
            for pair in responses.windows(2) {
                let key = |r: &Value| {
                    (
                        rank(r),
                        instant(r),
                        r["response_id"].as_str().unwrap().to_owned(),
                    )
                };
                assert!(
                    key(&pair[0]) < key(&pair[1]),
                    "{} before {}",
                    pair[0]["response_id"],
                    pair[1]["response_id"]
                );
            }
        }
    }
    for line in jsonl(&out, "responses-by-task.jsonl") {
        let responses = line["responses"].as_array().unwrap();
        for pair in responses.windows(2) {
            let key = |r: &Value| {
                (
                    r["submission_id"].as_str().unwrap().to_owned(),
                    rank(r),
                    instant(r),
                    r["response_id"].as_str().unwrap().to_owned(),
                )
            };
            assert!(key(&pair[0]) < key(&pair[1]));
        }
    }
}

#[test]
fn upload_answers_point_at_their_files_with_the_dumps_bytes() {
    let (_dir, out) = sample_archive();
    let entries: BTreeMap<String, Vec<u8>> = read_entries(&out).into_iter().collect();
    let uploads: BTreeMap<String, Value> = fs::read_to_string(sample_dump().join("uploads.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|u| (u["file_key"].as_str().unwrap().to_owned(), u))
        .collect();
    let mut seen = 0;
    for line in jsonl(&out, "responses-by-task.jsonl") {
        for response in line["responses"].as_array().unwrap() {
            if response["type"] != "file_upload" {
                continue;
            }
            for item in response["answer"].as_array().unwrap() {
                let path = item["path"].as_str().unwrap();
                let upload = &uploads[item["file_key"].as_str().unwrap()];
                let blob = match upload.get("path") {
                    Some(p) => sample_dump().join(p.as_str().unwrap()),
                    None => sample_dump()
                        .join("uploads")
                        .join(item["file_key"].as_str().unwrap()),
                };
                assert_eq!(entries[path], fs::read(blob).unwrap(), "{path}");
                let sid = response["submission_id"].as_str().unwrap();
                assert!(
                    path.starts_with(&format!("files/{sid}_")),
                    "{path} names its submission"
                );
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 5);
}

#[test]
fn compressed_types_are_stored_and_the_rest_deflated() {
    let (_dir, out) = sample_archive();
    let methods: BTreeMap<String, u16> = central_directory(&out)
        .into_iter()
        .map(|e| (e.name, e.method))
        .collect();
    for name in [
        "files/sub-a1_photo.jpg",
        "files/sub-a1_photo-2.jpg",
        "files/sub-c3_scan_.png",
    ] {
        assert_eq!(methods[name], 0, "{name} stored");
    }
    for name in [
        "README.md",
        "batch.json",
        "responses-by-task.jsonl",
        "files/sub-b2_measurements.csv",
    ] {
        assert_eq!(methods[name], 8, "{name} deflated");
    }
}

#[test]
fn headers_carry_utf8_flag_only_on_non_ascii_names_and_no_data_descriptors() {
    let (_dir, out) = sample_archive();
    let entries = central_directory(&out);
    assert!(
        entries.iter().any(|e| !e.name.is_ascii()),
        "the sample has a non-ASCII name"
    );
    let bytes = fs::read(&out).unwrap();
    for e in &entries {
        assert_eq!(
            e.flags & (1 << 11) != 0,
            !e.name.is_ascii(),
            "UTF-8 flag of {}",
            e.name
        );
        assert_eq!(e.flags & (1 << 3), 0, "no data descriptor for {}", e.name);
        assert_eq!(e.extra_len, 0, "no ZIP64 extra for small entry {}", e.name);
        let local = e.local_offset as usize;
        assert_eq!(&bytes[local..local + 4], b"PK\x03\x04");
        let local_flags = u16::from_le_bytes([bytes[local + 6], bytes[local + 7]]);
        assert_eq!(local_flags, e.flags, "local and central flags agree");
        let local_crc = &bytes[local + 14..local + 18];
        assert_ne!(
            local_crc,
            [0, 0, 0, 0],
            "CRC is in the local header of {}",
            e.name
        );
    }
}

#[test]
fn entry_times_are_generated_at() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    let options = ExportOptions::new().generated_at("2025-02-03T04:05:06+01:00");
    let summary = build(&sample_dump(), &out, &options).unwrap();
    assert_eq!(summary.generated_at, "2025-02-03T04:05:06+01:00");
    for e in central_directory(&out) {
        // 03:05:06 UTC, in two-second steps.
        assert_eq!(e.dos_time, (3 << 11) | (5 << 5) | 3);
        assert_eq!(e.dos_date, (45 << 9) | (2 << 5) | 3);
    }
    let batch: Value = serde_json::from_slice(&entry(&out, "batch.json")).unwrap();
    assert_eq!(batch["export"]["generated_at"], "2025-02-03T04:05:06+01:00");
}

#[test]
fn a_dump_without_uploads_builds_without_files() {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&sample_dump(), copy.path());
    fs::remove_file(copy.path().join("uploads.jsonl")).unwrap();
    reorder_lines(&copy.path().join("responses.jsonl"), |lines| {
        lines.retain(|l| !l.contains("file_upload"))
    });
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("a.zip");
    let summary = build(copy.path(), &out, &ExportOptions::new()).unwrap();
    assert_eq!(summary.counts.files, 0);
    let names: Vec<String> = read_entries(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "README.md",
            "batch.json",
            "responses-by-submission.jsonl",
            "responses-by-task.jsonl"
        ]
    );
    let readme = String::from_utf8(entry(&out, "README.md")).unwrap();
    assert!(readme.contains("there is no `files/` folder"));
}
