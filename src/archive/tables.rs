//! The `tables` option: `responses.csv` (long format, one row per answer
//! item) and `codebook.csv` (one row per instruction, and per option of a
//! choice instruction), for R, SPSS and spreadsheets.
//!
//! Both are RFC 4180 (CRLF line ends, fields quoted only when needed, a
//! quote doubled), UTF-8 without a byte-order mark, written through the
//! `csv` crate. Cells hold values exactly as the input wrote them: a JSON
//! string's text, a number's digits as given (`12.50` stays `12.50`),
//! `true`/`false`; a missing field or `null` is an empty cell; an object
//! or array (which the contract does not expect there) its compact JSON.
//!
//! Cells are never altered to defuse spreadsheet formulas (a leading `=`,
//! `+`, `-` or `@`): research data must reach the analysis as given, and
//! `-3` is a number, not an attack. The archive's README says how to open
//! the file in a spreadsheet safely instead.
//!
//! `responses.csv` is streamed like the views: the rows of one submission
//! are one piece, serialised in parallel a window at a time, joined in
//! by-submission order (see `text`).

use std::borrow::Cow;

use rayon::prelude::*;

use crate::model::raw::decode_json_string;
use crate::model::{Instruction, InstructionType, RawJson, RawObject, Records};
use crate::pivot::{Exported, Pivot};

/// The name of the long-format table.
pub(crate) const RESPONSES_CSV: &str = "responses.csv";
/// The name of the codebook.
pub(crate) const CODEBOOK_CSV: &str = "codebook.csv";

/// The columns of `responses.csv`, in order.
pub const RESPONSES_COLUMNS: [&str; 18] = [
    "submission_id",
    "participant_id",
    "study_id",
    "submission_status",
    "task_id",
    "group_id",
    "instruction_id",
    "instruction_type",
    "response_id",
    "item_index",
    "value",
    "explanation",
    "unit",
    "file_path",
    "file_name",
    "content_type",
    "correlation_id",
    "created_at",
];

/// The columns of `codebook.csv`, in order.
pub const CODEBOOK_COLUMNS: [&str; 6] = [
    "instruction_id",
    "type",
    "description",
    "option_value",
    "option_label",
    "unit_options",
];

/// The most bytes a cell's text can take beyond twice its source: the
/// quotes around it. Twice covers every quote doubled.
const CELL_QUOTES: u64 = 2;

fn writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        // Rows are small and many writers are made: no 8 KiB buffer each.
        .buffer_capacity(1024)
        .from_writer(out)
}

/// The header line of `responses.csv`.
pub(crate) fn responses_header() -> Vec<u8> {
    let mut out = Vec::new();
    let mut csv = writer(&mut out);
    let _ = csv.write_record(RESPONSES_COLUMNS);
    let _ = csv.flush();
    drop(csv);
    out
}

/// A pass-through value as a cell: a string's text, anything else its
/// JSON text as written, nothing for `null` or a missing field.
fn cell<'v>(value: Option<&'v RawJson>, pivot: &Pivot<'_>) -> Cow<'v, str> {
    match value {
        None => Cow::Borrowed(""),
        Some(v) if v.is_null() => Cow::Borrowed(""),
        Some(v) => match decode_json_string::<String>(v.get()) {
            Some(text) => Cow::Owned(text),
            None => match pivot.pass_through(v.get()) {
                Cow::Borrowed(_) => Cow::Borrowed(v.get()),
                Cow::Owned(text) => Cow::Owned(text),
            },
        },
    }
}

/// The rows of submission group `group` (every answer item of its
/// responses, in by-submission order), appended to `out`.
pub(crate) fn submission_rows(pivot: &Pivot<'_>, group: usize, out: &mut Vec<u8>) {
    let (range, _) = &pivot.submission_groups[group];
    let mut csv = writer(out);
    for exported in &pivot.by_submission[range.clone()] {
        for row in response_rows(pivot, exported) {
            let _ = csv.write_record(row.iter().map(|c| c.as_bytes()));
        }
    }
    let _ = csv.flush();
}

/// The whole of `responses.csv`, for `verify` and views too large to stream.
pub(crate) fn responses_csv(pivot: &Pivot<'_>) -> Vec<u8> {
    let pieces: Vec<Vec<u8>> = (0..pivot.submission_groups.len())
        .into_par_iter()
        .map(|group| {
            let mut piece = Vec::new();
            submission_rows(pivot, group, &mut piece);
            piece
        })
        .collect();
    let mut out = responses_header();
    pieces.iter().for_each(|p| out.extend_from_slice(p));
    out
}

