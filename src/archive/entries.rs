//! The text entries: `batch.json` and the two JSON Lines views.
//!
//! Lines are serialised in parallel, one buffer per submission or task, and
//! joined in view order. Pass-through values are copied as their compact
//! text; only the answer items of file uploads are opened, to add `path`.

use rayon::prelude::*;

use crate::model::raw::write_json_string;
use crate::model::{RawJson, RawObject, Records};
use crate::pivot::{Exported, Pivot};

/// The version of the archive layout, written to `batch.json`.
pub const FORMAT_VERSION: u32 = 1;

/// `export.files` in `batch.json` of an archive built without its uploads.
pub const FILES_OMITTED: &str = "omitted";
/// `export.participants` in `batch.json` of a pseudonymised archive.
pub const PARTICIPANTS_PSEUDONYMISED: &str = "pseudonymised";

/// `batch.json`: the batch as given, plus `instructions` and `export`.
pub(crate) fn batch_json(records: &Records, pivot: &Pivot<'_>, generated_at: &str) -> Vec<u8> {
    let mut batch = records.batch.fields.clone();
    let mut instructions = Vec::new();
    instructions.push(b'[');
    for (i, instruction) in records.instructions.iter().enumerate() {
        if i > 0 {
            instructions.push(b',');
        }
        instruction.fields.write_json(&mut instructions);
    }
    instructions.push(b']');
    batch.insert("instructions", raw(instructions));
    let mut export = serde_json::json!({
        "format_version": FORMAT_VERSION,
        "generated_at": generated_at,
        "counts": pivot.counts,
    });
    // Only options that change the layout are recorded, and only when set,
    // so the default batch.json stays what it always was.
    if !pivot.include_files {
        export["files"] = FILES_OMITTED.into();
    }
    if pivot.pseudonymiser.is_some() {
        export["participants"] = PARTICIPANTS_PSEUDONYMISED.into();
    }
    batch.insert("export", raw(export.to_string().into_bytes()));

    let mut compact = Vec::new();
    batch.write_json(&mut compact);
    if pivot.pseudonymiser.is_some() {
        // The batch record and instructions are passed through: a
        // `participant_id` anywhere in them is pseudonymised too.
        let text = String::from_utf8_lossy(&compact);
        compact = pivot.pass_through(&text).into_owned().into_bytes();
    }
    // Pretty-printed for people; the tree keeps key order (preserve_order).
    let tree: serde_json::Value = serde_json::from_slice(&compact).unwrap_or_default();
    let mut pretty = serde_json::to_vec_pretty(&tree).unwrap_or_default();
    pretty.push(b'\n');
    pretty
}

fn raw(bytes: Vec<u8>) -> RawJson {
    // Only ever called with JSON this module wrote.
    RawJson::parse(std::str::from_utf8(&bytes).unwrap_or("null"))
        .unwrap_or_else(|_| RawJson::string(""))
}

/// `responses-by-submission.jsonl`.
pub(crate) fn responses_by_submission(pivot: &Pivot<'_>) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = (0..pivot.submission_groups.len())
        .into_par_iter()
        .map(|group| {
            let mut line = Vec::with_capacity(256 * pivot.submission_groups[group].0.len());
            submission_line(pivot, group, &mut line);
            line
        })
        .collect();
    lines.concat()
}

