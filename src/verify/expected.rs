//! Comparing an archive with the records and upload bytes it should hold.
//!
//! The expected text entries are built with the library's own pivot and
//! serialisers, at the archive's own `generated_at`, and compared as parsed
//! JSON (by line id and by response id, so a problem names what is missing,
//! extra or altered); uploads are compared by SHA-256, streamed from the
//! blob source, so nothing large is held in memory or written to disk.
//!
//! # Why this step shares the writer's code
//!
//! This is the one step of `verify` that calls the writer (`pivot::pivot`
//! and `archive::text_entries`), and on purpose: it answers "does this
//! archive hold these records", not "does it follow the contract". The
//! contract's rules are checked from the archive alone, by code that does
//! not share the writer's: the ZIP structure (`zipfmt`, our own parser),
//! the layout, and the views (`views`: every key, both orders, the views
//! agreeing with each other, every `path` and `files/` entry, the counts).
//! A second derivation of the views from records here would be a second
//! writer to keep in step with the first, for every export option, and
//! would catch nothing those checks do not: an archive the writer got
//! wrong fails them whatever records it is compared with. The independent
//! derivation of the views from records is the Python oracle of the tests
//! (`tests/oracle`), which the writer's archives of random dumps must match
//! line for line; what it shows of the writer holds for what this step
//! expects.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::problems::{Sink, VerifyProblemKind};
use super::views::Parsed;
use super::{Contents, VerifyError};
use crate::blob::BlobSource;
use crate::model::Records;
use crate::options::ExportOptions;

type Line = (u64, Map<String, Value>);

pub(crate) fn compare(
    records: &Records,
    blobs: &dyn BlobSource,
    names: &[&str],
    contents: &Contents,
    parsed: &Parsed,
    sink: &mut Sink,
) -> Result<(), VerifyError> {
    let config = options_of(parsed).freeze().map_err(VerifyError::Expected)?;
    let (generated_at, _) = config.generated_at_for(records);
    let file_keys = crate::model::file_keys::FileKeys::decode(records);
    let pivot = crate::pivot::pivot(records, &file_keys, &config);
    let mut texts = crate::archive::text_entries(records, &pivot, &generated_at);
    if parsed.pseudonymised {
        let by_submission = texts
            .iter()
            .find(|(name, _)| *name == "responses-by-submission.jsonl")
            .map(|(_, bytes)| lines(bytes))
            .unwrap_or_default();
        let map = pseudonym_map(&by_submission, &parsed.by_submission, sink);
        for (_, bytes) in &mut texts {
            *bytes = remap(bytes, &map);
        }
    }

    let mut expected_names: Vec<&str> = texts.iter().map(|(name, _)| *name).collect();
    expected_names.extend(pivot.files.iter().map(|f| f.name.as_str()));
    compare_names(&expected_names, names, sink);

    for (name, bytes) in &texts {
        let Some(actual) = contents.texts.get(name) else {
            continue;
        };
        match *name {
            "README.md" if actual != bytes => content(
                sink,
                name,
                None,
                "differs from the README the dump gives".to_owned(),
            ),
            "batch.json" => compare_batch(parsed, bytes, sink),
            "responses-by-submission.jsonl" => compare_view(
                name,
                "submission_id",
                &parsed.by_submission,
                &lines(bytes),
                sink,
            ),
            "responses-by-task.jsonl" => {
                compare_view(name, "task_id", &parsed.by_task, &lines(bytes), sink)
            }
            "responses.csv" | "codebook.csv" if actual != bytes => {
                // CSV lines are CRLF-terminated; a line break inside a
                // quoted cell is only LF, so this counts records closely.
                let line = actual
                    .split(|b| *b == b'\n')
                    .zip(bytes.split(|b| *b == b'\n'))
                    .position(|(a, e)| a != e)
                    .map(|i| i as u64 + 1);
                content(
                    sink,
                    name,
                    line,
                    "differs from the table the dump gives".to_owned(),
                );
            }
            _ => {}
        }
    }

    for file in &pivot.files {
        let Some(actual) = contents.digests.get(&file.name) else {
            continue;
        };
        let expected = blob_digest(blobs, file.upload)?;
        if *actual != expected {
            let message = format!(
                "the bytes differ from upload {:?} of the dump",
                file.upload.file_key
            );
            content(sink, &file.name, None, message);
        }
    }
    Ok(())
}

/// The options the archive was built with, as its `batch.json` says, so
/// that only content is compared: its own `generated_at`, tables and
/// files. The pseudonymisation key is the operator's, not ours: the
/// expected archive uses a stand-in key, and its pseudonyms are mapped
/// onto the archive's, which must be one per participant.
pub(super) fn options_of(parsed: &Parsed) -> ExportOptions {
    let mut options = ExportOptions::new()
        .tables(parsed.tables)
        .include_files(!parsed.files_omitted);
    if parsed.pseudonymised {
        options = options.pseudonymise(STAND_IN_KEY);
    }
    if let Some(at) = &parsed.generated_at {
        options = options.generated_at(at.clone());
    }
    options
}