/// One row per answer item of one response.
fn response_rows<'p>(
    pivot: &'p Pivot<'_>,
    exported: &'p Exported<'p>,
) -> impl Iterator<Item = [Cow<'p, str>; 18]> + 'p {
    let response = exported.response;
    let submission = exported.submission;
    let task = &pivot.tasks[exported.task()];
    let is_upload = response.kind == InstructionType::FileUpload.as_str();
    // The keys decoded once per export; empty for a response that is no upload.
    let file_keys = pivot.file_keys.of(exported.index());
    response
        .answer
        .iter()
        .enumerate()
        .map(move |(index, item)| {
            // Items are objects (the records were checked); a stray scalar
            // still gets its row, with its text as the value.
            let object: Option<RawObject> = serde_json::from_str(item.get()).ok();
            let field = |key: &str| match &object {
                Some(object) => cell(object.get(key), pivot).into_owned(),
                None if key == "value" => cell(Some(item), pivot).into_owned(),
                None => String::new(),
            };
            let file_path = match pivot.include_files {
                true => file_keys
                    .get(index)
                    .and_then(Option::as_ref)
                    .and_then(|key| pivot.paths.get(key.as_str()).cloned())
                    .unwrap_or_default(),
                false => String::new(),
            };
            [
                Cow::Borrowed(submission.id.as_str()),
                Cow::Borrowed(pivot.participant_id(exported)),
                cell(submission.study_id.as_ref(), pivot),
                cell(submission.status.as_ref(), pivot),
                Cow::Borrowed(task.id.as_str()),
                cell(task.group_id.as_ref(), pivot),
                Cow::Borrowed(response.instruction_id.as_str()),
                Cow::Borrowed(response.kind.as_str()),
                Cow::Borrowed(response.id.as_str()),
                Cow::Owned(index.to_string()),
                Cow::Owned(field("value")),
                Cow::Owned(field("explanation")),
                Cow::Owned(field("unit")),
                Cow::Owned(file_path),
                Cow::Owned(if is_upload {
                    field("file_name")
                } else {
                    String::new()
                }),
                Cow::Owned(if is_upload {
                    field("content_type")
                } else {
                    String::new()
                }),
                cell(response.correlation_id.as_ref(), pivot),
                cell(response.created_at.as_ref(), pivot),
            ]
        })
}

/// An upper bound of `responses.csv`'s size (every cell quoted, every
/// character a doubled quote), or an estimate of it for progress.
pub(crate) fn responses_size(pivot: &Pivot<'_>, worst: bool) -> u64 {
    let factor: u64 = if worst { 2 } else { 1 };
    let raw = |v: Option<&RawJson>| v.map_or(0, |v| v.get().len() as u64);
    let header = responses_header().len() as u64;
    let rows: u64 = pivot
        .by_submission
        .par_iter()
        .map(|e| {
            let r = e.response;
            let s = e.submission;
            let task = &pivot.tasks[e.task()];
            // A pseudonym is 18 bytes, whatever the id it replaces.
            let participant = (s.participant_id.len() as u64).max(18);
            let fixed = s.id.len() as u64
                + participant
                + raw(s.study_id.as_ref())
                + raw(s.status.as_ref())
                + task.id.len() as u64
                + raw(task.group_id.as_ref())
                + r.instruction_id.len() as u64
                + r.kind.len() as u64
                + r.id.len() as u64
                + 20
                + raw(r.correlation_id.as_ref())
                + raw(r.created_at.as_ref());
            let growth = if pivot.pseudonymiser.is_some() { 2 } else { 1 };
            r.answer
                .iter()
                .map(|item| {
                    // An item's fields are inside its text; a path is at most
                    // a 255-byte name under `files/`.
                    let item = growth * item.get().len() as u64 + 262;
                    factor * (fixed + item) + CELL_QUOTES * 18 + 18 + 2
                })
                .sum::<u64>()
        })
        .sum();
    header + rows
}

/// The options of a choice instruction ([`crate::pivot::choice_options`],
/// which also counts the codebook's rows), each as (value, label) cells.
fn options(instruction: &Instruction) -> Vec<(String, String)> {
    crate::pivot::choice_options(instruction)
        .iter()
        .map(|item| match serde_json::from_str::<RawObject>(item.get()) {
            Ok(object) => (
                plain_cell(object.get("value")),
                plain_cell(object.get("label")),
            ),
            // An option given as a bare value is its own code.
            Err(_) => (plain_cell(Some(item)), String::new()),
        })
        .collect()
}

/// [`cell`] for records that hold no participant ids.
fn plain_cell(value: Option<&RawJson>) -> String {
    match value {
        None => String::new(),
        Some(v) if v.is_null() => String::new(),
        Some(v) => decode_json_string::<String>(v.get()).unwrap_or_else(|| v.get().to_owned()),
    }
}

/// The whole of `codebook.csv`: small, so built in one piece.
pub(crate) fn codebook(records: &Records, pivot: &Pivot<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut csv = writer(&mut out);
    let _ = csv.write_record(CODEBOOK_COLUMNS);
    for instruction in &records.instructions {
        let fields = &instruction.fields;
        let description = plain_cell(fields.get("description"));
        let units = fields.get("units").or_else(|| fields.get("unit_options"));
        // The units as the input wrote them (a JSON list, usually).
        let units = cell(units, pivot).into_owned();
        let kind = instruction.kind.as_str();
        let _ = csv.write_record([instruction.id.as_str(), kind, &description, "", "", &units]);
        for (value, label) in options(instruction) {
            let _ = csv.write_record([
                instruction.id.as_str(),
                kind,
                &description,
                &value,
                &label,
                "",
            ]);
        }
    }
    let _ = csv.flush();
    drop(csv);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_one_crlf_line() {
        let header = String::from_utf8(responses_header()).unwrap();
        assert_eq!(header, format!("{}\r\n", RESPONSES_COLUMNS.join(",")));
    }
}
