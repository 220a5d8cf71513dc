//! The line reader of the JSON Lines files: blocks read while the one
//! before is split and parsed in parallel, a slice of lines at a time,
//! each slice handed in line order to a `LineSink` (the records kept
//! whole, or streamed past the memory budget), with line numbers that stay
//! file-wide across blocks.

use std::io::Read;

use rayon::prelude::*;

use super::DumpFiles;
use super::{open_file, records, Seen};
use crate::error::{Error, Problem, ProblemKind, Problems};
use crate::model::line::LineObject;
use crate::model::origin::RecordFile;
use crate::model::raw::decode_json_string;
use crate::model::MAX_JSON_DEPTH;

/// Bytes of a JSON Lines file read, split and parsed (in parallel) per
/// step, so a file's text is never held whole beside its records.
const READ_BLOCK: usize = 8 << 20;

/// Lines parsed together: enough to keep every core busy, few enough that
/// their parsed form (a problem per bad line) stays a few megabytes.
const PARSE_CHUNK: usize = 16 * 1024;

/// Reads until `buffer` is full or the file ends.
fn read_full(source: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match source.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// A record parser: one parsed line to one record and its problems.
pub(super) type Parser<T> = fn(LineObject<'_>, &str, u64) -> records::Parsed<T>;

/// Reads one JSON Lines file, parsing its lines in parallel. Returns the
/// records in line order and the line number of each.
pub(super) fn read_jsonl<T: Send>(
    dir: &dyn DumpFiles,
    kind: RecordFile,
    parse: Parser<T>,
    problems: &mut Problems,
    seen: &mut Seen,
) -> Result<(Vec<T>, Vec<u64>), Error> {
    let mut records = Vec::new();
    let mut line_numbers = Vec::new();
    let mut kept = Kept {
        records: &mut records,
        line_numbers: &mut line_numbers,
        file_len: 0,
    };
    read_lines(dir, kind, parse, problems, seen, &mut kept)?;
    Ok((records, line_numbers))
}

/// Where the parsed lines of a file go, a slice of lines at a time.
pub(super) trait LineSink<T>: Send {
    /// Learns the file's size before the first slice.
    fn file_len(&mut self, _len: u64) {}

    /// Takes one slice of parsed lines (of `bytes` bytes of text), in line
    /// order; problems and the ids of refused lines go to `into`.
    fn append(
        &mut self,
        parsed: Vec<(u64, Line<T>)>,
        bytes: usize,
        into: &mut Noted<'_>,
    ) -> Result<(), Error>;
}

/// What every file's lines report besides their records.
pub(super) struct Noted<'n> {
    problems: &'n mut Problems,
    seen: &'n mut Seen,
    kind: RecordFile,
}

/// Reads one JSON Lines file, parsing its lines in parallel and handing
/// them to `sink` in line order.
pub(super) fn read_lines<T: Send>(
    dir: &dyn DumpFiles,
    kind: RecordFile,
    parse: Parser<T>,
    problems: &mut Problems,
    seen: &mut Seen,
    sink: &mut dyn LineSink<T>,
) -> Result<(), Error> {
    let file = kind.file_name();
    let path = dir.location_of(file);
    let opened = if kind == RecordFile::Uploads && dir.is_absent(file) {
        // A batch without uploads may leave this file out.
        None
    } else {
        match open_file(dir, file, problems)? {
            Some(opened) => Some(opened),
            None => {
                seen.missing.push(kind);
                return Ok(());
            }
        }
    };
    // Without a size the first block's guess is 0: the lists grow instead.
    let file_len = opened.as_ref().and_then(|(_, len)| *len).unwrap_or(0);
    let mut source = opened.map(|(source, _)| source);
    let key = if kind == RecordFile::Uploads {
        "file_key"
    } else {
        "id"
    };
    sink.file_len(file_len);
    let read_error = |e| Error::io(&path, e);
    let (mut buffer, mut at_end) = match source.as_mut() {
        Some(source) => read_block(source, &[]).map_err(read_error)?,
        None => (Vec::new(), true),
    };
    // Lines in the blocks before this one, so numbers stay file-wide.
    let mut lines_before = 0u64;
    loop {
        // A block ends after its last complete line; a line longer than a
        // block makes the next read extend it.
        let end = match (at_end, memchr::memrchr(b'\n', &buffer)) {
            (true, _) => buffer.len(),
            (false, Some(newline)) => newline + 1,
            (false, None) => {
                let source = source.as_mut().expect("not at the end, so open");
                at_end = extend_block(source, &mut buffer).map_err(read_error)?;
                continue;
            }
        };
        let (block, rest) = buffer.split_at(end);
        let mut noted = Noted {
            problems: &mut *problems,
            seen: &mut *seen,
            kind,
        };
        let sink = &mut *sink;
        // The next block is read while this one is parsed.
        let (newlines, next) = rayon::join(
            || {
                let (lines, newlines) = split_lines(block);
                // Parsed a slice of lines at a time, so that a block of bad
                // lines holds the problems of one slice, not of the block:
                // past the cap, problems are only counted.
                for chunk in lines.chunks(PARSE_CHUNK) {
                    let parsed: Vec<(u64, Line<T>)> = chunk
                        .par_iter()
                        .map(|&(line, text)| {
                            let line = lines_before + line;
                            (line, parse_line(text, file, line, key, parse))
                        })
                        .collect();
                    let bytes = chunk.iter().map(|(_, text)| text.len() + 1).sum();
                    sink.append(parsed, bytes, &mut noted)?;
                }
                Ok::<_, Error>(newlines)
            },
            || match source.as_mut().filter(|_| !at_end) {
                Some(source) => read_block(source, rest).map(Some),
                None => Ok(None),
            },
        );
        lines_before += newlines?;
        match next.map_err(read_error)? {
            Some((next_buffer, next_at_end)) => (buffer, at_end) = (next_buffer, next_at_end),
            None => break,
        }
    }
    Ok(())
}

/// Records a file of `file_len` bytes likely holds, from a first block of
/// `block_len` bytes that held `found`, with a little room to spare. No
/// line with a record is shorter than 8 bytes, which bounds the guess
/// whatever the first block holds.
fn expected_records(file_len: u64, block_len: usize, found: usize) -> usize {
    let per_byte = found as f64 / block_len.max(1) as f64;
    let guess = (file_len as f64 * per_byte * 1.02) as usize + 16;
    guess.min(usize::try_from(file_len / 8).unwrap_or(usize::MAX))
}

/// Where the lines of a file read whole go: records with their line numbers.
pub(super) struct Kept<'k, T> {
    records: &'k mut Vec<T>,
    line_numbers: &'k mut Vec<u64>,
    file_len: u64,
}

