//! Checking an archive against the contract, and optionally against the
//! dump it should have been built from.
//!
//! The verifier reads archives it did not write: it parses the ZIP
//! structure itself (not through the writer's code, nor a crate that would
//! hide flags and extra fields), treats every length and offset as hostile,
//! and turns anything wrong into a [`VerifyProblem`] rather than an error.
//! Only a failure to read the source, or an unusable dump, is an error.
//!
//! What is checked, in order:
//!
//! 1. The ZIP structure (`zipfmt`): end records, ZIP64 exactly when needed,
//!    local headers agreeing with the central directory, no data
//!    descriptors, no gaps, nothing after the central directory, safe and
//!    unique names, the UTF-8 flag on exactly the non-ASCII names.
//! 2. Every entry read in full: sizes and CRC-32.
//! 3. The layout: the four text entries in order (then `responses.csv`
//!    and `codebook.csv` when the archive has tables), then `files/` sorted.
//! 4. The content (`views`): `batch.json`, every JSON Lines line and its
//!    keys, both views' ordering, the views agreeing with each other, every
//!    `path` naming a `files/` entry (or `null` when `export.files` is
//!    `"omitted"`) and every entry referred to, pseudonyms when
//!    `export.participants` is `"pseudonymised"`, counts; the tables
//!    (`tables`): one row per answer item with the views' values, one
//!    codebook row per instruction and option.
//! 5. With expected records (`expected`): the same entries, the same parsed
//!    JSON, the same README, the same upload bytes. Only this step builds
//!    what it expects with the writer's own code; `expected` says why.
//!
//! # Example
//!
//! ```
//! use std::io::Cursor;
//! use batch_export::{verify, Dump, ExportOptions};
//!
//! let dump = Dump::open("fixtures/sample-batch")?;
//! let mut archive = Cursor::new(Vec::new());
//! dump.export(&mut archive, &ExportOptions::new())?;
//! let report = verify::verify_against_dump(Cursor::new(archive.into_inner()), &dump)?;
//! assert!(report.is_ok(), "{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod built;
mod expected;
mod names;
mod problems;
mod tables;
mod views;
mod zipfmt;

use std::collections::HashMap;
use std::io::{self, Read, Seek};

pub use built::ExpectedArchive;
pub use problems::{Report, VerifyProblem, VerifyProblemKind, VERIFY_PROBLEM_CAP};

use crate::blob::BlobSource;
use crate::error::{Error, Problems};
use crate::model::Records;
use problems::Sink;
use zipfmt::{Entry, Source};

/// The four text entries, in the order the archive holds them.
pub const TEXT_ENTRIES: [&str; 4] = [
    "README.md",
    "batch.json",
    "responses-by-submission.jsonl",
    "responses-by-task.jsonl",
];

/// The two entries of the `tables` option, right after [`TEXT_ENTRIES`].
pub const TABLE_ENTRIES: [&str; 2] = ["responses.csv", "codebook.csv"];

/// Text entries larger than this are not loaded: the archive is reported
/// rather than exhausting memory on a hostile size field.
const MAX_TEXT_BYTES: u64 = 2 << 30;

