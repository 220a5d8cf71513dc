//! `verify` on archives made with the options of SPEC section 8: they pass,
//! and a table, a pseudonym or a path that breaks the option is reported.

use std::io::{Cursor, Read};

use batch_export::{verify, Dump, ExportOptions};

use super::{check, hand_made, messages, sample_dump};

fn archive(options: &ExportOptions) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    Dump::open(sample_dump())
        .unwrap()
        .export(&mut out, options)
        .unwrap();
    out.into_inner()
}

/// The archive's entries, one of them changed by `edit`, written again.
fn rewritten(bytes: &[u8], name: &str, edit: impl Fn(&str) -> String) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut entries = Vec::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        if file.name() == name {
            data = edit(std::str::from_utf8(&data).unwrap()).into_bytes();
        }
        entries.push((file.name().to_owned(), data));
    }
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    hand_made(&refs)
}

fn against_dump(bytes: Vec<u8>) -> verify::Report {
    let dump = Dump::open(sample_dump()).unwrap();
    verify::verify_against_dump(Cursor::new(bytes), &dump).unwrap()
}

#[test]
fn a_missing_table_row_is_reported() {
    let bytes = archive(&ExportOptions::new().tables(true));
    let bytes = rewritten(&bytes, "responses.csv", |csv| {
        csv.lines()
            .filter(|l| !l.contains("r-0007"))
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
    });
    let report = check(&bytes);
    let text = messages(&report);
    assert!(
        text.contains("20 rows, but responses-by-submission.jsonl holds 22 answer items"),
        "{text}"
    );
    assert!(
        text.contains("`export.counts.responses_csv_rows` is 22"),
        "{text}"
    );
    assert!(messages(&against_dump(bytes)).contains("differs from the table the dump gives"));
}

#[test]
fn an_altered_cell_is_reported_with_its_column() {
    let bytes = archive(&ExportOptions::new().tables(true));
    let bytes = rewritten(&bytes, "responses.csv", |csv| {
        csv.replace(",12.5,,m,", ",13,,m,")
    });
    let text = messages(&check(&bytes));
    assert!(
        text.contains("responses.csv:5: the row differs from its answer item in responses-by-submission.jsonl in value"),
        "{text}"
    );
    let bytes = archive(&ExportOptions::new().tables(true));
    let bytes = rewritten(&bytes, "codebook.csv", |csv| csv.replace(",fox,", ",wolf,"));
    let text = messages(&check(&bytes));
    assert!(text.contains("in option_value"), "{text}");
}

#[test]
fn tables_without_their_counts_are_reported() {
    let bytes = archive(&ExportOptions::new().tables(true));
    let bytes = rewritten(&bytes, "batch.json", |batch| {
        batch
            .replace(",\n      \"responses_csv_rows\": 22", "")
            .replace(",\n      \"codebook_csv_rows\": 12", "")
    });
    let text = messages(&check(&bytes));
    assert!(
        text.contains("the archive has tables, but `export.counts` does not count their rows"),
        "{text}"
    );
}

#[test]
fn a_participant_id_that_is_no_pseudonym_is_reported() {
    let bytes = archive(&ExportOptions::new());
    let bytes = rewritten(&bytes, "batch.json", |batch| {
        batch.replace(
            "\"format_version\": 1,",
            "\"format_version\": 1,\n    \"participants\": \"pseudonymised\",",
        )
    });
    let text = messages(&check(&bytes));
    assert!(
        text.contains("participant_id \"p-1\" is not a pseudonym"),
        "{text}"
    );
}

#[test]
fn pseudonyms_that_merge_two_participants_are_reported() {
    let options = ExportOptions::new().pseudonymise(b"k");
    let bytes = archive(&options);
    let p1 = batch_export::pseudonym::pseudonym(b"k", "p-1");
    let p2 = batch_export::pseudonym::pseudonym(b"k", "p-2");
    assert!(check(&bytes).is_ok());
    assert!(against_dump(bytes.clone()).is_ok());
    let merged = ["responses-by-submission.jsonl", "responses-by-task.jsonl"]
        .iter()
        .fold(bytes, |bytes, view| {
            rewritten(&bytes, view, |text| text.replace(&p2, &p1))
        });
    let text = messages(&against_dump(merged));
    assert!(
        text.contains("pseudonyms are not one per participant of the dump"),
        "{text}"
    );
}

#[test]
fn a_path_in_an_archive_without_files_is_reported() {
    let bytes = archive(&ExportOptions::new());
    let bytes = rewritten(&bytes, "batch.json", |batch| {
        batch.replace(
            "\"format_version\": 1,",
            "\"format_version\": 1,\n    \"files\": \"omitted\",",
        )
    });
    let text = messages(&check(&bytes));
    assert!(
        text.contains("yet the archive was made without files"),
        "{text}"
    );
    assert!(
        text.contains("files/ entries, yet `export.files` says the files were omitted"),
        "{text}"
    );
}