impl<T: Send> LineSink<T> for Kept<'_, T> {
    fn file_len(&mut self, len: u64) {
        self.file_len = len;
    }

    /// Appends one block's parsed lines, in line order.
    fn append(
        &mut self,
        parsed: Vec<(u64, Line<T>)>,
        bytes: usize,
        noted: &mut Noted<'_>,
    ) -> Result<(), Error> {
        if self.records.capacity() == 0 {
            // Sized once from the first slice's records per byte: growing
            // by doubling would copy the records and could leave half the
            // list unused, on the file that dominates the memory.
            let found = parsed.iter().filter(|(_, l)| l.record.is_some()).count();
            let expected = expected_records(self.file_len, bytes, found);
            self.records.reserve_exact(expected);
            self.line_numbers.reserve_exact(expected);
        }
        self.records.reserve(parsed.len());
        self.line_numbers.reserve(parsed.len());
        let all_clean = parsed
            .iter()
            .all(|(_, line)| line.record.is_some() && line.problems.is_empty());
        if all_clean {
            // The usual case, moved into place in parallel.
            self.line_numbers
                .extend(parsed.iter().map(|(line, _)| *line));
            self.records.par_extend(
                parsed
                    .into_par_iter()
                    .map(|(_, line)| line.record.expect("every record is there, checked above")),
            );
            return Ok(());
        }
        noted.keep(parsed, |line, record| {
            self.records.push(record);
            self.line_numbers.push(line);
        });
        Ok(())
    }
}

impl Noted<'_> {
    /// Notes the problems and refused ids of `parsed`, handing each record
    /// with its line to `keep`, in line order.
    pub(super) fn keep<T>(&mut self, parsed: Vec<(u64, Line<T>)>, mut keep: impl FnMut(u64, T)) {
        for (line, parsed) in parsed {
            for problem in parsed.problems {
                self.problems.push(problem);
            }
            match (parsed.record, parsed.key) {
                (Some(record), _) => keep(line, record),
                (None, Some(key)) => self.seen.unusable.push((self.kind, key)),
                (None, None) => {}
            }
        }
    }
}

/// One line's outcome: its record if usable, its problems, and its id when
/// it could be read even though the record could not.
pub(super) struct Line<T> {
    record: Option<T>,
    problems: Vec<Problem>,
    key: Option<String>,
}

