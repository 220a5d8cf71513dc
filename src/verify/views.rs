//! The archive's content: `batch.json`, the two JSON Lines views, their
//! keys, order and agreement, the `files/` references and the counts.
//!
//! Parsed lines are kept (as `serde_json` values, key order preserved) for
//! the comparison against expected records that may follow.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::problems::{Sink, VerifyProblemKind};
use crate::naming::safe_prefix;
use crate::timestamp::{dos_time, parse_rfc3339};

const BY_SUBMISSION: &str = "responses-by-submission.jsonl";
const BY_TASK: &str = "responses-by-task.jsonl";
const BATCH: &str = "batch.json";

/// The keys of a by-submission line, before any pass-through fields.
const SUBMISSION_KEYS: [&str; 7] = [
    "submission_id",
    "participant_id",
    "study_id",
    "status",
    "started_at",
    "completed_at",
    "tasks",
];
/// The keys of a task inside a by-submission line: exactly these.
const SUBMISSION_TASK_KEYS: [&str; 2] = ["task_id", "responses"];
/// The keys of a by-task line, before any pass-through fields.
const TASK_KEYS: [&str; 5] = ["task_id", "group_id", "datapoint", "metadata", "responses"];
/// RESPONSE, before any pass-through fields.
const RESPONSE_KEYS: [&str; 6] = [
    "response_id",
    "instruction_id",
    "type",
    "answer",
    "correlation_id",
    "created_at",
];
/// RESPONSE in the by-task view.
const TASK_RESPONSE_KEYS: [&str; 8] = [
    "response_id",
    "instruction_id",
    "type",
    "answer",
    "correlation_id",
    "created_at",
    "submission_id",
    "participant_id",
];

/// What the content check read, for the comparison with expected records.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) batch: Option<Value>,
    pub(crate) generated_at: Option<String>,
    /// The entries' MS-DOS time that `generated_at` gives.
    pub(crate) generated_at_dos: Option<(u16, u16)>,
    pub(crate) by_submission: Vec<(u64, Map<String, Value>)>,
    pub(crate) by_task: Vec<(u64, Map<String, Value>)>,
    pub(crate) counts: Option<Map<String, Value>>,
    /// `export.files` is `"omitted"`: built without the uploads.
    pub(crate) files_omitted: bool,
    /// `export.participants` is `"pseudonymised"`.
    pub(crate) pseudonymised: bool,
    /// `export.counts` counts the rows of `responses.csv` and `codebook.csv`.
    pub(crate) tables: bool,
}

/// An instruction's position and type, from `batch.json`.
type Instructions = HashMap<String, (usize, String)>;

/// One response as a view places it, for order and cross-view checks.
struct Placed<'v> {
    line: u64,
    submission_id: &'v str,
    task_id: &'v str,
    response: &'v Map<String, Value>,
}

pub(crate) fn check(
    texts: &HashMap<&'static str, Vec<u8>>,
    file_names: &[&str],
    sink: &mut Sink,
) -> Parsed {
    let mut parsed = Parsed::default();
    if let Some(readme) = texts.get("README.md") {
        if std::str::from_utf8(readme).is_err() {
            syntax(sink, "README.md", None, "the file is not UTF-8");
        }
    }
    let instructions = texts
        .get(BATCH)
        .map(|bytes| check_batch(bytes, &mut parsed, sink));
    if let Some(bytes) = texts.get(BY_SUBMISSION) {
        parsed.by_submission = read_lines(BY_SUBMISSION, bytes, sink);
    }
    if let Some(bytes) = texts.get(BY_TASK) {
        parsed.by_task = read_lines(BY_TASK, bytes, sink);
    }
    let instructions = instructions.unwrap_or_default();
    let files: HashSet<&str> = file_names.iter().copied().collect();
    let mut referenced = HashSet::new();
    let mut refs = References {
        instructions: &instructions,
        files: &files,
        referenced: &mut referenced,
        check_instructions: texts.contains_key(BATCH),
        files_omitted: parsed.files_omitted,
        pseudonymised: parsed.pseudonymised,
    };

    let task_order = check_by_task(&parsed.by_task, &mut refs, sink);
    let by_task_responses = collect_by_task(&parsed.by_task);
    // Without the by-task view there is no task order to check against.
    let task_order = texts.contains_key(BY_TASK).then_some(&task_order);
    let by_sub_responses = check_by_submission(&parsed.by_submission, task_order, &mut refs, sink);
    if texts.contains_key(BY_SUBMISSION) && texts.contains_key(BY_TASK) {
        cross_check(
            &by_sub_responses,
            &by_task_responses,
            &parsed.by_submission,
            sink,
        );
    }
    if texts.contains_key(BY_SUBMISSION) && texts.contains_key(BY_TASK) {
        for name in file_names {
            if !referenced.contains(*name) {
                reference(sink, name, None, "no answer refers to this file".to_owned());
            }
        }
    }
    check_counts(
        &parsed,
        texts,
        file_names.len(),
        by_task_responses.len(),
        sink,
    );
    parsed
}

