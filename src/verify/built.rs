//! Comparing an archive with the archive its dump gives, built apart: the
//! way `verify --dump` compares with a dump past its memory budget, whose
//! records are never all in memory.
//!
//! The source of the records ([`ExpectedArchive`]) builds the archive they
//! give, with the options the archive's `batch.json` states, into a
//! temporary file (for a dump, [`Dump::build`](crate::Dump::build), which
//! spills past the budget). That archive is then read an entry at a time,
//! never whole, and compared with the archive being verified:
//!
//! - the entry names, as in memory;
//! - `batch.json`, key by key, as in memory;
//! - each view line by line, each expected line parsed alone and compared
//!   as JSON with the archive's line at the same position (so the same
//!   lines in the same order, each equal as parsed JSON: what the
//!   comparison in memory checks, and the nested task objects too);
//!   pseudonyms are mapped as in memory, learnt from the by-submission
//!   lines, which come first;
//! - `README.md` and the tables byte for byte, naming the first line
//!   that differs;
//! - each `files/` entry by the SHA-256 of its bytes.
//!
//! Nothing is probabilistic: every byte and every parsed line is
//! compared. What differs is reported by position (the first line that
//! is not the expected one, then each line after it that differs), where
//! the comparison in memory can also say which response moved where.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, Write};

use serde_json::{Map, Value};

use super::expected::{compare_batch, compare_names, content, options_of, remap};
use super::problems::Sink;
use super::views::Parsed;
use super::zipfmt::{self, Entry};
use super::{Contents, HashingSink, VerifyError};
use crate::error::Error;
use crate::options::ExportOptions;

/// Records that can give the archive they should be in, built into a
/// file, for comparing an archive with records too many to hold in
/// memory. A dump directory implements it through `Dump::build`.
pub trait ExpectedArchive {
    /// Builds the archive the records give with `options` (the archive's
    /// own `generated_at`, tables and files option, and a stand-in
    /// pseudonymisation key) and opens it. Refused records are an error,
    /// as they are for a build.
    fn build_archive(&self, options: &ExportOptions) -> Result<File, Error>;
}

/// Compares the verified archive (`names`, `contents`, `parsed`) with the
/// one `expected` builds.
pub(crate) fn compare(
    expected: &dyn ExpectedArchive,
    names: &[&str],
    contents: &Contents,
    parsed: &Parsed,
    sink: &mut Sink,
) -> Result<(), VerifyError> {
    let mut file = expected
        .build_archive(&options_of(parsed))
        .map_err(VerifyError::Expected)?;
    let len = file.seek(io::SeekFrom::End(0)).map_err(VerifyError::Read)?;
    // Our own writer's archive: a problem in it is a bug, not the verified
    // archive's fault, and is not reported as one of its problems.
    let mut own = Sink::default();
    let entries = zipfmt::read_structure(&mut file, len, &mut own)?;
    let (Some(entries), true) = (entries, own.is_empty()) else {
        return Err(VerifyError::Read(io::Error::other(
            "the archive built from the dump to compare with is unreadable",
        )));
    };
    let expected_names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    compare_names(&expected_names, names, sink);

    // The archive's pseudonym of each submission, for the mapping.
    let pseudonyms: HashMap<&str, &str> = parsed
        .by_submission
        .iter()
        .filter_map(|(_, line)| {
            Some((
                str_of(line, "submission_id")?,
                str_of(line, "participant_id")?,
            ))
        })
        .collect();
    let mut mapping = Pseudonyms::default();
    for entry in &entries {
        let name = entry.name.as_str();
        if name.starts_with("files/") {
            if let Some(actual) = contents.digests.get(name) {
                let mut hasher = HashingSink(sha2::Sha256::default());
                read_own(&mut file, entry, &mut hasher)?;
                if *actual != <[u8; 32]>::from(sha2::Digest::finalize(hasher.0)) {
                    let message = "the bytes differ from the upload the dump gives".to_owned();
                    content(sink, name, None, message);
                }
            }
            continue;
        }
        let Some(actual) = contents.texts.get(name) else {
            continue;
        };
        match name {
            "batch.json" => {
                let mut bytes = Vec::new();
                read_own(&mut file, entry, &mut bytes)?;
                compare_batch(parsed, &bytes, sink);
            }
            "responses-by-submission.jsonl" | "responses-by-task.jsonl" => {
                let (id_key, lines) = if name == "responses-by-task.jsonl" {
                    ("task_id", &parsed.by_task)
                } else {
                    ("submission_id", &parsed.by_submission)
                };
                let mut view = ViewLines {
                    entry: name,
                    id_key,
                    actual: lines,
                    next: 0,
                    pending: Vec::new(),
                    mapping: parsed.pseudonymised.then_some((&mut mapping, &pseudonyms)),
                    sink: &mut *sink,
                };
                read_own(&mut file, entry, &mut view)?;
                view.finish();
            }
            _ => {
                let mut bytes = SameBytes::new(actual);
                read_own(&mut file, entry, &mut bytes)?;
                if let Some(line) = bytes.differing_line() {
                    let message = if name == "README.md" {
                        "differs from the README the dump gives"
                    } else {
                        "differs from the table the dump gives"
                    };
                    content(sink, name, Some(line), message.to_owned());
                }
            }
        }
    }
    Ok(())
}

/// Reads an entry of the archive built to compare with into `out`.
fn read_own(file: &mut File, entry: &Entry, out: &mut dyn Write) -> Result<(), VerifyError> {
    let mut own = Sink::default();
    if zipfmt::read_entry(file, entry, out, &mut own)? && own.is_empty() {
        return Ok(());
    }
    Err(VerifyError::Read(io::Error::other(format!(
        "entry {} of the archive built from the dump to compare with is unreadable",
        entry.name
    ))))
}

