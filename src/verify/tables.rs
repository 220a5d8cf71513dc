//! The `tables` entries: `responses.csv` and `codebook.csv`, read back with
//! the `csv` crate's reader and checked against the archive's own JSON: one
//! row per answer item of `responses-by-submission.jsonl`, in its order,
//! with the same ids and values; one codebook row per instruction of
//! `batch.json` and per option of a choice instruction; the counts of
//! `export.counts`.
//!
//! A number cell must hold the number its JSON has (the CSV keeps the
//! digits as the input wrote them, the parsed JSON only the value); any
//! other cell the exact text.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::problems::{Sink, VerifyProblemKind};
use super::views::Parsed;
use crate::archive::tables::{CODEBOOK_COLUMNS, RESPONSES_COLUMNS};

/// The name of the long-format table.
pub(crate) const RESPONSES: &str = "responses.csv";
/// The name of the codebook.
pub(crate) const CODEBOOK: &str = "codebook.csv";

/// What a cell should hold: exactly this text, or this JSON value.
#[derive(Debug)]
enum Expected<'v> {
    Text(&'v str),
    Owned(String),
    Json(&'v Value),
}

impl Expected<'_> {
    fn matches(&self, cell: &str) -> bool {
        match self {
            Expected::Text(text) => *text == cell,
            Expected::Owned(text) => text == cell,
            Expected::Json(Value::Null) => cell.is_empty(),
            Expected::Json(Value::String(text)) => text == cell,
            Expected::Json(Value::Bool(b)) => cell == if *b { "true" } else { "false" },
            Expected::Json(Value::Number(n)) => {
                serde_json::from_str::<Value>(cell).is_ok_and(|c| match c {
                    Value::Number(c) => c == *n || c.as_f64() == n.as_f64(),
                    _ => false,
                })
            }
            Expected::Json(value) => {
                serde_json::from_str::<Value>(cell).is_ok_and(|c| c == **value)
            }
        }
    }
}

fn json(value: Option<&Value>) -> Expected<'_> {
    Expected::Json(value.unwrap_or(&Value::Null))
}

/// Checks both tables when the archive has them (or should).
pub(crate) fn check(
    texts: &HashMap<&'static str, Vec<u8>>,
    has_entries: bool,
    parsed: &Parsed,
    sink: &mut Sink,
) {
    if has_entries != parsed.tables && parsed.counts.is_some() {
        let message = if parsed.tables {
            "`export.counts` counts table rows, but responses.csv or codebook.csv is missing"
        } else {
            "the archive has tables, but `export.counts` does not count their rows"
        };
        sink.push(
            VerifyProblemKind::Layout,
            Some("batch.json"),
            None,
            message.to_owned(),
        );
    }
    let count = |key: &str| {
        parsed
            .counts
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(Value::as_u64)
    };
    if let Some(bytes) = texts.get(RESPONSES) {
        let rows = check_responses(bytes, parsed, sink);
        claim(
            count("responses_csv_rows"),
            rows,
            "responses_csv_rows",
            sink,
        );
    }
    if let Some(bytes) = texts.get(CODEBOOK) {
        let rows = check_codebook(bytes, parsed, sink);
        claim(count("codebook_csv_rows"), rows, "codebook_csv_rows", sink);
    }
}

fn claim(claimed: Option<u64>, rows: Option<u64>, key: &str, sink: &mut Sink) {
    if let (Some(claimed), Some(rows)) = (claimed, rows) {
        if claimed != rows {
            let message = format!("`export.counts.{key}` is {claimed}, the table has {rows} rows");
            sink.push(VerifyProblemKind::Counts, Some("batch.json"), None, message);
        }
    }
}

/// Reads a CSV entry: its records with their line, or `None` (reported)
/// when it is not CSV with exactly `columns`.
fn read(
    entry: &str,
    bytes: &[u8],
    columns: &[&str],
    sink: &mut Sink,
) -> Option<Vec<(u64, Vec<String>)>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        syntax(sink, entry, None, "the file is not UTF-8".to_owned());
        return None;
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    // Problems name the record (the header is 1), which is the line
    // unless a cell holds a line break.
    for (index, record) in reader.records().enumerate() {
        match record {
            Ok(record) => {
                let line = index as u64 + 1;
                records.push((line, record.iter().map(str::to_owned).collect::<Vec<_>>()));
            }
            Err(e) => {
                syntax(sink, entry, None, format!("not CSV: {e}"));
                return None;
            }
        }
    }
    if !bytes.is_empty() && !bytes.ends_with(b"\r\n") {
        syntax(
            sink,
            entry,
            None,
            "the last row does not end in CRLF".to_owned(),
        );
    }
    match records.first() {
        Some((_, header))
            if header
                .iter()
                .map(String::as_str)
                .eq(columns.iter().copied()) => {}
        _ => {
            syntax(
                sink,
                entry,
                Some(1),
                format!("the header is not {}", columns.join(",")),
            );
            return None;
        }
    }
    records.remove(0);
    Some(records)
}

