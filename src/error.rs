//! Typed errors of the library.
//!
//! Input that breaks the contract is reported as [`Error::Refused`], one value
//! holding every [`Problem`] found (up to [`PROBLEM_CAP`]), each naming the
//! file, line and field at fault. Everything else (a disk that fills up, an
//! unreadable directory) is an I/O error that names the path involved.
//!
//! # Messages and causes
//!
//! An error that wraps another (an [`io::Error`], a SQLite error) says what
//! it was doing in its own message and hands the cause out through
//! [`std::error::Error::source`], never both: `anyhow`'s `{:#}` prints the
//! whole chain, so a message that also embedded `{source}` showed its cause
//! twice ("No space left on device (os error 28): No space left on device
//! (os error 28)"). Where only one string can go (a failed job's reason),
//! [`display_chain`] joins the chain the same way.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// How many problems a refusal lists before it only counts the rest.
pub const PROBLEM_CAP: usize = 200;

/// Everything that can go wrong while exporting a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input breaks the contract; nothing was written at the output path.
    #[error("{0}")]
    Refused(Problems),
    /// Reading or writing a file failed.
    #[error("{path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing the archive to its sink failed.
    #[error("writing the archive")]
    Write(#[source] io::Error),
    /// Reading an upload's bytes from the blob source failed for a reason
    /// other than the bytes being missing.
    #[error("reading upload {file_key}")]
    Blob {
        /// The upload whose bytes could not be read.
        file_key: String,
        /// The underlying error.
        source: io::Error,
    },
    /// An option was given a value the library cannot use.
    #[error("invalid option {option}: {message}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The build was cancelled by its caller.
    #[error("the build was cancelled")]
    Cancelled,
}

impl Error {
    /// Returns true when the error is refused input (exit code 1 in the binary).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused(_))
    }

    /// The problems of a refusal, or none for any other error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Refused(problems) => &problems.list,
            _ => &[],
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn refuse_one(problem: Problem) -> Error {
        let mut problems = Problems::default();
        problems.push(problem);
        Error::Refused(problems)
    }
}

/// An error followed by each of its causes, joined by `": "`: the one-line
/// form of `anyhow`'s `{:#}`, for where only a string can go.
pub fn display_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let part = next.to_string();
        // A wrapper that (against the rule above) repeats its cause, or a
        // transparent one, adds nothing new: say it once.
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = next.source();
    }
    text
}

/// The kind of a [`Problem`], for callers that react to some kinds only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A line is not JSON, or not an object; a file is unreadable as text.
    Syntax,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong type or an unusable value.
    WrongType,
    /// Two records of one kind share an id.
    Duplicate,
    /// A record refers to a record that does not exist.
    DanglingReference,
    /// Records disagree with each other (participant, type, upload owner).
    Mismatch,
    /// An upload's bytes are missing, or differ from the record's size or SHA-256.
    UploadBytes,
}

/// One thing wrong with the input, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What sort of problem this is.
    pub kind: ProblemKind,
    /// The dump file (`responses.jsonl`, ...) the record came from.
    pub file: String,
    /// The 1-based line of the record; for records given through the API,
    /// their 1-based position in their list. `None` for whole-file problems.
    pub line: Option<u64>,
    /// The field at fault, dotted for nested fields (`response.instruction_id`).
    pub field: Option<String>,
    /// What is wrong, in lowercase words without a trailing period.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one input, capped at [`PROBLEM_CAP`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    list: Vec<Problem>,
    total: usize,
}

impl Problems {
    /// Records a problem; past the cap it is only counted.
    pub fn push(&mut self, problem: Problem) {
        self.total += 1;
        if self.list.len() < PROBLEM_CAP {
            self.list.push(problem);
        }
    }

    /// Adds all problems of another list.
    pub fn extend(&mut self, other: Problems) {
        let uncounted = other.total - other.list.len();
        for problem in other.list {
            self.push(problem);
        }
        self.total += uncounted;
    }

    /// Counts `more` problems found but not listed (past the cap).
    pub(crate) fn count_unlisted(&mut self, more: usize) {
        self.total += more;
    }

    /// The problems kept, in the order found.
    pub fn list(&self) -> &[Problem] {
        &self.list
    }

    /// How many problems were found, including those past the cap.
    pub fn total(&self) -> usize {
        self.total
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// `Ok(())` when empty, otherwise the refusal.
    pub fn into_result(self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Refused(self))
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.total == 1 {
            "problem"
        } else {
            "problems"
        };
        write!(f, "input refused, {} {noun} found", self.total)?;
        for problem in &self.list {
            write!(f, "\n  {problem}")?;
        }
        let hidden = self.total - self.list.len();
        if hidden > 0 {
            write!(f, "\n  ... and {hidden} more")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_full() -> io::Error {
        io::Error::from_raw_os_error(28)
    }

    /// Every wrapping variant shows its cause exactly once in the chain.
    #[test]
    fn causes_are_shown_once() {
        let cause = disk_full().to_string();
        let errors = [
            Error::io("/x/out.zip", disk_full()),
            Error::Write(disk_full()),
            Error::Blob {
                file_key: "up-1".into(),
                source: disk_full(),
            },
        ];
        for err in &errors {
            let chain = display_chain(err);
            assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
            assert!(!err.to_string().contains(&cause), "{err}");
        }
        assert_eq!(display_chain(&errors[0]), format!("/x/out.zip: {cause}"));
    }
}
