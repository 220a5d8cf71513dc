//! The archive options (issue 12, SPEC section 8): `tables`,
//! `include_files(false)` and `pseudonymise`, each against the default
//! archive, golden files, `verify`, and determinism.

use std::fs;
use std::path::Path;

use batch_export::{verify, Dump, ExportOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::Value;

use crate::common::*;

fn expected(name: &str) -> Vec<u8> {
    fs::read(fixtures().join("expected/sample-batch").join(name)).unwrap()
}

/// The sample dump's archive with `options`, as its entries.
fn sample_entries(options: &ExportOptions) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    build(&sample_dump(), &out, options).unwrap();
    read_entries(&out)
}

fn bytes_of<'e>(entries: &'e [(String, Vec<u8>)], name: &str) -> &'e [u8] {
    &entries
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
        .1
}

fn export_of(entries: &[(String, Vec<u8>)]) -> Value {
    let batch: Value = serde_json::from_slice(bytes_of(entries, "batch.json")).unwrap();
    batch["export"].clone()
}

/// Verifies an archive alone and against its dump; both must pass.
fn assert_verifies(archive: &Path, dump: &Path) {
    let report = verify::verify(fs::File::open(archive).unwrap()).unwrap();
    assert!(report.is_ok(), "alone: {report}");
    let dump = Dump::open(dump).unwrap();
    let report = verify::verify_against_dump(fs::File::open(archive).unwrap(), &dump).unwrap();
    assert!(report.is_ok(), "against the dump: {report}");
}

#[test]
fn tables_match_the_golden_files() {
    let entries = sample_entries(&ExportOptions::new().tables(true));
    assert_eq!(
        bytes_of(&entries, "responses.csv"),
        expected("responses.csv")
    );
    assert_eq!(bytes_of(&entries, "codebook.csv"), expected("codebook.csv"));
    let counts = &export_of(&entries)["counts"];
    // One row per answer item: r-0007 and r-0013 have two each.
    let items: u64 = jsonl_items(bytes_of(&entries, "responses-by-task.jsonl"));
    assert_eq!(counts["responses_csv_rows"], items);
    // Five instructions, four + three options.
    assert_eq!(counts["codebook_csv_rows"], 12);
}

/// Answer items of a by-task view.
fn jsonl_items(view: &[u8]) -> u64 {
    String::from_utf8_lossy(view)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .flat_map(|l| l["responses"].as_array().unwrap().clone())
        .map(|r| r["answer"].as_array().unwrap().len() as u64)
        .sum()
}

#[test]
fn tables_come_after_the_views_and_leave_every_other_entry_as_it_was() {
    let plain = sample_entries(&ExportOptions::new());
    let tables = sample_entries(&ExportOptions::new().tables(true));
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    let mut wanted: Vec<&str> = plain.iter().map(|(n, _)| n.as_str()).collect();
    wanted.splice(4..4, ["responses.csv", "codebook.csv"]);
    assert_eq!(names, wanted);
    for (name, bytes) in &plain {
        if name != "batch.json" && name != "README.md" {
            assert_eq!(bytes_of(&tables, name), bytes.as_slice(), "{name}");
        }
    }
    // batch.json only gains the two table counts.
    let mut export = export_of(&tables);
    let counts = export["counts"].as_object_mut().unwrap();
    assert!(counts.remove("responses_csv_rows").is_some());
    assert!(counts.remove("codebook_csv_rows").is_some());
    assert_eq!(export, export_of(&plain));
    let readme = String::from_utf8(bytes_of(&tables, "README.md").to_vec()).unwrap();
    assert!(readme.contains("pd.read_csv(\"responses.csv\", dtype=str"));
    assert!(readme.contains("read.csv(\"responses.csv\""));
    assert!(readme.contains("`=`, `+`, `-` or `@`"), "the formula note");
}

#[test]
fn the_default_archive_records_no_option() {
    let export = export_of(&sample_entries(&ExportOptions::new()));
    let keys: Vec<&str> = export
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["format_version", "generated_at", "counts"]);
    assert_eq!(export["counts"].as_object().unwrap().len(), 5);
}

#[test]
fn without_files_no_upload_is_read_and_paths_are_null() {
    // Missing upload bytes are no error when no upload is read.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&sample_dump(), copy.path());
    fs::remove_dir_all(copy.path().join("uploads")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    assert!(
        build(copy.path(), &out, &ExportOptions::new()).is_err(),
        "with files, the missing bytes are refused"
    );
    let options = ExportOptions::new().include_files(false);
    let summary = build(copy.path(), &out, &options).unwrap();
    assert_eq!(summary.counts.files, 0);
    let entries = read_entries(&out);
    assert!(entries.iter().all(|(n, _)| !n.starts_with("files/")));
    assert_eq!(entries.len(), 4);
    assert_eq!(export_of(&entries)["files"], "omitted");
    let mut uploads = 0;
    for line in jsonl(&out, "responses-by-task.jsonl") {
        for response in line["responses"].as_array().unwrap() {
            if response["type"] == "file_upload" {
                for item in response["answer"].as_array().unwrap() {
                    uploads += 1;
                    assert!(item["path"].is_null(), "{item}");
                    assert!(item["file_key"].is_string() && item["file_name"].is_string());
                }
            }
        }
    }
    assert!(uploads > 0);
    let readme = String::from_utf8(bytes_of(&entries, "README.md").to_vec()).unwrap();
    assert!(readme.contains("without the uploaded files"), "{readme}");
    assert_verifies(&out, copy.path());
}

#[test]
fn without_files_the_views_differ_from_the_default_only_in_paths() {
    let plain = sample_entries(&ExportOptions::new());
    let bare = sample_entries(&ExportOptions::new().include_files(false));
    for view in ["responses-by-submission.jsonl", "responses-by-task.jsonl"] {
        let nulled = String::from_utf8_lossy(bytes_of(&plain, view))
            .lines()
            .map(|line| {
                let mut value: Value = serde_json::from_str(line).unwrap();
                null_paths(&mut value);
                value
            })
            .collect::<Vec<_>>();
        let actual: Vec<Value> = String::from_utf8_lossy(bytes_of(&bare, view))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(actual, nulled, "{view}");
    }
}

fn null_paths(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.contains_key("path") {
                object["path"] = Value::Null;
            }
            object.values_mut().for_each(null_paths);
        }
        Value::Array(list) => list.iter_mut().for_each(null_paths),
        _ => {}
    }
}

