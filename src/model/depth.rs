//! The JSON nesting limit of records, however they reach the engine.
//!
//! Every archive reader we test must accept what `build` accepts: serde_json
//! (which `verify` uses) stops at 128 levels and Python's `json` near 1,000
//! (its recursion limit), and the archive nests a record's values up to
//! five levels deeper than the record itself (a response's answer sits in
//! `tasks[].responses[].answer[]` of its submission's line). So a record
//! line may nest at most [`MAX_JSON_DEPTH`] levels, the line's own object
//! counting as one: far more than any real datapoint, and far below every
//! reader's limit once the archive's own levels are added.
//!
//! The dump reader refuses a deeper line before parsing it (a clear
//! `file:line: nested deeper than 64` instead of a parser's recursion
//! error). Records reach the engine other ways too: an embedder builds
//! them from its own rows and hands them to [`crate::export()`], or another
//! reader makes them from lines of its own. So the engine's checks, which
//! every export runs, apply the same limit once more to every pass-through
//! value at the level the value has in the record's line
//! ([`check_records`]): what a dump could not carry, no other way in
//! carries either.

use rayon::prelude::*;

use crate::error::{Problem, ProblemKind, Problems};
use crate::model::origin::{Origins, RecordFile};
use crate::model::{ExtraFields, RawJson, RawObject, Records, Response};

/// How deep a record's JSON may nest, its own object counting as one level.
pub const MAX_JSON_DEPTH: usize = 64;

/// Levels above a response's answer items in its line: the line's object,
/// `response`, and the `answer` list.
const ANSWER_ITEM_LEVEL: usize = 4;

/// Levels above a field of a record: the record's own object.
const FIELD_LEVEL: usize = 2;

/// The pass-through values of `records` that nest deeper than a dump line
/// may ([`MAX_JSON_DEPTH`], counting the record's object and the objects
/// around the value in the line), one problem per record and field. Records
/// the dump reader made never have one: their lines were checked already.
pub(crate) fn check_records(records: &Records, origins: &Origins) -> Problems {
    let mut problems = Problems::default();
    let message = || format!("nested deeper than {MAX_JSON_DEPTH}");
    if let Some(field) = deep_field(&records.batch.fields) {
        problems.push(Problem {
            kind: ProblemKind::Syntax,
            file: "batch.json".to_owned(),
            line: None,
            field: Some(field.to_owned()),
            message: message(),
        });
    }
    let mut report = |file: RecordFile, index: usize, field: &str| {
        problems.push(origins.problem(ProblemKind::Syntax, file, index, field, message()));
    };
    for (index, instruction) in records.instructions.iter().enumerate() {
        if let Some(field) = deep_field(&instruction.fields) {
            report(RecordFile::Instructions, index, field);
        }
    }
    for (index, task) in records.tasks.iter().enumerate() {
        let fields = [
            ("group_id", &task.group_id),
            ("datapoint", &task.datapoint),
            ("metadata", &task.metadata),
        ];
        if let Some(field) = deep_optional(&fields).or_else(|| deep_extra(&task.extra)) {
            report(RecordFile::Tasks, index, field);
        }
    }
    for (index, submission) in records.submissions.iter().enumerate() {
        let fields = [
            ("study_id", &submission.study_id),
            ("status", &submission.status),
            ("started_at", &submission.started_at),
            ("completed_at", &submission.completed_at),
        ];
        if let Some(field) = deep_optional(&fields).or_else(|| deep_extra(&submission.extra)) {
            report(RecordFile::Submissions, index, field);
        }
    }
    for (index, upload) in records.uploads.iter().enumerate() {
        if let Some(field) = deep_extra(&upload.extra) {
            report(RecordFile::Uploads, index, field);
        }
    }
    // Responses are most of the records, and most of their bytes.
    let deep_responses: Vec<(usize, &str)> = records
        .responses
        .par_iter()
        .enumerate()
        .filter_map(|(index, response)| Some((index, deep_response_field(response)?)))
        .collect();
    for (index, field) in deep_responses {
        report(RecordFile::Responses, index, field);
    }
    problems
}

/// The first field of a response nested too deep.
fn deep_response_field(response: &Response) -> Option<&str> {
    if response
        .answer
        .iter()
        .any(|item| too_deep(item, ANSWER_ITEM_LEVEL))
    {
        return Some("response.answer");
    }
    let fields = [
        ("correlation_id", &response.correlation_id),
        ("created_at", &response.created_at),
    ];
    deep_optional(&fields).or_else(|| deep_extra(&response.extra))
}

/// Whether `value`, sitting at `level` of its line, takes the line deeper
/// than [`MAX_JSON_DEPTH`].
fn too_deep(value: &RawJson, level: usize) -> bool {
    nests_deeper_than(value.get().as_bytes(), MAX_JSON_DEPTH + 1 - level)
}

fn deep_optional<'a>(fields: &[(&'a str, &Option<RawJson>)]) -> Option<&'a str> {
    fields
        .iter()
        .find(|(_, value)| value.as_ref().is_some_and(|v| too_deep(v, FIELD_LEVEL)))
        .map(|(name, _)| *name)
}

fn deep_extra(extra: &ExtraFields) -> Option<&str> {
    extra
        .iter()
        .find(|(_, value)| too_deep(value, FIELD_LEVEL))
        .map(|(name, _)| name.as_str())
}

