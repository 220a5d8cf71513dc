//! The checks across records: unique ids, references that resolve, and
//! records that agree with each other. Every problem is collected, located
//! by file and line, before anything is written.

use rayon::prelude::*;

use crate::hash::HashMap;

use crate::error::{Problem, ProblemKind, Problems};
use crate::model::file_keys::FileKeys;
use crate::model::origin::{located, Origins, RecordFile};
use crate::model::{Id, InstructionType, Records, Response};

/// Checks everything about `records` that needs more than one record.
pub(crate) fn check_records(
    records: &Records,
    file_keys: &FileKeys,
    origins: &Origins,
) -> Problems {
    let mut problems = Problems::default();
    let mut upload_problems = Problems::default();
    let by_id = Resolved::new(records, origins, &mut problems, &mut upload_problems);
    unique_ids(
        records.responses.iter().map(|r| r.id.as_str()),
        RecordFile::Responses,
        "id",
        origins,
        &mut problems,
    );
    problems.extend(upload_problems);
    // Each response is checked on its own, in parallel, into capped lists
    // merged in line order: a million bad responses keep the problems
    // shown and a count, not a million problems.
    let found = records
        .responses
        .par_iter()
        .enumerate()
        .fold(Problems::default, |mut found, (index, response)| {
            let keys = file_keys.of(index);
            let line = origins.line(RecordFile::Responses, index);
            for problem in by_id.check_response(line, response, keys) {
                found.push(problem);
            }
            found
        })
        .reduce(Problems::default, |mut first, then| {
            first.extend(then);
            first
        });
    problems.extend(found);
    problems
}

/// Ids resolved to their records' positions, for the checks of responses.
pub(crate) struct Resolved<'a> {
    records: &'a Records,
    origins: &'a Origins,
    instructions: HashMap<&'a str, usize>,
    tasks: HashMap<&'a str, usize>,
    submissions: HashMap<&'a str, usize>,
    uploads: HashMap<&'a str, usize>,
}

impl<'a> Resolved<'a> {
    /// Resolves the ids of every record but the responses, reporting the
    /// repeats of instructions, tasks and submissions to `problems` and of
    /// uploads to `upload_problems` (which come after the responses').
    pub(crate) fn new(
        records: &'a Records,
        origins: &'a Origins,
        problems: &mut Problems,
        upload_problems: &mut Problems,
    ) -> Resolved<'a> {
        let instructions = unique_ids(
            records.instructions.iter().map(|i| i.id.as_str()),
            RecordFile::Instructions,
            "id",
            origins,
            problems,
        );
        let tasks = unique_ids(
            records.tasks.iter().map(|t| t.id.as_str()),
            RecordFile::Tasks,
            "id",
            origins,
            problems,
        );
        let submissions = unique_ids(
            records.submissions.iter().map(|s| s.id.as_str()),
            RecordFile::Submissions,
            "id",
            origins,
            problems,
        );
        let uploads = unique_ids(
            records.uploads.iter().map(|u| u.file_key.as_str()),
            RecordFile::Uploads,
            "file_key",
            origins,
            upload_problems,
        );
        Resolved {
            records,
            origins,
            instructions,
            tasks,
            submissions,
            uploads,
        }
    }
}

/// The problem of a repeated id: `field` `id` on `line`, first on `first_line`.
pub(crate) fn duplicate(
    file: RecordFile,
    field: &str,
    id: &str,
    line: u64,
    first_line: u64,
) -> Problem {
    located(
        ProblemKind::Duplicate,
        file,
        line,
        field,
        format!("duplicate {field} {id:?} (first on line {first_line})"),
    )
}

impl Resolved<'_> {
    /// The problems of the response on `line` against the other records.
    pub(crate) fn check_response(
        &self,
        line: u64,
        response: &Response,
        file_keys: &[Option<Id>],
    ) -> Vec<Problem> {
        let Resolved {
            records,
            origins,
            instructions,
            tasks,
            submissions,
            uploads,
        } = self;
        let mut found = Vec::new();
        let mut report = |kind, field: &str, message: String| {
            found.push(located(kind, RecordFile::Responses, line, field, message));
        };
        let submission = submissions.get(response.submission_id.as_str());
        let known = |file, id: &str| origins.already_reported(file, id);
        if submission.is_none() && !known(RecordFile::Submissions, &response.submission_id) {
            let id = &response.submission_id;
            report(
                ProblemKind::DanglingReference,
                "submission_id",
                format!("submission {id:?} does not exist"),
            );
        }
        if !tasks.contains_key(response.task_id.as_str())
            && !known(RecordFile::Tasks, &response.task_id)
        {
            let id = &response.task_id;
            report(
                ProblemKind::DanglingReference,
                "task_id",
                format!("task {id:?} does not exist"),
            );
        }
        let instruction = instructions
            .get(response.instruction_id.as_str())
            .map(|&i| &records.instructions[i]);
        match instruction {
            None if known(RecordFile::Instructions, &response.instruction_id) => {}
            None => {
                let id = &response.instruction_id;
                report(
                    ProblemKind::DanglingReference,
                    "response.instruction_id",
                    format!("instruction {id:?} does not exist"),
                );
            }
            Some(instruction) => {
                let expected = instruction.kind.as_str();
                if response.kind != expected && !response.is_no_submission() {
                    report(
                    ProblemKind::Mismatch,
                    "response.type",
                    format!(
                        "type {:?} is neither the instruction's type {expected:?} nor \"no_submission\"",
                        response.kind
                    ),
                );
                }
            }
        }
        if let (Some(&s), Some(participant)) = (submission, &response.participant_id) {
            let owner = &records.submissions[s].participant_id;
            if participant != owner {
                report(
                ProblemKind::Mismatch,
                "participant_id",
                format!(
                    "participant {participant:?} differs from the submission's participant {owner:?}"
                ),
            );
            }
        }
        if response.kind == InstructionType::FileUpload.as_str() {
            for (position, key) in file_keys.iter().enumerate() {
                let field = format!("response.answer[{position}].file_key");
                match key {
                    None => report(
                        ProblemKind::MissingField,
                        &field,
                        "a file_upload answer needs a string file_key".to_owned(),
                    ),
                    Some(key) => match uploads.get(key.as_str()) {
                        None if known(RecordFile::Uploads, key) => {}
                        None => report(
                            ProblemKind::DanglingReference,
                            &field,
                            format!("upload {key:?} has no record in uploads.jsonl"),
                        ),
                        Some(&u) => {
                            let owner = &records.uploads[u].submission_id;
                            if *owner != response.submission_id {
                                report(
                                    ProblemKind::Mismatch,
                                    &field,
                                    format!(
                                        "upload {key:?} belongs to submission {owner:?}, not {:?}",
                                        response.submission_id
                                    ),
                                );
                            }
                        }
                    },
                }
            }
        }
        found
    }
}

/// Maps each id to its first record, reporting every later repeat.
fn unique_ids<'a>(
    ids: impl Iterator<Item = &'a str>,
    file: RecordFile,
    field: &str,
    origins: &Origins,
    problems: &mut Problems,
) -> HashMap<&'a str, usize> {
    let mut seen: HashMap<&str, usize> = HashMap::default();
    seen.reserve(ids.size_hint().0);
    for (index, id) in ids.enumerate() {
        if let Some(&first) = seen.get(id) {
            let first_line = origins.line(file, first);
            problems.push(duplicate(
                file,
                field,
                id,
                origins.line(file, index),
                first_line,
            ));
        } else {
            seen.insert(id, index);
        }
    }
    seen
}