#[test]
fn pseudonymised_archives_hold_no_original_participant_id() {
    let options = ExportOptions::new()
        .tables(true)
        .pseudonymise(b"operator key");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    build(&sample_dump(), &out, &options).unwrap();
    let entries = read_entries(&out);
    for (name, bytes) in &entries {
        for id in ["p-1", "p-2", "p-3", "p-4"] {
            assert!(
                memchr::memmem::find(bytes, id.as_bytes()).is_none(),
                "{id} in {name}"
            );
        }
    }
    assert_eq!(export_of(&entries)["participants"], "pseudonymised");
    let pseudonym = batch_export::pseudonym::pseudonym(b"operator key", "p-1");
    let by_submission = jsonl(&out, "responses-by-submission.jsonl");
    let first = by_submission
        .iter()
        .find(|l| l["submission_id"] == "sub-a1")
        .unwrap();
    assert_eq!(first["participant_id"], pseudonym.as_str());
    for line in jsonl(&out, "responses-by-task.jsonl") {
        for response in line["responses"].as_array().unwrap() {
            let id = response["participant_id"].as_str().unwrap();
            assert!(batch_export::pseudonym::is_pseudonym(id), "{id}");
        }
    }
    let csv = String::from_utf8(bytes_of(&entries, "responses.csv").to_vec()).unwrap();
    assert!(csv.contains(&pseudonym));
    assert_verifies(&out, &sample_dump());
}

#[test]
fn one_key_gives_the_same_bytes_and_another_key_other_pseudonyms() {
    let with = |key: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.zip");
        build(
            &sample_dump(),
            &out,
            &ExportOptions::new().pseudonymise(key),
        )
        .unwrap();
        fs::read(out).unwrap()
    };
    assert_eq!(with(b"k1"), with(b"k1"));
    assert_ne!(with(b"k1"), with(b"k2"));
    assert!(
        build(
            &sample_dump(),
            &tempfile::tempdir().unwrap().path().join("a.zip"),
            &ExportOptions::new().pseudonymise(b"")
        )
        .is_err(),
        "an empty key is refused"
    );
    let debug = format!("{:?}", ExportOptions::new().pseudonymise(b"secret-key"));
    assert!(!debug.contains("secret-key"), "{debug}");
}

/// Every combination of the three options.
fn every_option_set() -> Vec<ExportOptions> {
    let mut sets = Vec::new();
    for tables in [false, true] {
        for files in [true, false] {
            for key in [None, Some(b"key".as_slice())] {
                let mut options = ExportOptions::new().tables(tables).include_files(files);
                if let Some(key) = key {
                    options = options.pseudonymise(key);
                }
                sets.push(options);
            }
        }
    }
    sets
}

#[test]
fn every_option_set_is_deterministic_across_threads_and_line_order() {
    // Seeded shuffles of the files whose line order carries no meaning.
    let shuffled: Vec<_> = (1..=3u64)
        .map(|seed| {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(&sample_dump(), copy.path());
            for file in ["submissions.jsonl", "responses.jsonl", "uploads.jsonl"] {
                let mut rng = StdRng::seed_from_u64(seed);
                reorder_lines(&copy.path().join(file), |lines| lines.shuffle(&mut rng));
            }
            copy
        })
        .collect();
    for options in every_option_set() {
        let bytes = |dump: &Path, threads: usize| {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("a.zip");
            build(dump, &out, &options.clone().threads(threads)).unwrap();
            fs::read(out).unwrap()
        };
        let reference = bytes(&sample_dump(), 1);
        assert_eq!(bytes(&sample_dump(), 3), reference, "{options:?}: threads");
        for copy in &shuffled {
            assert_eq!(bytes(copy.path(), 2), reference, "{options:?}: line order");
        }
    }
}

#[test]
fn every_option_set_verifies_alone_and_against_its_dump() {
    for options in every_option_set() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.zip");
        build(&sample_dump(), &out, &options).unwrap();
        assert_verifies(&out, &sample_dump());
    }
}

#[test]
#[cfg(feature = "cli")]
fn the_build_command_takes_the_option_flags() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    fs::write(&key, "operator key\n").unwrap();
    let out = dir.path().join("a.zip");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_batch-export"))
        .arg("build")
        .arg(sample_dump())
        .arg("-o")
        .arg(&out)
        .args(["--tables", "--no-files", "--pseudonymise-key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let entries = read_entries(&out);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "README.md",
            "batch.json",
            "responses-by-submission.jsonl",
            "responses-by-task.jsonl",
            "responses.csv",
            "codebook.csv"
        ]
    );
    // The trailing line end is not part of the key.
    let pseudonym = batch_export::pseudonym::pseudonym(b"operator key", "p-1");
    let csv = String::from_utf8(bytes_of(&entries, "responses.csv").to_vec()).unwrap();
    assert!(csv.contains(&pseudonym));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(!stderr.contains("operator key"), "{stderr}");
}