/// Line `group` of `responses-by-submission.jsonl`, appended to `line`.
pub(crate) fn submission_line(pivot: &Pivot<'_>, group: usize, line: &mut Vec<u8>) {
    let (range, task_ranges) = &pivot.submission_groups[group];
    let first = &pivot.by_submission[range.start];
    let submission = first.submission;
    let mut object = ObjectWriter::new(line, pivot);
    object.string("submission_id", &submission.id);
    object.string("participant_id", pivot.participant_id(first));
    object.optional("study_id", submission.study_id.as_ref());
    object.optional("status", submission.status.as_ref());
    object.optional("started_at", submission.started_at.as_ref());
    object.optional("completed_at", submission.completed_at.as_ref());
    object.key("tasks");
    object.out.push(b'[');
    for (t, task_range) in task_ranges.iter().enumerate() {
        if t > 0 {
            object.out.push(b',');
        }
        let task = &pivot.tasks[pivot.by_submission[task_range.start].task()];
        let mut task_object = ObjectWriter::new(object.out, pivot);
        task_object.string("task_id", &task.id);
        task_object.key("responses");
        task_object.out.push(b'[');
        for (r, exported) in pivot.by_submission[task_range.clone()].iter().enumerate() {
            if r > 0 {
                task_object.out.push(b',');
            }
            write_response(task_object.out, exported, pivot, false);
        }
        task_object.out.push(b']');
        task_object.close(&[]);
    }
    object.out.push(b']');
    object.close(&submission.extra);
    line.push(b'\n');
}

/// `responses-by-task.jsonl`.
pub(crate) fn responses_by_task(pivot: &Pivot<'_>) -> Vec<u8> {
    let lines: Vec<Vec<u8>> = (0..pivot.task_groups.len())
        .into_par_iter()
        .map(|group| {
            let mut line = Vec::with_capacity(256 * pivot.task_groups[group].len());
            task_line(pivot, group, &mut line);
            line
        })
        .collect();
    lines.concat()
}

/// Line `group` of `responses-by-task.jsonl`, appended to `line`.
pub(crate) fn task_line(pivot: &Pivot<'_>, group: usize, line: &mut Vec<u8>) {
    let range = &pivot.task_groups[group];
    let (head, tail) = task_line_ends(pivot, pivot.by_task[range.start].task());
    line.extend_from_slice(&head);
    write_responses(line, &pivot.by_task[range.clone()], pivot);
    line.extend_from_slice(&tail);
}

/// The line of task `task` (its index in the records) around its
/// responses: up to the `[` that opens them, and from the `]` that closes
/// them. A build past its memory budget writes a task's responses between
/// the two a window at a time.
pub(crate) fn task_line_ends(pivot: &Pivot<'_>, task: usize) -> (Vec<u8>, Vec<u8>) {
    let task = &pivot.tasks[task];
    let mut line = Vec::new();
    let mut object = ObjectWriter::new(&mut line, pivot);
    object.string("task_id", &task.id);
    object.optional("group_id", task.group_id.as_ref());
    object.optional("datapoint", task.datapoint.as_ref());
    object.optional("metadata", task.metadata.as_ref());
    object.key("responses");
    object.out.push(b'[');
    let responses_at = object.out.len();
    object.out.push(b']');
    object.close(&task.extra);
    line.push(b'\n');
    let tail = line.split_off(responses_at);
    (line, tail)
}

/// Responses of one task line serialised per parallel piece above this
/// count: a popular task's line can hold most of the batch, and one thread
/// writing it would leave the others idle.
const PARALLEL_RESPONSES: usize = 4096;

/// The comma-separated responses of a by-task line, in order.
pub(crate) fn write_responses(out: &mut Vec<u8>, responses: &[Exported<'_>], pivot: &Pivot<'_>) {
    let write = |out: &mut Vec<u8>, part: &[Exported<'_>]| {
        for (r, exported) in part.iter().enumerate() {
            if r > 0 {
                out.push(b',');
            }
            write_response(out, exported, pivot, true);
        }
    };
    if responses.len() <= PARALLEL_RESPONSES {
        return write(out, responses);
    }
    let parts: Vec<Vec<u8>> = responses
        .par_chunks(PARALLEL_RESPONSES / 2)
        .map(|part| {
            let mut text = Vec::with_capacity(320 * part.len());
            write(&mut text, part);
            text
        })
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(part);
    }
}

