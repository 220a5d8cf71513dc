//! What verification finds: [`VerifyProblem`]s, collected into a [`Report`].

use std::fmt;

/// How many problems a report lists before it only counts the rest.
pub const VERIFY_PROBLEM_CAP: usize = 500;

/// The kind of a [`VerifyProblem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyProblemKind {
    /// The ZIP structure: end records, headers, offsets, ZIP64 use, data
    /// descriptors, gaps, trailing bytes, entry times, encryption, methods.
    Structure,
    /// An entry name that is unsafe, duplicated (also ignoring case), not
    /// UTF-8, or whose UTF-8 flag is wrong.
    Name,
    /// Entry data that does not decompress, or whose size or CRC-32 is wrong.
    Integrity,
    /// A missing, misplaced, unexpected or unsorted entry.
    Layout,
    /// A file or line that is not the JSON it should be.
    Syntax,
    /// A JSON object whose keys or value types break the format.
    Keys,
    /// Lines, tasks or responses out of the contract's order, or repeated.
    Order,
    /// A reference that leads nowhere: a `path`, an instruction, a response
    /// missing from one view, or a `files/` entry nothing refers to.
    Reference,
    /// `export.counts` disagreeing with the content.
    Counts,
    /// The archive disagrees with the records it was checked against.
    Content,
}

/// One thing wrong with an archive, located by entry and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    /// What sort of problem this is.
    pub kind: VerifyProblemKind,
    /// The entry at fault, `None` for the archive as a whole.
    pub entry: Option<String>,
    /// The 1-based line of a JSON Lines entry, or record of a CSV entry
    /// (its header is record 1).
    pub line: Option<u64>,
    /// What is wrong, in lowercase words without a trailing period.
    pub message: String,
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(entry) => write!(f, "{entry}")?,
            None => write!(f, "archive")?,
        }
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of verifying one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    problems: Vec<VerifyProblem>,
    total: usize,
    entries: u64,
    archive_bytes: u64,
}

impl Report {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.total == 0
    }

    /// The problems found, in the order found, up to [`VERIFY_PROBLEM_CAP`].
    pub fn problems(&self) -> &[VerifyProblem] {
        &self.problems
    }

    /// How many problems were found, including those past the cap.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Entries listed in the central directory (0 when it was unreadable).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Size of the archive.
    pub fn archive_bytes(&self) -> u64 {
        self.archive_bytes
    }

    /// True when some problem is of this kind.
    pub fn has(&self, kind: VerifyProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(f, "archive ok, {} entries", self.entries);
        }
        let noun = if self.total == 1 {
            "problem"
        } else {
            "problems"
        };
        write!(
            f,
            "archive verification failed, {} {noun} found",
            self.total
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        let hidden = self.total - self.problems.len();
        if hidden > 0 {
            write!(f, "\n  ... and {hidden} more")?;
        }
        Ok(())
    }
}

/// Collects problems while checking, capped.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    problems: Vec<VerifyProblem>,
    total: usize,
}

impl Sink {
    pub(crate) fn push(
        &mut self,
        kind: VerifyProblemKind,
        entry: Option<&str>,
        line: Option<u64>,
        message: String,
    ) {
        self.total += 1;
        if self.problems.len() < VERIFY_PROBLEM_CAP {
            self.problems.push(VerifyProblem {
                kind,
                entry: entry.map(str::to_owned),
                line,
                message,
            });
        }
    }

    /// The message of the first problem found, if any.
    pub(crate) fn first_message(&self) -> Option<&str> {
        self.problems.first().map(|p| p.message.as_str())
    }

    /// True when nothing was reported.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub(crate) fn into_report(self, entries: u64, archive_bytes: u64) -> Report {
        Report {
            problems: self.problems,
            total: self.total,
            entries,
            archive_bytes,
        }
    }
}