fn check_batch(bytes: &[u8], parsed: &mut Parsed, sink: &mut Sink) -> Instructions {
    let mut instructions = Instructions::new();
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => {
            syntax(sink, BATCH, None, &format!("not JSON: {e}"));
            return instructions;
        }
    };
    let Some(batch) = value.as_object() else {
        syntax(sink, BATCH, None, "not a JSON object");
        return instructions;
    };
    for key in ["id", "name", "workspace_id"] {
        if !batch.get(key).is_some_and(Value::is_string) {
            keys(
                sink,
                BATCH,
                None,
                format!("`{key}` is missing or not a string"),
            );
        }
    }
    match batch.get("instructions").and_then(Value::as_array) {
        None => keys(
            sink,
            BATCH,
            None,
            "`instructions` is missing or not an array".to_owned(),
        ),
        Some(list) => {
            for (i, item) in list.iter().enumerate() {
                let id = item.get("id").and_then(Value::as_str);
                let kind = item.get("type").and_then(Value::as_str);
                let (Some(id), Some(kind)) = (id, kind) else {
                    let message = format!("instruction {} lacks a string `id` or `type`", i + 1);
                    keys(sink, BATCH, None, message);
                    continue;
                };
                if instructions
                    .insert(id.to_owned(), (i, kind.to_owned()))
                    .is_some()
                {
                    order(
                        sink,
                        BATCH,
                        None,
                        format!("instruction {id:?} is listed twice"),
                    );
                }
            }
        }
    }
    let export = batch.get("export").and_then(Value::as_object);
    let Some(export) = export else {
        keys(
            sink,
            BATCH,
            None,
            "`export` is missing or not an object".to_owned(),
        );
        parsed.batch = Some(value);
        return instructions;
    };
    if export.get("format_version") != Some(&Value::from(crate::FORMAT_VERSION)) {
        let message = format!("`export.format_version` is not {}", crate::FORMAT_VERSION);
        keys(sink, BATCH, None, message);
    }
    match export.get("generated_at").and_then(Value::as_str) {
        Some(text) => match parse_rfc3339(text) {
            Some(time) => {
                parsed.generated_at = Some(text.to_owned());
                parsed.generated_at_dos = Some(dos_time(time));
            }
            None => keys(
                sink,
                BATCH,
                None,
                "`export.generated_at` is not RFC 3339".to_owned(),
            ),
        },
        None => keys(
            sink,
            BATCH,
            None,
            "`export.generated_at` is missing".to_owned(),
        ),
    }
    match export.get("files") {
        None => {}
        Some(Value::String(text)) if text == crate::archive::entries::FILES_OMITTED => {
            parsed.files_omitted = true;
        }
        Some(_) => keys(
            sink,
            BATCH,
            None,
            "`export.files` is neither absent nor \"omitted\"".to_owned(),
        ),
    }
    match export.get("participants") {
        None => {}
        Some(Value::String(text))
            if text == crate::archive::entries::PARTICIPANTS_PSEUDONYMISED =>
        {
            parsed.pseudonymised = true;
        }
        Some(_) => keys(
            sink,
            BATCH,
            None,
            "`export.participants` is neither absent nor \"pseudonymised\"".to_owned(),
        ),
    }
    match export.get("counts").and_then(Value::as_object) {
        Some(counts) => {
            let table_counts = ["responses_csv_rows", "codebook_csv_rows"]
                .map(|key| counts.get(key).map(|v| (key, v.is_u64())));
            match table_counts {
                [None, None] => {}
                [Some((_, true)), Some((_, true))] => parsed.tables = true,
                _ => keys(
                    sink,
                    BATCH,
                    None,
                    "`export.counts.responses_csv_rows` and `codebook_csv_rows` must both be counts, or both absent".to_owned(),
                ),
            }
            for key in [
                "submissions",
                "tasks",
                "responses",
                "files",
                "excluded_no_submission",
            ] {
                if !counts.get(key).is_some_and(Value::is_u64) {
                    let message = format!("`export.counts.{key}` is missing or not a count");
                    keys(sink, BATCH, None, message);
                }
            }
            parsed.counts = Some(counts.clone());
        }
        None => keys(sink, BATCH, None, "`export.counts` is missing".to_owned()),
    }
    parsed.batch = Some(value);
    instructions
}

