//! `responses.csv` of random dumps read back with pandas (`check_tables.py`):
//! one row per answer item of the views, with the same values, also when
//! the values are awkward for CSV and spreadsheets.

use std::fs;
use std::path::Path;
use std::process::Command;

use batch_export::ExportOptions;
use serde_json::Value;

use super::random_dump;
use crate::common::*;

/// Free-text values that CSV quoting, spreadsheets and readers' NA
/// detection get wrong when they get them wrong.
const AWKWARD: [&str; 15] = [
    "=SUM(A1:A2)",
    "+1",
    "-3",
    "@cmd",
    "a, b",
    "say \"hi\"",
    "two\nlines",
    "crlf\r\nend",
    "NA",
    "007",
    " padded ",
    "",
    "null",
    "tab\there",
    "ünï,cödé",
];
/// Numbers as text that a reader would re-print differently.
const NUMBERS: [&str; 4] = ["12.50", "1e3", "-0.0", "40"];

/// Gives the dump's free-text answers awkward values and its numbers
/// awkward spellings, and its participants ids no other text contains.
fn make_awkward(dump: &Path) {
    let path = dump.join("responses.jsonl");
    let mut out = String::new();
    for (n, line) in fs::read_to_string(&path).unwrap().lines().enumerate() {
        let mut response: Value = serde_json::from_str(line).unwrap();
        let kind = response["response"]["type"].as_str().unwrap().to_owned();
        let items = response["response"]["answer"].as_array_mut().unwrap();
        let mut text = match (kind.as_str(), items.first_mut()) {
            ("free_text", Some(item)) => {
                item["value"] = AWKWARD[n % AWKWARD.len()].into();
                response.to_string()
            }
            ("free_text_with_unit", Some(item)) => {
                item["value"] = "__number__".into();
                response
                    .to_string()
                    .replace("\"__number__\"", NUMBERS[n % NUMBERS.len()])
            }
            _ => response.to_string(),
        };
        text = text.replace(
            "\"participant_id\":\"p",
            "\"participant_id\":\"prolific-pid-",
        );
        out.push_str(&text);
        out.push('\n');
    }
    fs::write(&path, out).unwrap();
    let path = dump.join("submissions.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replace(
            "\"participant_id\":\"p",
            "\"participant_id\":\"prolific-pid-",
        ),
    )
    .unwrap();
}

#[test]
fn random_dumps_tables_read_back_with_pandas_hold_every_answer_item() {
    let Some(python) = crate::readers::python_with_pandas() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/check_tables.py");
    for seed in 1..=8u64 {
        let dump = tempfile::tempdir().unwrap();
        random_dump::write(dump.path(), seed);
        make_awkward(dump.path());
        let mut options = ExportOptions::new().tables(true);
        if seed % 2 == 0 {
            options = options.pseudonymise(format!("key {seed}"));
        }
        if seed % 3 == 0 {
            options = options.include_files(false);
        }
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("a.zip");
        build(dump.path(), &out, &options).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let result = Command::new(&python)
            .arg(&script)
            .arg(&out)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success(),
            "seed {seed}: {printed}{}",
            String::from_utf8_lossy(&result.stderr)
        );
        let batch: Value = serde_json::from_slice(&entry(&out, "batch.json")).unwrap();
        let rows = &batch["export"]["counts"]["responses_csv_rows"];
        assert_eq!(printed.trim(), format!("ok {rows}"), "seed {seed}");
        if seed % 2 == 0 {
            for (name, bytes) in read_entries(&out) {
                assert!(
                    memchr::memmem::find(&bytes, b"prolific-pid-").is_none(),
                    "seed {seed}: an original participant id in {name}"
                );
            }
        }
    }
}

/// On random dumps, with every other option on or off, `tables` adds its
/// two entries and leaves every other entry but `batch.json` (its counts)
/// and `README.md` (its table section) byte-identical: the JSON Lines
/// views above all.
#[test]
fn random_dumps_tables_leave_the_views_byte_identical() {
    for seed in 11..=16u64 {
        let dump = tempfile::tempdir().unwrap();
        random_dump::write(dump.path(), seed);
        make_awkward(dump.path());
        let mut options = ExportOptions::new();
        if seed % 2 == 0 {
            options = options.pseudonymise(format!("key {seed}"));
        }
        if seed % 3 == 0 {
            options = options.include_files(false);
        }
        let entries = |options: &ExportOptions| {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("a.zip");
            build(dump.path(), &out, options).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            read_entries(&out)
        };
        let plain = entries(&options);
        let tables = entries(&options.clone().tables(true));
        let tables_only = ["responses.csv", "codebook.csv"];
        let names = |entries: &[(String, Vec<u8>)]| -> Vec<String> {
            entries
                .iter()
                .map(|(name, _)| name.clone())
                .filter(|name| !tables_only.contains(&name.as_str()))
                .collect()
        };
        assert_eq!(names(&tables), names(&plain), "seed {seed}");
        assert_eq!(tables.len(), plain.len() + 2, "seed {seed}");
        for (name, bytes) in &plain {
            if name == "batch.json" || name == "README.md" {
                continue;
            }
            let with_tables = &tables.iter().find(|(n, _)| n == name).unwrap().1;
            assert!(with_tables == bytes, "seed {seed}: {name} differs");
        }
        assert!(plain.iter().any(|(n, _)| n == "responses-by-task.jsonl"));
    }
}