/// RESPONSE, plus `submission_id` and `participant_id` in the by-task view.
fn write_response(
    out: &mut Vec<u8>,
    exported: &Exported<'_>,
    pivot: &Pivot<'_>,
    with_submission: bool,
) {
    let response = exported.response;
    let mut object = ObjectWriter::new(out, pivot);
    object.string("response_id", &response.id);
    object.string("instruction_id", &response.instruction_id);
    object.string("type", &response.kind);
    object.key("answer");
    object.out.push(b'[');
    let file_keys = pivot.file_keys.of(exported.index());
    for (i, item) in response.answer.iter().enumerate() {
        if i > 0 {
            object.out.push(b',');
        }
        // Without files every upload item's path is `null`.
        let path = file_keys.get(i).and_then(Option::as_ref).and_then(|key| {
            if pivot.include_files {
                pivot
                    .paths
                    .get(key.as_str())
                    .map(|path| RawJson::string(path))
            } else {
                RawJson::parse("null").ok()
            }
        });
        match path.and_then(|path| with_path(item, path)) {
            Some(item) if pivot.pseudonymiser.is_some() => {
                let mut text = Vec::new();
                item.write_json(&mut text);
                let text = String::from_utf8_lossy(&text);
                object
                    .out
                    .extend_from_slice(pivot.pass_through(&text).as_bytes());
            }
            Some(item) => item.write_json(object.out),
            None => object
                .out
                .extend_from_slice(pivot.pass_through(item.get()).as_bytes()),
        }
    }
    object.out.push(b']');
    object.optional("correlation_id", response.correlation_id.as_ref());
    object.optional("created_at", response.created_at.as_ref());
    if with_submission {
        object.string("submission_id", &exported.submission.id);
        object.string("participant_id", pivot.participant_id(exported));
    }
    object.close(&response.extra);
}

/// A file-upload answer item with `path` set to its entry in `files/` (or
/// `null` when the archive leaves the files out).
fn with_path(item: &RawJson, path: RawJson) -> Option<RawObject> {
    let mut object: RawObject = serde_json::from_str(item.get()).ok()?;
    object.insert("path", path);
    Some(object)
}

/// The most keys [`ObjectWriter`] writes before the unknown fields: the
/// objects of the views have at most eight.
const MAX_KEYS: usize = 12;

/// Writes one JSON object key by key, remembering the keys written so that
/// unknown pass-through fields never shadow or repeat them. The keys are
/// kept in place, not in a `Vec`: a million objects, a million allocations
/// fewer.
struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    keys: [&'static str; MAX_KEYS],
    written: usize,
    /// Pass-through values are written as this view shows them.
    pivot: &'o Pivot<'o>,
}

impl<'o> ObjectWriter<'o> {
    fn new(out: &'o mut Vec<u8>, pivot: &'o Pivot<'o>) -> ObjectWriter<'o> {
        out.push(b'{');
        ObjectWriter {
            out,
            keys: [""; MAX_KEYS],
            written: 0,
            pivot,
        }
    }

    fn key(&mut self, key: &'static str) {
        if self.written > 0 {
            self.out.push(b',');
        }
        // The keys are this module's own constants: a fixed, small set.
        assert!(self.written < MAX_KEYS, "more keys than MAX_KEYS");
        self.keys[self.written] = key;
        self.written += 1;
        // The keys need no escaping: copied, not scanned.
        debug_assert!(!key.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
        self.out.reserve(key.len() + 3);
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, key: &'static str, value: &str) {
        self.key(key);
        write_json_string(self.out, value);
    }

    /// A pass-through field, `null` when the input lacks it.
    fn optional(&mut self, key: &'static str, value: Option<&RawJson>) {
        self.key(key);
        let text = value.map_or("null", RawJson::get);
        let text = self.pivot.pass_through(text);
        self.out.extend_from_slice(text.as_bytes());
    }

    /// Appends the record's unknown fields and closes the object.
    fn close(self, extra: &[(String, RawJson)]) {
        let written = &self.keys[..self.written];
        let mut first = written.is_empty();
        for (key, value) in extra {
            if written.contains(&key.as_str()) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            write_json_string(self.out, key);
            self.out.push(b':');
            let text = self.pivot.pass_through(value.get());
            self.out.extend_from_slice(text.as_bytes());
        }
        self.out.push(b'}');
    }
}