/// The rows `responses.csv` must have, from the by-submission view.
fn expected_rows<'v>(parsed: &'v Parsed) -> Vec<[Expected<'v>; 18]> {
    let groups: HashMap<&str, &Value> = parsed
        .by_task
        .iter()
        .filter_map(|(_, line)| Some((line.get("task_id")?.as_str()?, line.get("group_id")?)))
        .collect();
    let array = |object: &'v Map<String, Value>, key: &str| -> &'v [Value] {
        object
            .get(key)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    };
    let mut rows = Vec::new();
    for (_, line) in &parsed.by_submission {
        for task in array(line, "tasks").iter().filter_map(Value::as_object) {
            let task_id = task.get("task_id");
            let group = task_id
                .and_then(Value::as_str)
                .and_then(|t| groups.get(t).copied());
            for response in array(task, "responses").iter().filter_map(Value::as_object) {
                for (index, item) in array(response, "answer").iter().enumerate() {
                    let is_upload =
                        response.get("type").and_then(Value::as_str) == Some("file_upload");
                    let field = |key: &str| match item {
                        Value::Object(item) => json(item.get(key)),
                        other if key == "value" => Expected::Json(other),
                        _ => Expected::Text(""),
                    };
                    let upload_field = |key| {
                        if is_upload {
                            field(key)
                        } else {
                            Expected::Text("")
                        }
                    };
                    rows.push([
                        json(line.get("submission_id")),
                        json(line.get("participant_id")),
                        json(line.get("study_id")),
                        json(line.get("status")),
                        json(task_id),
                        json(group),
                        json(response.get("instruction_id")),
                        json(response.get("type")),
                        json(response.get("response_id")),
                        Expected::Owned(index.to_string()),
                        field("value"),
                        field("explanation"),
                        field("unit"),
                        upload_field("path"),
                        upload_field("file_name"),
                        upload_field("content_type"),
                        json(response.get("correlation_id")),
                        json(response.get("created_at")),
                    ]);
                }
            }
        }
    }
    rows
}

/// Checks `responses.csv`; returns its row count when it could be read.
fn check_responses(bytes: &[u8], parsed: &Parsed, sink: &mut Sink) -> Option<u64> {
    let records = read(RESPONSES, bytes, &RESPONSES_COLUMNS, sink)?;
    let expected = expected_rows(parsed);
    if records.len() != expected.len() {
        let message = format!(
            "{} rows, but responses-by-submission.jsonl holds {} answer items",
            records.len(),
            expected.len()
        );
        content(sink, Some(1), message);
    }
    let source = "its answer item in responses-by-submission.jsonl";
    report_differing_rows(
        sink,
        RESPONSES,
        &RESPONSES_COLUMNS,
        &records,
        &expected,
        source,
    );
    Some(records.len() as u64)
}

/// Checks `codebook.csv` against `batch.json`'s instructions.
fn check_codebook(bytes: &[u8], parsed: &Parsed, sink: &mut Sink) -> Option<u64> {
    let records = read(CODEBOOK, bytes, &CODEBOOK_COLUMNS, sink)?;
    let instructions = parsed
        .batch
        .as_ref()
        .and_then(|b| b.get("instructions"))
        .and_then(Value::as_array);
    let Some(instructions) = instructions else {
        return Some(records.len() as u64);
    };
    let mut expected: Vec<[Expected<'_>; 6]> = Vec::new();
    for instruction in instructions {
        let kind = instruction.get("type");
        let units = instruction
            .get("units")
            .or_else(|| instruction.get("unit_options"));
        let units = match units {
            None | Some(Value::Null) => Expected::Text(""),
            Some(Value::String(text)) => Expected::Text(text),
            Some(value) => Expected::Json(value),
        };
        let description = json(instruction.get("description"));
        expected.push([
            json(instruction.get("id")),
            json(kind),
            description,
            Expected::Text(""),
            Expected::Text(""),
            units,
        ]);
        let choice = matches!(
            kind.and_then(Value::as_str),
            Some("multiple_choice" | "multiple_choice_with_free_text")
        );
        let options = instruction.get("options").and_then(Value::as_array);
        for option in options.filter(|_| choice).into_iter().flatten() {
            let (value, label) = match option {
                Value::Object(o) => (json(o.get("value")), json(o.get("label"))),
                other => (Expected::Json(other), Expected::Text("")),
            };
            expected.push([
                json(instruction.get("id")),
                json(kind),
                json(instruction.get("description")),
                value,
                label,
                Expected::Text(""),
            ]);
        }
    }
    if records.len() != expected.len() {
        let message = format!(
            "{} rows, but batch.json's instructions and their options give {}",
            records.len(),
            expected.len()
        );
        sink.push(VerifyProblemKind::Content, Some(CODEBOOK), Some(1), message);
    }
    let source = "batch.json's instructions";
    report_differing_rows(
        sink,
        CODEBOOK,
        &CODEBOOK_COLUMNS,
        &records,
        &expected,
        source,
    );
    Some(records.len() as u64)
}

/// Reports each row whose cells differ from the expected ones, naming the
/// differing columns and what the row was derived from (`source`).
fn report_differing_rows<const N: usize>(
    sink: &mut Sink,
    entry: &str,
    columns: &[&str; N],
    records: &[(u64, Vec<String>)],
    expected: &[[Expected<'_>; N]],
    source: &str,
) {
    for ((line, cells), wanted) in records.iter().zip(expected) {
        let differing: Vec<&str> = columns
            .iter()
            .zip(cells.iter().zip(wanted))
            .filter(|(_, (cell, wanted))| !wanted.matches(cell))
            .map(|(column, _)| *column)
            .collect();
        if !differing.is_empty() {
            let message = format!("the row differs from {source} in {}", differing.join(", "));
            sink.push(
                VerifyProblemKind::Content,
                Some(entry),
                Some(*line),
                message,
            );
        }
    }
}

fn syntax(sink: &mut Sink, entry: &str, line: Option<u64>, message: String) {
    sink.push(VerifyProblemKind::Syntax, Some(entry), line, message);
}

fn content(sink: &mut Sink, line: Option<u64>, message: String) {
    sink.push(VerifyProblemKind::Content, Some(RESPONSES), line, message);
}