/// Every line must be a JSON object and end in `\n`; there are no blank lines.
fn read_lines(entry: &str, bytes: &[u8], sink: &mut Sink) -> Vec<(u64, Map<String, Value>)> {
    let mut lines = Vec::new();
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        syntax(sink, entry, None, "the last line has no line end");
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return lines;
    }
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let number = i as u64 + 1;
        match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(object)) => lines.push((number, object)),
            Ok(_) => syntax(sink, entry, Some(number), "not a JSON object"),
            Err(e) => syntax(sink, entry, Some(number), &format!("not JSON: {e}")),
        }
    }
    lines
}

/// What response checks need to resolve references.
struct References<'a> {
    instructions: &'a Instructions,
    files: &'a HashSet<&'a str>,
    referenced: &'a mut HashSet<String>,
    /// False when `batch.json` is unreadable: instruction problems would
    /// only repeat that one.
    check_instructions: bool,
    /// Upload answers carry `"path": null` (the archive has no files).
    files_omitted: bool,
    /// Every `participant_id` must be a pseudonym.
    pseudonymised: bool,
}

/// A pseudonymised archive shows only pseudonyms as participant ids.
fn check_pseudonym(
    value: Option<&Value>,
    refs: &References<'_>,
    entry: &str,
    at: Option<u64>,
    sink: &mut Sink,
) {
    let Some(Value::String(id)) = value else {
        return;
    };
    if refs.pseudonymised && !crate::pseudonym::is_pseudonym(id) {
        keys(
            sink,
            entry,
            at,
            format!("participant_id {id:?} is not a pseudonym, yet batch.json says pseudonymised"),
        );
    }
}

/// Checks by-task lines; returns each task's position in task order.
fn check_by_task(
    lines: &[(u64, Map<String, Value>)],
    refs: &mut References<'_>,
    sink: &mut Sink,
) -> HashMap<String, usize> {
    let mut positions = HashMap::new();
    for (index, (line, object)) in lines.iter().enumerate() {
        let at = Some(*line);
        check_keys(object, &TASK_KEYS, true, BY_TASK, at, "line", sink);
        let Some(task_id) = object.get("task_id").and_then(Value::as_str) else {
            keys(sink, BY_TASK, at, "`task_id` is not a string".to_owned());
            continue;
        };
        if positions.insert(task_id.to_owned(), index).is_some() {
            order(
                sink,
                BY_TASK,
                at,
                format!("task {task_id:?} has a second line"),
            );
        }
        let Some(responses) = non_empty_array(object, "responses", BY_TASK, at, sink) else {
            continue;
        };
        let mut previous: Option<(String, usize, Option<i128>, String)> = None;
        for response in responses {
            let Some(response) = response.as_object() else {
                keys(sink, BY_TASK, at, "a response is not an object".to_owned());
                continue;
            };
            check_keys(
                response,
                &TASK_RESPONSE_KEYS,
                true,
                BY_TASK,
                at,
                "response",
                sink,
            );
            let submission_id = response.get("submission_id").and_then(Value::as_str);
            if submission_id.is_none()
                || !response.get("participant_id").is_some_and(Value::is_string)
            {
                keys(
                    sink,
                    BY_TASK,
                    at,
                    "a response's `submission_id` or `participant_id` is not a string".to_owned(),
                );
            }
            check_pseudonym(response.get("participant_id"), refs, BY_TASK, at, sink);
            let submission_id = submission_id.unwrap_or_default();
            let key = check_response(response, submission_id, BY_TASK, at, refs, sink);
            let key = (submission_id.to_owned(), key.0, key.1, key.2);
            if previous.as_ref().is_some_and(|p| *p >= key) {
                let message = format!(
                    "response {:?} is out of order (submission, instruction, created_at, id)",
                    key.3
                );
                order(sink, BY_TASK, at, message);
            }
            previous = Some(key);
        }
    }
    positions
}

