//! Where records came from, so problems can name a file and a line.
//!
//! Shared by the dump reader, which records each line, and the checks
//! across records, which name the line of the record at fault: it lives
//! with the records so that neither depends on the other.

use std::collections::HashSet;

use crate::error::{Problem, ProblemKind};

/// The five JSON Lines files of a dump, one per record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordFile {
    Instructions,
    Tasks,
    Submissions,
    Responses,
    Uploads,
}

impl RecordFile {
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            RecordFile::Instructions => "instructions.jsonl",
            RecordFile::Tasks => "tasks.jsonl",
            RecordFile::Submissions => "submissions.jsonl",
            RecordFile::Responses => "responses.jsonl",
            RecordFile::Uploads => "uploads.jsonl",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The line of every record, by kind and position. Records given through the
/// API have no lines; their position (1-based) stands in for one.
///
/// Also remembers the ids of lines that were refused on their own, and files
/// that are missing, so that references to them are not reported a second
/// time as dangling.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    lines: Option<[Vec<u64>; 5]>,
    unusable: [HashSet<String>; 5],
    missing: [bool; 5],
}

impl Origins {
    pub(crate) fn positional() -> Origins {
        Origins::default()
    }

    pub(crate) fn from_lines(lines: [Vec<u64>; 5]) -> Origins {
        Origins {
            lines: Some(lines),
            ..Origins::default()
        }
    }

    /// Notes the id of a line refused on its own.
    pub(crate) fn add_unusable(&mut self, file: RecordFile, id: String) {
        self.unusable[file.index()].insert(id);
    }

    /// Notes a record file missing from the dump.
    pub(crate) fn set_missing(&mut self, file: RecordFile) {
        self.missing[file.index()] = true;
    }

    /// True when a reference to `id` must not be reported: its record was
    /// refused already, or its whole file is missing.
    pub(crate) fn already_reported(&self, file: RecordFile, id: &str) -> bool {
        self.missing[file.index()] || self.unusable[file.index()].contains(id)
    }

    pub(crate) fn line(&self, file: RecordFile, index: usize) -> u64 {
        match &self.lines {
            Some(lines) => lines[file.index()]
                .get(index)
                .copied()
                .unwrap_or(index as u64 + 1),
            None => index as u64 + 1,
        }
    }

    /// A problem located at one record.
    pub(crate) fn problem(
        &self,
        kind: ProblemKind,
        file: RecordFile,
        index: usize,
        field: &str,
        message: String,
    ) -> Problem {
        located(kind, file, self.line(file, index), field, message)
    }
}

/// A problem located at one line of a record file.
pub(crate) fn located(
    kind: ProblemKind,
    file: RecordFile,
    line: u64,
    field: &str,
    message: String,
) -> Problem {
    Problem {
        kind,
        file: file.file_name().to_owned(),
        line: Some(line),
        field: (!field.is_empty()).then(|| field.to_owned()),
        message,
    }
}
