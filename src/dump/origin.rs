//! Where records came from, so problems can name a file and a line.

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
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    lines: Option<[Vec<u64>; 5]>,
}

impl Origins {
    pub(crate) fn positional() -> Origins {
        Origins { lines: None }
    }

    pub(crate) fn from_lines(lines: [Vec<u64>; 5]) -> Origins {
        Origins { lines: Some(lines) }
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
        Problem {
            kind,
            file: file.file_name().to_owned(),
            line: Some(self.line(file, index)),
            field: (!field.is_empty()).then(|| field.to_owned()),
            message,
        }
    }
}