/// Reports the entries the dump gives that the archive lacks, and those
/// it holds that the dump does not give.
pub(super) fn compare_names(expected_names: &[&str], names: &[&str], sink: &mut Sink) {
    let expected_set: HashSet<&str> = expected_names.iter().copied().collect();
    let actual_set: HashSet<&str> = names.iter().copied().collect();
    for name in expected_names {
        if !actual_set.contains(name) {
            content(
                sink,
                name,
                None,
                "the dump gives this entry, the archive lacks it".to_owned(),
            );
        }
    }
    for name in names {
        if !expected_set.contains(name) {
            content(
                sink,
                name,
                None,
                "the archive holds this entry, the dump does not give it".to_owned(),
            );
        }
    }
}

/// The key of the expected archive when the archive is pseudonymised.
const STAND_IN_KEY: &[u8] = b"batch-export verify stand-in key";

/// The stand-in pseudonym of each participant, mapped onto the archive's,
/// by submission. Two participants under one pseudonym, or one under two,
/// is a problem.
fn pseudonym_map(expected: &[Line], actual: &[Line], sink: &mut Sink) -> HashMap<String, String> {
    let participant = |object: &Map<String, Value>| -> Option<(String, String)> {
        Some((
            object.get("submission_id")?.as_str()?.to_owned(),
            object.get("participant_id")?.as_str()?.to_owned(),
        ))
    };
    let actual: HashMap<String, String> = actual.iter().filter_map(|l| participant(&l.1)).collect();
    let mut map: HashMap<String, String> = HashMap::new();
    let mut taken: HashMap<String, String> = HashMap::new();
    for (submission, stand_in) in expected.iter().filter_map(|l| participant(&l.1)) {
        let Some(pseudonym) = actual.get(&submission) else {
            continue;
        };
        let first = map
            .entry(stand_in.clone())
            .or_insert_with(|| pseudonym.clone());
        let owner = taken
            .entry(pseudonym.clone())
            .or_insert_with(|| stand_in.clone());
        if first != pseudonym || *owner != stand_in {
            let message = format!(
                "submission {submission:?}: pseudonyms are not one per participant of the dump"
            );
            content(sink, "responses-by-submission.jsonl", None, message);
        }
    }
    map
}

/// `text` with every stand-in pseudonym replaced by the archive's.
pub(super) fn remap(text: &[u8], map: &HashMap<String, String>) -> Vec<u8> {
    let prefix = crate::pseudonym::PSEUDONYM_PREFIX.as_bytes();
    let length = prefix.len() + 16;
    let mut out = Vec::with_capacity(text.len());
    let mut copied = 0;
    for at in memchr::memmem::find_iter(text, prefix) {
        if at < copied || at + length > text.len() {
            continue;
        }
        let candidate = std::str::from_utf8(&text[at..at + length]).unwrap_or_default();
        if let Some(pseudonym) = map.get(candidate) {
            out.extend_from_slice(&text[copied..at]);
            out.extend_from_slice(pseudonym.as_bytes());
            copied = at + length;
        }
    }
    out.extend_from_slice(&text[copied..]);
    out
}

fn blob_digest(
    blobs: &dyn BlobSource,
    upload: &crate::model::Upload,
) -> Result<[u8; 32], VerifyError> {
    let blob_error = |source| VerifyError::Blob {
        file_key: upload.file_key.to_string(),
        source,
    };
    let mut reader = blobs.open(upload).map_err(blob_error)?;
    let mut sha = Sha256::new();
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => sha.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(blob_error(e)),
        }
    }
    Ok(sha.finalize().into())
}

/// Lines this library wrote itself: each is a JSON object.
fn lines(bytes: &[u8]) -> Vec<Line> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .filter_map(|(i, line)| Some((i as u64 + 1, serde_json::from_slice(line).ok()?)))
        .collect()
}

/// Compares `batch.json` key by key (and `export` field by field).
pub(super) fn compare_batch(parsed: &Parsed, expected: &[u8], sink: &mut Sink) {
    let (Some(Value::Object(actual)), Ok(Value::Object(expected))) =
        (&parsed.batch, serde_json::from_slice::<Value>(expected))
    else {
        return;
    };
    let mut differing = Vec::new();
    for (key, value) in &expected {
        match (key.as_str(), actual.get(key), value) {
            ("export", Some(Value::Object(a)), Value::Object(e)) => {
                for (field, value) in e {
                    if a.get(field) != Some(value) {
                        differing.push(format!("export.{field}"));
                    }
                }
            }
            (_, Some(a), e) if a == e => {}
            _ => differing.push(key.clone()),
        }
    }
    differing.extend(
        actual
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .cloned(),
    );
    if !differing.is_empty() {
        let message = format!("differs from the dump in {}", differing.join(", "));
        content(sink, "batch.json", None, message);
    }
}