pub(super) fn parse_line<T>(
    text: &[u8],
    file: &str,
    line: u64,
    key: &str,
    parse: Parser<T>,
) -> Line<T> {
    let refused = |problem: Problem| Line {
        record: None,
        problems: vec![problem],
        key: None,
    };
    let syntax = |message: String| Problem {
        kind: ProblemKind::Syntax,
        file: file.to_owned(),
        line: Some(line),
        field: None,
        message,
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return refused(syntax("line is not valid UTF-8".to_owned()));
    };
    if let Some(message) = shape_fault(text) {
        return refused(syntax(message));
    }
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        let message = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => "line is JSON but not an object".to_owned(),
            Err(err) => format!("line is not JSON: {err}"),
        };
        return refused(syntax(message));
    }
    match LineObject::parse(text) {
        Ok(object) => {
            let key = object
                .get(key)
                .and_then(|value| decode_json_string(value.get()));
            let (record, problems) = parse(object, file, line);
            Line {
                record,
                problems,
                key,
            }
        }
        Err(err) => refused(syntax(format!("line is not JSON: {err}"))),
    }
}

/// What JSON parsers would say too late or too vaguely: a byte order mark
/// (which JSON does not allow, and serde_json reports as "expected value
/// at line 1 column 1"), or nesting deeper than the archive's readers take.
pub(super) fn shape_fault(text: &str) -> Option<String> {
    if text.starts_with('\u{feff}') {
        return Some(
            "starts with a byte order mark (U+FEFF), which JSON does not allow: save the file as UTF-8 without BOM"
                .to_owned(),
        );
    }
    crate::model::depth::nests_deeper_than(text.as_bytes(), MAX_JSON_DEPTH)
        .then(|| format!("nested deeper than {MAX_JSON_DEPTH}"))
}

/// `carry` (the unfinished line of the block before) followed by up to
/// [`READ_BLOCK`] bytes more of `source`, and whether the file ended.
fn read_block(source: &mut impl Read, carry: &[u8]) -> std::io::Result<(Vec<u8>, bool)> {
    let mut block = Vec::with_capacity(carry.len() + READ_BLOCK);
    block.extend_from_slice(carry);
    let at_end = extend_block(source, &mut block)?;
    Ok((block, at_end))
}

/// Appends up to [`READ_BLOCK`] bytes more of `source` to `block`, in
/// place (a line longer than a block grows without being copied again);
/// returns whether the file ended.
fn extend_block(source: &mut impl Read, block: &mut Vec<u8>) -> std::io::Result<bool> {
    let start = block.len();
    block.resize(start + READ_BLOCK, 0);
    let n = read_full(source, &mut block[start..])?;
    block.truncate(start + n);
    Ok(n < READ_BLOCK)
}

/// Splits a block into its non-blank lines with their 1-based numbers,
/// dropping the `\r` of `\r\n` endings; also counts its newlines.
fn split_lines(bytes: &[u8]) -> (Vec<(u64, &[u8])>, u64) {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut number = 0u64;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    for end in ends {
        number += 1;
        let line = &bytes[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(|b| b.is_ascii_whitespace()) {
            lines.push((number, line));
        }
        start = end + 1;
    }
    (lines, number - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_records_follow_the_first_block_within_a_bound() {
        // 1,000 records in an 8 MB block of a 64 MB file: about 8,000.
        let guess = expected_records(64 << 20, 8 << 20, 1_000);
        assert!((8_000..8_300).contains(&guess), "{guess}");
        // A first block denser than any record line can be is capped.
        assert_eq!(expected_records(1 << 30, 1 << 20, 1 << 20), (1 << 30) / 8);
        assert_eq!(expected_records(0, 0, 0), 0);
    }

    #[test]
    fn split_lines_numbers_lines_and_skips_blanks() {
        let (lines, newlines) = split_lines(b"{}\r\n\n  \n{\"a\":1}\n");
        assert_eq!(lines, vec![(1, &b"{}"[..]), (4, &b"{\"a\":1}"[..])]);
        assert_eq!(newlines, 4);
        let (lines, newlines) = split_lines(b"{}\n{}");
        assert_eq!(lines, vec![(1, &b"{}"[..]), (2, &b"{}"[..])]);
        assert_eq!(newlines, 1);
    }

    #[test]
    fn non_object_line_is_named() {
        let parsed = parse_line(b"[1,2]", "tasks.jsonl", 7, "id", records::task);
        assert!(parsed.record.is_none());
        assert_eq!(
            parsed.problems[0].to_string(),
            "tasks.jsonl:7: line is JSON but not an object"
        );
    }
}