fn collect_by_task(lines: &[(u64, Map<String, Value>)]) -> Vec<Placed<'_>> {
    let mut placed = Vec::new();
    for (line, object) in lines {
        let task_id = object
            .get("task_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for response in object
            .get("responses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(response) = response.as_object() {
                let submission_id = response
                    .get("submission_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                placed.push(Placed {
                    line: *line,
                    submission_id,
                    task_id,
                    response,
                });
            }
        }
    }
    placed
}

/// Checks by-submission lines; returns their responses.
fn check_by_submission<'v>(
    lines: &'v [(u64, Map<String, Value>)],
    task_order: Option<&HashMap<String, usize>>,
    refs: &mut References<'_>,
    sink: &mut Sink,
) -> Vec<Placed<'v>> {
    let mut placed = Vec::new();
    let mut previous_submission: Option<&str> = None;
    for (line, object) in lines {
        let at = Some(*line);
        check_keys(
            object,
            &SUBMISSION_KEYS,
            true,
            BY_SUBMISSION,
            at,
            "line",
            sink,
        );
        if !object.get("participant_id").is_some_and(Value::is_string) {
            keys(
                sink,
                BY_SUBMISSION,
                at,
                "`participant_id` is not a string".to_owned(),
            );
        }
        check_pseudonym(object.get("participant_id"), refs, BY_SUBMISSION, at, sink);
        let Some(submission_id) = object.get("submission_id").and_then(Value::as_str) else {
            keys(
                sink,
                BY_SUBMISSION,
                at,
                "`submission_id` is not a string".to_owned(),
            );
            continue;
        };
        if previous_submission.is_some_and(|p| p >= submission_id) {
            let message = format!("submission {submission_id:?} is out of order or repeated");
            order(sink, BY_SUBMISSION, at, message);
        }
        previous_submission = Some(submission_id);
        let Some(tasks) = non_empty_array(object, "tasks", BY_SUBMISSION, at, sink) else {
            continue;
        };
        let mut previous_task: Option<usize> = None;
        for task in tasks {
            let Some(task) = task.as_object() else {
                keys(
                    sink,
                    BY_SUBMISSION,
                    at,
                    "a task is not an object".to_owned(),
                );
                continue;
            };
            check_keys(
                task,
                &SUBMISSION_TASK_KEYS,
                false,
                BY_SUBMISSION,
                at,
                "task",
                sink,
            );
            let task_id = task
                .get("task_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match task_order.map(|order| order.get(task_id)) {
                Some(Some(&position)) => {
                    if previous_task.is_some_and(|p| p >= position) {
                        let message = format!("task {task_id:?} is out of task order or repeated");
                        order(sink, BY_SUBMISSION, at, message);
                    }
                    previous_task = Some(position);
                }
                Some(None) => reference(
                    sink,
                    BY_SUBMISSION,
                    at,
                    format!("task {task_id:?} has no line in {BY_TASK}"),
                ),
                None => {}
            }
            let Some(responses) = non_empty_array(task, "responses", BY_SUBMISSION, at, sink)
            else {
                continue;
            };
            let mut previous: Option<(usize, Option<i128>, String)> = None;
            for response in responses {
                let Some(response) = response.as_object() else {
                    keys(
                        sink,
                        BY_SUBMISSION,
                        at,
                        "a response is not an object".to_owned(),
                    );
                    continue;
                };
                check_keys(
                    response,
                    &RESPONSE_KEYS,
                    true,
                    BY_SUBMISSION,
                    at,
                    "response",
                    sink,
                );
                let key = check_response(response, submission_id, BY_SUBMISSION, at, refs, sink);
                if previous.as_ref().is_some_and(|p| *p >= key) {
                    let message = format!(
                        "response {:?} is out of order (instruction, created_at, id)",
                        key.2
                    );
                    order(sink, BY_SUBMISSION, at, message);
                }
                previous = Some(key);
                placed.push(Placed {
                    line: *line,
                    submission_id,
                    task_id,
                    response,
                });
            }
        }
    }
    placed
}

