//! Turning one parsed line into one typed record.

use super::fields::FieldReader;
use crate::error::{Problem, ProblemKind};
use crate::model::line::LineObject;
use crate::model::{Batch, Instruction, InstructionType, Response, Submission, Task, Upload};

/// What parsing one line gives: the record when its required fields are
/// usable, and the problems found either way.
pub(crate) type Parsed<T> = (Option<T>, Vec<Problem>);

pub(crate) fn batch(object: LineObject<'_>, file: &str) -> Parsed<Batch> {
    let fields = object.to_raw_object();
    let mut reader = FieldReader::new(object, file, 1);
    let id = reader.required_string("id");
    let name = reader.required_string("name");
    let workspace_id = reader.required_string("workspace_id");
    let (_, problems) = reader.into_extra();
    let batch = match (id, name, workspace_id) {
        (Some(id), Some(name), Some(workspace_id)) => Some(Batch {
            id,
            name,
            workspace_id,
            fields,
        }),
        _ => None,
    };
    (batch, problems)
}

pub(crate) fn instruction(object: LineObject<'_>, file: &str, line: u64) -> Parsed<Instruction> {
    let fields = object.to_raw_object();
    let mut reader = FieldReader::new(object, file, line);
    let id = reader.required_string("id");
    let kind: Option<String> = reader.required_string("type");
    let description: Option<String> = reader.required_string("description");
    let parsed_kind = kind.as_deref().and_then(InstructionType::parse);
    if let (Some(name), None) = (&kind, parsed_kind) {
        let known: Vec<_> = InstructionType::ALL.iter().map(|t| t.as_str()).collect();
        reader.problem(
            ProblemKind::WrongType,
            "type",
            format!(
                "unknown instruction type {name:?} (expected one of {})",
                known.join(", ")
            ),
        );
    }
    let (_, problems) = reader.into_extra();
    let instruction = match (id, parsed_kind, description) {
        (Some(id), Some(kind), Some(_)) => Some(Instruction { id, kind, fields }),
        _ => None,
    };
    (instruction, problems)
}

pub(crate) fn task(object: LineObject<'_>, file: &str, line: u64) -> Parsed<Task> {
    let mut reader = FieldReader::new(object, file, line);
    let id = reader.required_string("id");
    let group_id = reader.optional_raw("group_id");
    let datapoint = reader.optional_raw("datapoint");
    let metadata = reader.optional_raw("metadata");
    let (extra, problems) = reader.into_extra();
    let task = id.map(|id| Task {
        id,
        group_id,
        datapoint,
        metadata,
        extra,
    });
    (task, problems)
}

pub(crate) fn submission(object: LineObject<'_>, file: &str, line: u64) -> Parsed<Submission> {
    let mut reader = FieldReader::new(object, file, line);
    let id = reader.required_string("id");
    let participant_id = reader.required_string("participant_id");
    let study_id = reader.optional_raw("study_id");
    let status = reader.optional_raw("status");
    let started_at = reader.optional_raw("started_at");
    let completed_at = reader.optional_raw("completed_at");
    let (extra, problems) = reader.into_extra();
    let submission = match (id, participant_id) {
        (Some(id), Some(participant_id)) => Some(Submission {
            id,
            participant_id,
            study_id,
            status,
            started_at,
            completed_at,
            extra,
        }),
        _ => None,
    };
    (submission, problems)
}

pub(crate) fn response(object: LineObject<'_>, file: &str, line: u64) -> Parsed<Response> {
    let mut reader = FieldReader::new(object, file, line);
    let id = reader.required_string("id");
    let submission_id = reader.required_string("submission_id");
    let task_id = reader.required_string("task_id");
    let body = reader.required_object("response");
    let participant_id = reader.optional_string("participant_id");
    let correlation_id = reader.optional_raw("correlation_id");
    let created_at = reader.optional_raw("created_at");

    let (mut instruction_id, mut kind, mut answer) = (None, None, None);
    if let Some(body) = body {
        let mut inner = reader.nested(body, "response");
        instruction_id = inner.required_string("instruction_id");
        kind = inner.required_string("type");
        answer = inner.required_array("answer");
        let (_, inner_problems) = inner.into_extra();
        reader.problems.extend(inner_problems);
    }
    let (extra, problems) = reader.into_extra();
    let response = match (id, submission_id, task_id, instruction_id, kind, answer) {
        (
            Some(id),
            Some(submission_id),
            Some(task_id),
            Some(instruction_id),
            Some(kind),
            Some(answer),
        ) => Some(Response {
            id,
            submission_id,
            task_id,
            instruction_id,
            kind,
            answer,
            participant_id,
            correlation_id,
            created_at,
            extra,
        }),
        _ => None,
    };
    (response, problems)
}

pub(crate) fn upload(object: LineObject<'_>, file: &str, line: u64) -> Parsed<Upload> {
    let mut reader = FieldReader::new(object, file, line);
    let file_key: Option<crate::model::Id> = reader.required_string("file_key");
    let submission_id = reader.required_string("submission_id");
    let file_name = reader.required_string("file_name");
    let size_bytes = reader.required_u64("size_bytes");
    let content_type = reader.optional_string("content_type");
    let sha256 = reader.optional_string::<String>("sha256").and_then(|text| {
        let digest = parse_sha256(&text);
        if digest.is_none() {
            reader.problem(
                ProblemKind::WrongType,
                "sha256",
                format!("expected 64 hexadecimal digits, found {text:?}"),
            );
        }
        digest
    });
    let path: Option<String> = reader.optional_string("path");
    if let Some(path) = &path {
        if let Err(why) = check_relative_path(path) {
            reader.problem(ProblemKind::WrongType, "path", why);
        }
    }
    if let Some(key) = &file_key {
        if path.is_none() {
            if let Err(why) = check_relative_path(key) {
                reader.problem(ProblemKind::WrongType, "file_key", why);
            }
        }
    }
    let (extra, problems) = reader.into_extra();
    if !problems.is_empty() {
        return (None, problems);
    }
    let upload = match (file_key, submission_id, file_name, size_bytes) {
        (Some(file_key), Some(submission_id), Some(file_name), Some(size_bytes)) => Some(Upload {
            file_key,
            submission_id,
            file_name,
            size_bytes,
            content_type,
            sha256,
            path,
            extra,
        }),
        _ => None,
    };
    (upload, problems)
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    crate::hash::from_hex_into(text, &mut digest)?;
    Some(digest)
}

/// Upload paths are read relative to the dump; one that could reach outside
/// it (absolute, or through `..`) is refused rather than followed.
fn check_relative_path(path: &str) -> Result<(), String> {
    let escapes = path.is_empty()
        || path.starts_with('/')
        || path.starts_with('\\')
        || path.contains('\0')
        || path.split(['/', '\\']).any(|part| part == "..");
    if escapes {
        Err(format!("{path:?} is not a path inside the dump"))
    } else {
        Ok(())
    }
}