fn str_of<'l>(line: &'l Map<String, Value>, key: &str) -> Option<&'l str> {
    line.get(key)?.as_str()
}

/// The stand-in pseudonyms of the expected archive mapped onto the
/// archive's, one to one.
#[derive(Default)]
struct Pseudonyms {
    to_actual: HashMap<String, String>,
    owner: HashMap<String, String>,
}

impl Pseudonyms {
    /// Learns the mapping from one expected by-submission line; false when
    /// it breaks one pseudonym per participant.
    fn learn(&mut self, line: &Map<String, Value>, actual: &HashMap<&str, &str>) -> bool {
        let (Some(submission), Some(stand_in)) = (
            str_of(line, "submission_id"),
            str_of(line, "participant_id"),
        ) else {
            return true;
        };
        let Some(pseudonym) = actual.get(submission) else {
            return true;
        };
        let first = self
            .to_actual
            .entry(stand_in.to_owned())
            .or_insert_with(|| (*pseudonym).to_owned());
        let owner = self
            .owner
            .entry((*pseudonym).to_owned())
            .or_insert_with(|| stand_in.to_owned());
        first == pseudonym && owner == stand_in
    }
}

/// The expected lines of a view as they stream out of the built archive,
/// each compared with the archive's line at the same position.
struct ViewLines<'a> {
    entry: &'a str,
    id_key: &'a str,
    /// The archive's lines, parsed (those that are not JSON objects are
    /// left out and already reported).
    actual: &'a [(u64, Map<String, Value>)],
    /// The next of `actual` to compare with.
    next: usize,
    /// The unfinished line of the bytes so far.
    pending: Vec<u8>,
    /// When pseudonymised: the mapping learnt so far, and the archive's
    /// pseudonym of each submission.
    mapping: Option<(&'a mut Pseudonyms, &'a HashMap<&'a str, &'a str>)>,
    sink: &'a mut Sink,
}

impl ViewLines<'_> {
    fn line(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut text = std::borrow::Cow::Borrowed(bytes);
        if let Some((mapping, actual)) = &mut self.mapping {
            if self.id_key == "submission_id" {
                let stand_in: Map<String, Value> =
                    serde_json::from_slice(bytes).unwrap_or_default();
                if !mapping.learn(&stand_in, actual) {
                    let id = str_of(&stand_in, "submission_id").unwrap_or_default();
                    let message = format!(
                        "submission {id:?}: pseudonyms are not one per participant of the dump"
                    );
                    content(self.sink, self.entry, None, message);
                }
            }
            text = remap(bytes, &mapping.to_actual).into();
        }
        let expected: Map<String, Value> = serde_json::from_slice(&text).unwrap_or_default();
        let id = str_of(&expected, self.id_key).unwrap_or_default();
        let Some((line, actual)) = self.actual.get(self.next) else {
            let message = format!("no line for {} {id:?}, which the dump gives", self.id_key);
            content(self.sink, self.entry, None, message);
            return;
        };
        self.next += 1;
        if *actual == expected {
            return;
        }
        let found = str_of(actual, self.id_key).unwrap_or_default();
        let message = if found == id {
            let differing: Vec<&str> = expected
                .iter()
                .filter(|(k, v)| actual.get(*k) != Some(*v))
                .map(|(k, _)| k.as_str())
                .chain(
                    actual
                        .keys()
                        .filter(|k| !expected.contains_key(*k))
                        .map(String::as_str),
                )
                .collect();
            format!(
                "{} {id:?} differs from the dump in {}",
                self.id_key,
                differing.join(", ")
            )
        } else {
            format!(
                "holds {} {found:?} where the dump's export has {id:?}",
                self.id_key
            )
        };
        content(self.sink, self.entry, Some(*line), message);
    }

    /// Compares the last line, and reports the archive's lines beyond the
    /// expected ones.
    fn finish(mut self) {
        let last = std::mem::take(&mut self.pending);
        self.line(&last);
        for (line, actual) in &self.actual[self.next.min(self.actual.len())..] {
            let id = str_of(actual, self.id_key).unwrap_or_default();
            let message = format!("{} {id:?} is not in the dump's export", self.id_key);
            content(self.sink, self.entry, Some(*line), message);
        }
    }
}

impl Write for ViewLines<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            if self.pending.is_empty() {
                self.line(&rest[..end]);
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&rest[..end]);
                self.line(&line);
            }
            rest = &rest[end + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compares the bytes written to it (an entry of the built archive) with
/// the verified archive's, keeping only the line of the first difference.
struct SameBytes<'a> {
    actual: &'a [u8],
    /// Bytes compared so far.
    at: usize,
    /// Line ends before `at`.
    lines: u64,
    differs_at: Option<u64>,
}

impl<'a> SameBytes<'a> {
    fn new(actual: &'a [u8]) -> SameBytes<'a> {
        SameBytes {
            actual,
            at: 0,
            lines: 0,
            differs_at: None,
        }
    }

    /// The 1-based line of the first difference, if any (a shorter or
    /// longer archive entry differs at the line where one of them ends).
    fn differing_line(&self) -> Option<u64> {
        self.differs_at
            .or((self.at != self.actual.len()).then_some(self.lines + 1))
    }
}

impl Write for SameBytes<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.differs_at.is_some() {
            return Ok(buf.len());
        }
        let actual = &self.actual[self.at.min(self.actual.len())..];
        let same = buf.iter().zip(actual).take_while(|(a, b)| a == b).count();
        self.lines += memchr::memchr_iter(b'\n', &buf[..same]).count() as u64;
        if same < buf.len() {
            self.differs_at = Some(self.lines + 1);
        }
        self.at += same;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