fn deep_field(fields: &RawObject) -> Option<&str> {
    fields
        .iter()
        .find(|(_, value)| too_deep(value, FIELD_LEVEL))
        .map(|(name, _)| name)
}

/// Whether the JSON `text` nests deeper than `max` levels of objects and
/// arrays. Brackets inside strings do not count. Each level takes two
/// bytes at least, so a short value (most answer items, every timestamp)
/// is answered by its length alone; most longer ones hold fewer opening
/// brackets than the limit, which a quick count shows without following
/// strings.
pub(crate) fn nests_deeper_than(text: &[u8], max: usize) -> bool {
    if text.len() < 2 * (max + 1) {
        return false;
    }
    if openings(text) <= max {
        return false;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// How many `{` and `[` `text` holds, strings or not. Every line of a dump
/// is counted, so the count is written for the compiler to vectorise: one
/// comparison per byte (`[` and `{` differ only in the bit `0x20` sets),
/// summed in bytes over runs short enough not to overflow them.
fn openings(text: &[u8]) -> usize {
    text.chunks(255)
        .map(|run| {
            run.iter()
                .map(|&b| u8::from(b | 0x20 == b'{'))
                .fold(0u8, u8::wrapping_add) as usize
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openings_counts_both_brackets_and_nothing_else() {
        // Every byte value, at every position of runs longer than 255.
        let text: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
        for end in [0, 1, 254, 255, 256, 511, 2999, 3000] {
            let slice = &text[..end];
            let expected = slice.iter().filter(|&&b| b == b'{' || b == b'[').count();
            assert_eq!(openings(slice), expected, "first {end} bytes");
        }
        assert_eq!(openings(&[b'{'; 1000]), 1000);
        assert_eq!(openings(b"[{]}\"x\"{{"), 4);
    }
    use crate::model::{Batch, Response, Task};

    /// JSON nesting exactly `levels` deep: lists around a number.
    fn nested(levels: usize) -> RawJson {
        RawJson::parse(&format!("{}1{}", "[".repeat(levels), "]".repeat(levels))).unwrap()
    }

    #[test]
    fn counts_levels_outside_strings_only() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(!nests_deeper_than(deep(64).as_bytes(), 64));
        assert!(nests_deeper_than(deep(65).as_bytes(), 64));
        let in_string = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert!(!nests_deeper_than(in_string.as_bytes(), 64));
        let siblings = format!("[{}]", "[],".repeat(200) + "[]");
        assert!(!nests_deeper_than(siblings.as_bytes(), 64));
        // The shortest text of each depth, at the length cut.
        let shortest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(nests_deeper_than(shortest(65).as_bytes(), 64));
        assert!(!nests_deeper_than(shortest(64).as_bytes(), 64));
        assert!(nests_deeper_than(shortest(2).as_bytes(), 1));
    }

    /// Records an embedder builds: one task with `datapoint`, one response
    /// with one answer item, each nested as deep as asked.
    fn records(datapoint: usize, answer_item: usize) -> Records {
        let mut records = Records::new(Batch::new("b-1", "B", "ws-1"));
        records.tasks.push(Task {
            id: "t-1".into(),
            datapoint: Some(nested(datapoint)),
            ..Task::default()
        });
        records.responses.push(Response {
            id: "r-1".into(),
            answer: vec![nested(answer_item)],
            ..Response::default()
        });
        records
    }

    fn shown(problems: &Problems) -> Vec<String> {
        problems.list().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn records_given_directly_get_the_limit_a_dump_line_has() {
        let origins = Origins::positional();
        // As lines: the task's object, then 63 levels of datapoint; the
        // response's object, `response`, `answer`, then a 61-level item.
        let deepest = records(MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH - 3);
        assert!(check_records(&deepest, &origins).is_empty());

        let deeper = records(MAX_JSON_DEPTH, MAX_JSON_DEPTH - 2);
        assert_eq!(
            shown(&check_records(&deeper, &origins)),
            [
                "tasks.jsonl:1: field `datapoint`: nested deeper than 64",
                "responses.jsonl:1: field `response.answer`: nested deeper than 64",
            ]
        );
    }

    #[test]
    fn every_pass_through_field_is_measured() {
        let origins = Origins::positional();
        let mut records = records(1, 1);
        records
            .batch
            .fields
            .insert("settings", nested(MAX_JSON_DEPTH));
        records.submissions.push(crate::model::Submission {
            id: "s-1".into(),
            started_at: Some(nested(MAX_JSON_DEPTH)),
            ..crate::model::Submission::default()
        });
        records.uploads.push(crate::model::Upload {
            extra: vec![("notes".to_owned(), nested(MAX_JSON_DEPTH))],
            ..crate::model::Upload::default()
        });
        records.responses[0]
            .extra
            .push(("trace".to_owned(), nested(MAX_JSON_DEPTH)));
        assert_eq!(
            shown(&check_records(&records, &origins)),
            [
                "batch.json: field `settings`: nested deeper than 64",
                "submissions.jsonl:1: field `started_at`: nested deeper than 64",
                "uploads.jsonl:1: field `notes`: nested deeper than 64",
                "responses.jsonl:1: field `trace`: nested deeper than 64",
            ]
        );
    }
}