/// Compares one view: lines by id, responses by response id, then their
/// placement and order.
fn compare_view(entry: &str, id_key: &str, actual: &[Line], expected: &[Line], sink: &mut Sink) {
    let id_of = |object: &Map<String, Value>| {
        object
            .get(id_key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let actual_lines: HashMap<String, &Line> = actual.iter().map(|l| (id_of(&l.1), l)).collect();
    let expected_ids: HashSet<String> = expected.iter().map(|l| id_of(&l.1)).collect();
    for (_, object) in expected {
        let id = id_of(object);
        let Some((line, found)) = actual_lines.get(&id) else {
            content(
                sink,
                entry,
                None,
                format!("no line for {id_key} {id:?}, which the dump gives"),
            );
            continue;
        };
        let differing: Vec<&str> = object
            .iter()
            .filter(|(k, v)| !is_nested(k) && found.get(*k) != Some(*v))
            .map(|(k, _)| k.as_str())
            .chain(
                found
                    .keys()
                    .filter(|k| !object.contains_key(*k))
                    .map(String::as_str),
            )
            .collect();
        if !differing.is_empty() {
            let message = format!(
                "{id_key} {id:?} differs from the dump in {}",
                differing.join(", ")
            );
            content(sink, entry, Some(*line), message);
        }
    }
    for (line, object) in actual {
        let id = id_of(object);
        if !expected_ids.contains(&id) {
            content(
                sink,
                entry,
                Some(*line),
                format!("{id_key} {id:?} is not in the dump's export"),
            );
        }
    }

    let expected_responses = responses(expected);
    let actual_responses = responses(actual);
    let expected_by_id: HashMap<&str, &Map<String, Value>> =
        expected_responses.iter().map(|r| (r.1, r.2)).collect();
    let actual_by_id: HashMap<&str, &Map<String, Value>> =
        actual_responses.iter().map(|r| (r.1, r.2)).collect();
    for (line, id, response) in &actual_responses {
        match expected_by_id.get(id) {
            None => content(
                sink,
                entry,
                Some(*line),
                format!("response {id:?} is not in the dump's export"),
            ),
            Some(expected) if *expected != *response => {
                let message = format!("response {id:?} differs from the dump");
                content(sink, entry, Some(*line), message);
            }
            Some(_) => {}
        }
    }
    for (_, id, _) in &expected_responses {
        if !actual_by_id.contains_key(id) {
            content(
                sink,
                entry,
                None,
                format!("response {id:?} of the dump is missing"),
            );
        }
    }
    // Placement and order, over the responses both sides hold.
    let placement = |list: &[(u64, &str, &Map<String, Value>)],
                     other: &HashMap<&str, &Map<String, Value>>| {
        list.iter()
            .filter(|r| other.contains_key(r.1))
            .map(|r| r.1.to_owned())
            .collect::<Vec<_>>()
    };
    let actual_lines_of = |list: &[Line]| list.iter().map(|l| id_of(&l.1)).collect::<Vec<_>>();
    if placement(&actual_responses, &expected_by_id)
        != placement(&expected_responses, &actual_by_id)
        || common(&actual_lines_of(actual), &expected_ids)
            != common(
                &actual_lines_of(expected),
                &actual_lines.keys().cloned().collect(),
            )
    {
        content(
            sink,
            entry,
            None,
            "lines or responses are ordered differently from the dump's export".to_owned(),
        );
    }
}

fn common(ids: &[String], other: &HashSet<String>) -> Vec<String> {
    ids.iter()
        .filter(|id| other.contains(*id))
        .cloned()
        .collect()
}

fn is_nested(key: &str) -> bool {
    key == "tasks" || key == "responses"
}

/// Every response of a view with its line and id, in view order.
fn responses(lines: &[Line]) -> Vec<(u64, &str, &Map<String, Value>)> {
    let mut found = Vec::new();
    for (line, object) in lines {
        let direct = object.get("responses").and_then(Value::as_array);
        let nested = object
            .get("tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("responses")?.as_array());
        for list in direct.into_iter().chain(nested) {
            for response in list.iter().filter_map(Value::as_object) {
                let id = response
                    .get("response_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                found.push((*line, id, response));
            }
        }
    }
    found
}

pub(super) fn content(sink: &mut Sink, entry: &str, line: Option<u64>, message: String) {
    sink.push(VerifyProblemKind::Content, Some(entry), line, message);
}
