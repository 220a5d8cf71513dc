//! Helpers shared by the integration tests: fixture paths, dump copies,
//! building, and reading archives back (with the `zip` crate and, for the
//! header details it hides, a small central-directory parser).

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use batch_export::synth::{generate, SynthOptions};
use batch_export::{Dump, ExportOptions, ExportSummary};

/// A `gen` dump of `submissions` × `tasks` × 5 instructions and `uploads`
/// files, made the first time `cell` is asked and kept for the whole test
/// run (each caller's `static` cell holds its own).
pub fn generated_once(
    cell: &'static OnceLock<tempfile::TempDir>,
    submissions: usize,
    tasks: usize,
    uploads: usize,
) -> &'static Path {
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let options = SynthOptions {
            submissions,
            tasks,
            instructions: 5,
            uploads,
            ..SynthOptions::default()
        };
        generate(dir.path(), &options).unwrap();
        dir
    })
    .path()
}

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The bundled sample dump.
pub fn sample_dump() -> PathBuf {
    fixtures().join("sample-batch")
}

/// Copies a directory tree (a dump) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Builds the archive of the dump at `dump` into `out`.
pub fn build(
    dump: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary, batch_export::Error> {
    Dump::open(dump)?.export_to_path(out, options)
}

/// Every entry of an archive, in archive order, read with the `zip` crate
/// (which checks each CRC as it reads).
pub fn read_entries(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(fs::File::open(archive).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut file = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().to_owned(), bytes)
        })
        .collect()
}

/// One entry's bytes.
pub fn entry(archive: &Path, name: &str) -> Vec<u8> {
    read_entries(archive)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
        .1
}

/// The lines of a JSON Lines entry, parsed.
pub fn jsonl(archive: &Path, name: &str) -> Vec<serde_json::Value> {
    String::from_utf8(entry(archive, name))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// What the central directory says of one entry.
#[derive(Debug)]
pub struct CentralEntry {
    pub name: String,
    pub flags: u16,
    pub method: u16,
    pub dos_time: u16,
    pub dos_date: u16,
    pub extra_len: u16,
    pub local_offset: u32,
}

/// Parses the central directory of a small (non-ZIP64) archive.
pub fn central_directory(archive: &Path) -> Vec<CentralEntry> {
    let bytes = fs::read(archive).unwrap();
    let end = bytes.len() - 22;
    assert_eq!(
        &bytes[end..end + 4],
        b"PK\x05\x06",
        "end record is last, no comment"
    );
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let count = u16_at(end + 10) as usize;
    let size = u32_at(end + 12) as usize;
    let mut at = u32_at(end + 16) as usize;
    assert_eq!(
        at + size,
        end,
        "nothing between the central directory and its end record"
    );
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(&bytes[at..at + 4], b"PK\x01\x02");
        let name_len = u16_at(at + 28) as usize;
        let extra_len = u16_at(at + 30);
        let comment_len = u16_at(at + 32) as usize;
        entries.push(CentralEntry {
            name: String::from_utf8(bytes[at + 46..at + 46 + name_len].to_vec()).unwrap(),
            flags: u16_at(at + 8),
            method: u16_at(at + 10),
            dos_time: u16_at(at + 12),
            dos_date: u16_at(at + 14),
            extra_len,
            local_offset: u32_at(at + 42),
        });
        at += 46 + name_len + extra_len as usize + comment_len;
    }
    entries
}

/// Files left in a directory (to check nothing partial remains).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Rewrites a JSON Lines file of a dump with its lines in another order.
pub fn reorder_lines(path: &Path, reorder: impl FnOnce(&mut Vec<String>)) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    reorder(&mut lines);
    fs::write(path, lines.join("\n") + "\n").unwrap();
}