/// Checks one RESPONSE; returns its sort key within a task.
fn check_response(
    response: &Map<String, Value>,
    submission_id: &str,
    entry: &str,
    at: Option<u64>,
    refs: &mut References<'_>,
    sink: &mut Sink,
) -> (usize, Option<i128>, String) {
    let id = response.get("response_id").and_then(Value::as_str);
    let instruction_id = response.get("instruction_id").and_then(Value::as_str);
    let kind = response.get("type").and_then(Value::as_str);
    let answer = response.get("answer").and_then(Value::as_array);
    let (Some(id), Some(instruction_id), Some(kind), Some(answer)) =
        (id, instruction_id, kind, answer)
    else {
        keys(
            sink,
            entry,
            at,
            "a response's `response_id`, `instruction_id`, `type` or `answer` has the wrong type"
                .to_owned(),
        );
        return (usize::MAX, None, id.unwrap_or_default().to_owned());
    };
    let position = match refs.instructions.get(instruction_id) {
        Some((position, expected)) => {
            if kind != expected {
                let message =
                    format!("response {id:?} has type {kind:?}, its instruction {expected:?}");
                reference(sink, entry, at, message);
            }
            *position
        }
        None => {
            if refs.check_instructions {
                let message = format!(
                    "response {id:?} names instruction {instruction_id:?}, which batch.json lacks"
                );
                reference(sink, entry, at, message);
            }
            usize::MAX
        }
    };
    if kind == "file_upload" {
        let prefix = format!("files/{}_", safe_prefix(submission_id));
        for item in answer {
            if refs.files_omitted {
                if item.get("path") != Some(&Value::Null) {
                    keys(
                        sink,
                        entry,
                        at,
                        format!("an upload answer of response {id:?} has no `\"path\": null`, yet the archive was made without files"),
                    );
                }
                continue;
            }
            let path = item.get("path").and_then(Value::as_str);
            let Some(path) = path else {
                keys(
                    sink,
                    entry,
                    at,
                    format!("an upload answer of response {id:?} has no string `path`"),
                );
                continue;
            };
            if !refs.files.contains(path) {
                reference(
                    sink,
                    entry,
                    at,
                    format!("response {id:?} refers to {path:?}, which the archive lacks"),
                );
            } else if !path.starts_with(&prefix) {
                reference(
                    sink,
                    entry,
                    at,
                    format!("response {id:?} refers to {path:?}, not a file of its submission"),
                );
            }
            refs.referenced.insert(path.to_owned());
        }
    }
    // As the build sorts: a value that is not RFC 3339 counts as missing.
    let created = response
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .map(|t| t.unix_timestamp_nanos());
    (position, created, id.to_owned())
}