/// Why an archive could not be verified at all (as opposed to problems
/// found in it, which are listed in the [`Report`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Reading the archive's source failed.
    #[error("reading the archive")]
    Read(#[source] io::Error),
    /// The records to compare against are refused or otherwise unusable.
    #[error("the expected records are unusable")]
    Expected(#[source] Error),
    /// Reading an upload's bytes from the expected blob source failed.
    #[error("reading upload {file_key} from the dump")]
    Blob {
        /// The upload whose bytes could not be read.
        file_key: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Checks only that `archive` (of `len` bytes) ends with ZIP end records
/// that place a central directory inside it; `Ok(Err(why))` when not.
/// Cheap, for a download's last check before it is renamed into place.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) fn check_end_records<R: Read + Seek>(
    archive: &mut R,
    len: u64,
) -> Result<Result<(), String>, VerifyError> {
    zipfmt::check_end_records(archive, len)
}

/// Checks an archive against the contract alone.
pub fn verify<R: Read + Seek>(mut archive: R) -> Result<Report, VerifyError> {
    run(&mut archive, None)
}

/// Checks an archive against the contract and against the records and
/// upload bytes it should hold. The records are checked as a build would
/// check them; refused records are a [`VerifyError::Expected`].
pub fn verify_against<R: Read + Seek>(
    mut archive: R,
    records: &Records,
    blobs: &dyn BlobSource,
) -> Result<Report, VerifyError> {
    let origins = crate::model::origin::Origins::positional();
    crate::archive::check(records, &origins, &Problems::default())
        .map_err(VerifyError::Expected)?;
    run(&mut archive, Some(Against::Records(records, blobs)))
}

/// Checks an archive against the contract and against a dump directory
/// (a [`Dump`](crate::Dump), or any other [`Expected`] source).
pub fn verify_against_dump<R: Read + Seek, D: Expected + ?Sized>(
    mut archive: R,
    dump: &D,
) -> Result<Report, VerifyError> {
    let records = dump.checked_records().map_err(VerifyError::Expected)?;
    let blobs = dump.upload_bytes();
    run(&mut archive, Some(Against::Records(records, &*blobs)))
}

/// Checks an archive against the contract and against the archive that
/// `expected` builds with the archive's own options, an entry and a line
/// at a time: for records too many to hold in memory (a dump past its
/// memory budget, [`Dump::verify_archive`](crate::Dump::verify_archive)).
/// Refused records are a [`VerifyError::Expected`].
pub fn verify_against_built<R: Read + Seek>(
    mut archive: R,
    expected: &dyn ExpectedArchive,
) -> Result<Report, VerifyError> {
    run(&mut archive, Some(Against::Built(expected)))
}

/// What an archive is compared with, beyond the contract.
enum Against<'a> {
    /// Records in memory and their upload bytes.
    Records(&'a Records, &'a dyn BlobSource),
    /// The archive records give, built apart.
    Built(&'a dyn ExpectedArchive),
}

/// Records read from somewhere, with their upload bytes, that an archive is
/// compared against. The dump reader implements it for its `Dump`; it is a
/// trait so that the verifier does not depend on the reader.
pub trait Expected {
    /// The records, checked as a build would check them: refused records
    /// are an error.
    fn checked_records(&self) -> Result<&Records, Error>;
    /// Where the records' upload bytes are.
    fn upload_bytes(&self) -> Box<dyn BlobSource + '_>;
}

/// What reading the entries produced for the later steps.
struct Contents {
    /// Bytes of the text entries found, by name.
    texts: HashMap<&'static str, Vec<u8>>,
    /// SHA-256 of every `files/` entry read in full, by name.
    digests: HashMap<String, [u8; 32]>,
}

fn run(source: &mut dyn Source, expected: Option<Against<'_>>) -> Result<Report, VerifyError> {
    let mut sink = Sink::default();
    let archive_bytes = source
        .seek(io::SeekFrom::End(0))
        .map_err(VerifyError::Read)?;
    let Some(entries) = zipfmt::read_structure(source, archive_bytes, &mut sink)? else {
        return Ok(sink.into_report(0, archive_bytes));
    };
    check_layout(&entries, &mut sink);
    let contents = read_entries(source, &entries, &mut sink)?;
    let file_names: Vec<&str> = entries
        .iter()
        .filter(|e| e.name.starts_with("files/"))
        .map(|e| e.name.as_str())
        .collect();
    let parsed = views::check(&contents.texts, &file_names, &mut sink);
    let has_tables = entries
        .iter()
        .any(|e| TABLE_ENTRIES.contains(&e.name.as_str()));
    tables::check(&contents.texts, has_tables, &parsed, &mut sink);
    if let Some(time) = parsed.generated_at_dos {
        let wrong: Vec<&Entry> = entries.iter().filter(|e| e.dos_time != time).collect();
        if let Some(first) = wrong.first() {
            sink.push(
                VerifyProblemKind::Structure,
                Some(&first.name),
                None,
                format!(
                    "{} entries carry a time other than batch.json's generated_at",
                    wrong.len()
                ),
            );
        }
    }
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    match expected {
        Some(Against::Records(records, blobs)) => {
            expected::compare(records, blobs, &names, &contents, &parsed, &mut sink)?
        }
        Some(Against::Built(built)) => {
            built::compare(built, &names, &contents, &parsed, &mut sink)?
        }
        None => {}
    }
    Ok(sink.into_report(entries.len() as u64, archive_bytes))
}

/// Whether `name` is one of the text entries (the four, or the tables).
fn is_text(name: &str) -> bool {
    TEXT_ENTRIES.contains(&name) || TABLE_ENTRIES.contains(&name)
}

/// The four text entries first, in order (then the two tables, when there
/// are any), then only `files/` entries, sorted by name (which the
/// structure check has made unique).
fn check_layout(entries: &[Entry], sink: &mut Sink) {
    let mut texts = TEXT_ENTRIES.to_vec();
    if entries
        .iter()
        .any(|e| TABLE_ENTRIES.contains(&e.name.as_str()))
    {
        texts.extend(TABLE_ENTRIES);
    }
    for (position, name) in texts.iter().enumerate() {
        match entries.iter().position(|e| e.name == *name) {
            None => sink.push(
                VerifyProblemKind::Layout,
                Some(name),
                None,
                "the entry is missing".to_owned(),
            ),
            Some(at) if at != position => sink.push(
                VerifyProblemKind::Layout,
                Some(name),
                None,
                format!("the entry is at position {}, not {}", at + 1, position + 1),
            ),
            Some(_) => {}
        }
    }
    let mut previous: Option<&str> = None;
    for entry in entries {
        let name = entry.name.as_str();
        if is_text(name) {
            continue;
        }
        if !name.starts_with("files/") || name.len() == "files/".len() || name.ends_with('/') {
            sink.push(
                VerifyProblemKind::Layout,
                Some(name),
                None,
                "an entry the layout has no place for".to_owned(),
            );
            continue;
        }
        if name[6..].contains('/') {
            sink.push(
                VerifyProblemKind::Layout,
                Some(name),
                None,
                "files/ entries are not in subfolders".to_owned(),
            );
        }
        if previous.is_some_and(|p| p >= name) {
            sink.push(
                VerifyProblemKind::Layout,
                Some(name),
                None,
                format!("files/ entries are not sorted by name: it follows {previous:?}"),
            );
        }
        previous = Some(name);
    }
    if let Some(last_text) = entries.iter().rposition(|e| is_text(&e.name)) {
        if let Some(file) = entries[..last_text]
            .iter()
            .find(|e| e.name.starts_with("files/"))
        {
            sink.push(
                VerifyProblemKind::Layout,
                Some(&file.name),
                None,
                "a files/ entry comes before a text entry".to_owned(),
            );
        }
    }
}

/// Reads every entry in full, checking its size and CRC; keeps the text
/// entries' bytes and the uploads' SHA-256.
fn read_entries(
    source: &mut dyn Source,
    entries: &[Entry],
    sink: &mut Sink,
) -> Result<Contents, VerifyError> {
    let mut contents = Contents {
        texts: HashMap::new(),
        digests: HashMap::new(),
    };
    for entry in entries {
        if !entry.readable {
            continue;
        }
        let text_name = TEXT_ENTRIES
            .iter()
            .chain(&TABLE_ENTRIES)
            .find(|n| **n == entry.name);
        if let Some(name) = text_name {
            if entry.uncompressed > MAX_TEXT_BYTES {
                sink.push(
                    VerifyProblemKind::Layout,
                    Some(name),
                    None,
                    format!(
                        "the entry claims {} bytes, too large to check",
                        entry.uncompressed
                    ),
                );
                continue;
            }
            let mut bytes = Vec::with_capacity(entry.uncompressed as usize);
            if zipfmt::read_entry(source, entry, &mut bytes, sink)? {
                contents.texts.insert(name, bytes);
            }
        } else {
            let mut hasher = HashingSink(sha2::Sha256::default());
            if zipfmt::read_entry(source, entry, &mut hasher, sink)? {
                use sha2::Digest;
                contents
                    .digests
                    .insert(entry.name.clone(), hasher.0.finalize().into());
            }
        }
    }
    Ok(contents)
}

/// Hashes what is written to it.
struct HashingSink(sha2::Sha256);

impl io::Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