/// Both views hold the same responses, placed under the same submission
/// and task, with the same content and participant.
fn cross_check(
    by_sub: &[Placed<'_>],
    by_task: &[Placed<'_>],
    sub_lines: &[(u64, Map<String, Value>)],
    sink: &mut Sink,
) {
    let id_of = |p: &Placed<'_>| {
        p.response
            .get("response_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut from_sub: HashMap<String, &Placed<'_>> = HashMap::new();
    for placed in by_sub {
        if from_sub.insert(id_of(placed), placed).is_some() {
            order(
                sink,
                BY_SUBMISSION,
                Some(placed.line),
                format!("response {:?} appears twice", id_of(placed)),
            );
        }
    }
    let participants: HashMap<&str, &Value> = sub_lines
        .iter()
        .filter_map(|(_, o)| Some((o.get("submission_id")?.as_str()?, o.get("participant_id")?)))
        .collect();
    let mut seen = HashSet::new();
    for placed in by_task {
        let id = id_of(placed);
        if !seen.insert(id.clone()) {
            order(
                sink,
                BY_TASK,
                Some(placed.line),
                format!("response {id:?} appears twice"),
            );
            continue;
        }
        let Some(twin) = from_sub.get(&id) else {
            reference(
                sink,
                BY_TASK,
                Some(placed.line),
                format!("response {id:?} is missing from {BY_SUBMISSION}"),
            );
            continue;
        };
        if (twin.submission_id, twin.task_id) != (placed.submission_id, placed.task_id) {
            reference(
                sink,
                BY_TASK,
                Some(placed.line),
                format!("response {id:?} sits under another submission or task in {BY_SUBMISSION}"),
            );
        }
        let mut stripped = placed.response.clone();
        let participant = stripped.shift_remove("participant_id");
        stripped.shift_remove("submission_id");
        if stripped != *twin.response {
            reference(
                sink,
                BY_TASK,
                Some(placed.line),
                format!("response {id:?} differs from its copy in {BY_SUBMISSION}"),
            );
        }
        if participant.as_ref() != participants.get(placed.submission_id).copied() {
            reference(
                sink,
                BY_TASK,
                Some(placed.line),
                format!("response {id:?} names another participant than its submission"),
            );
        }
    }
    for placed in by_sub {
        let id = id_of(placed);
        if !seen.contains(&id) {
            reference(
                sink,
                BY_SUBMISSION,
                Some(placed.line),
                format!("response {id:?} is missing from {BY_TASK}"),
            );
        }
    }
}

fn check_counts(
    parsed: &Parsed,
    texts: &HashMap<&'static str, Vec<u8>>,
    files: usize,
    responses: usize,
    sink: &mut Sink,
) {
    if parsed.files_omitted && files > 0 {
        sink.push(
            VerifyProblemKind::Layout,
            Some(BATCH),
            None,
            format!("{files} files/ entries, yet `export.files` says the files were omitted"),
        );
    }
    let Some(counts) = &parsed.counts else {
        return;
    };
    let mut actual = vec![("files", files)];
    if texts.contains_key(BY_SUBMISSION) {
        actual.push(("submissions", parsed.by_submission.len()));
    }
    if texts.contains_key(BY_TASK) {
        actual.push(("tasks", parsed.by_task.len()));
        actual.push(("responses", responses));
    }
    for (key, actual) in actual {
        if let Some(claimed) = counts.get(key).and_then(Value::as_u64) {
            if claimed != actual as u64 {
                let message =
                    format!("`export.counts.{key}` is {claimed}, the archive holds {actual}");
                sink.push(VerifyProblemKind::Counts, Some(BATCH), None, message);
            }
        }
    }
}

/// The first keys are `spec`, in order; then pass-through fields if allowed.
fn check_keys(
    object: &Map<String, Value>,
    spec: &[&str],
    extras: bool,
    entry: &str,
    at: Option<u64>,
    what: &str,
    sink: &mut Sink,
) {
    let leading: Vec<&str> = object.keys().take(spec.len()).map(String::as_str).collect();
    if leading != spec {
        let message = format!("a {what}'s keys start {leading:?}, not {spec:?}");
        keys(sink, entry, at, message);
    } else if !extras && object.len() > spec.len() {
        keys(
            sink,
            entry,
            at,
            format!("a {what} has keys beyond {spec:?}"),
        );
    }
}

fn non_empty_array<'v>(
    object: &'v Map<String, Value>,
    key: &str,
    entry: &str,
    at: Option<u64>,
    sink: &mut Sink,
) -> Option<&'v Vec<Value>> {
    match object.get(key).and_then(Value::as_array) {
        Some(list) if !list.is_empty() => Some(list),
        Some(_) => {
            keys(sink, entry, at, format!("`{key}` is empty"));
            None
        }
        None => {
            keys(
                sink,
                entry,
                at,
                format!("`{key}` is missing or not an array"),
            );
            None
        }
    }
}

fn syntax(sink: &mut Sink, entry: &str, line: Option<u64>, message: &str) {
    sink.push(
        VerifyProblemKind::Syntax,
        Some(entry),
        line,
        message.to_owned(),
    );
}

fn keys(sink: &mut Sink, entry: &str, line: Option<u64>, message: String) {
    sink.push(VerifyProblemKind::Keys, Some(entry), line, message);
}

fn order(sink: &mut Sink, entry: &str, line: Option<u64>, message: String) {
    sink.push(VerifyProblemKind::Order, Some(entry), line, message);
}

fn reference(sink: &mut Sink, entry: &str, line: Option<u64>, message: String) {
    sink.push(VerifyProblemKind::Reference, Some(entry), line, message);
}
