//! The ZIP structure of an archive, parsed independently of the writer.
//!
//! Every offset and length comes from the file being checked, so each is
//! bounded by the file's size before it is used: a truncated file, a
//! corrupted byte or a hand-made archive gives problems, never a panic, a
//! huge allocation or an endless loop.

use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::names::{check_name, SeenNames};
use super::problems::{Sink, VerifyProblemKind};
use super::VerifyError;

/// A seekable archive source, as a trait object.
pub(crate) trait Source: Read + Seek {}
impl<T: Read + Seek + ?Sized> Source for T {}

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
const END64_SIG: u32 = 0x0606_4b50;
const LOCATOR_SIG: u32 = 0x0706_4b50;
const MAX16: u64 = 0xFFFF;
const MAX32: u64 = 0xFFFF_FFFF;
const END_LEN: u64 = 22;
const END64_LEN: u64 = 56;
const LOCATOR_LEN: u64 = 20;
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
const FLAG_UTF8: u16 = 1 << 11;

/// One entry as the central directory describes it, with what the local
/// header check found.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The name, lossily decoded when it is not UTF-8 (which is reported).
    pub(crate) name: String,
    pub(crate) method: u16,
    pub(crate) crc32: u32,
    pub(crate) compressed: u64,
    pub(crate) uncompressed: u64,
    /// MS-DOS (time, date) of the central record.
    pub(crate) dos_time: (u16, u16),
    local_offset: u64,
    data_offset: u64,
    /// The data can be read: method known, not encrypted, local header
    /// sound, data inside the file.
    pub(crate) readable: bool,
}

type Result<T> = std::result::Result<T, VerifyError>;

/// Parses the end records, the central directory and every local header.
/// `None` when there is no usable central directory to go on with.
pub(crate) fn read_structure(
    src: &mut dyn Source,
    len: u64,
    sink: &mut Sink,
) -> Result<Option<Vec<Entry>>> {
    let Some(end) = find_end(src, len, sink)? else {
        return Ok(None);
    };
    let Some(cd) = read_at(src, end.cd_offset, end.cd_size)? else {
        structure(
            sink,
            None,
            "the central directory lies past the end of the file",
        );
        return Ok(None);
    };
    let mut entries = parse_central(&cd, sink);
    if entries.len() as u64 != end.count {
        structure(
            sink,
            None,
            &format!(
                "the end record counts {} entries, the central directory holds {}",
                end.count,
                entries.len()
            ),
        );
    }
    check_locals(src, &mut entries, end.cd_offset, sink)?;
    Ok(Some(entries))
}

/// Checks the end records alone: the end of central directory record (and
/// the ZIP64 locator and end record, when present) closes the file and
/// places a central directory inside it that starts with a central
/// record. Cheap (it reads the tail and one signature), so the client
/// runs it on every download before renaming it into place; a download
/// cut short or a body that is no ZIP at all fails it. `Err` says why.
pub(crate) fn check_end_records(
    src: &mut dyn Source,
    len: u64,
) -> Result<std::result::Result<(), String>> {
    let mut sink = Sink::default();
    let end = find_end(src, len, &mut sink)?;
    if let Some(message) = sink.first_message() {
        return Ok(Err(message.to_owned()));
    }
    let Some(end) = end else {
        return Ok(Err("no usable end records".to_owned()));
    };
    if end.cd_size > 0 {
        let first = read_at(src, end.cd_offset, 4)?;
        if first.is_none_or(|sig| u32_at(&sig, 0) != CENTRAL_SIG) {
            return Ok(Err(
                "the central directory does not start with a central record".to_owned(),
            ));
        }
    }
    Ok(Ok(()))
}

/// Where the central directory is, from the end records.
struct End {
    count: u64,
    cd_offset: u64,
    cd_size: u64,
}

fn find_end(src: &mut dyn Source, len: u64, sink: &mut Sink) -> Result<Option<End>> {
    if len < END_LEN {
        structure(
            sink,
            None,
            &format!("the file is too short ({len} bytes) to be a ZIP archive"),
        );
        return Ok(None);
    }
    let tail_len = len.min(END_LEN + MAX16);
    let tail_start = len - tail_len;
    let Some(tail) = read_at(src, tail_start, tail_len)? else {
        return Err(VerifyError::Read(io::ErrorKind::UnexpectedEof.into()));
    };
    // The last signature whose record (and comment) fits in the file.
    let found = (0..=tail.len() - END_LEN as usize).rev().find(|&i| {
        u32_at(&tail, i) == END_SIG
            && i + END_LEN as usize + u16_at(&tail, i + 20) as usize <= tail.len()
    });
    let Some(i) = found else {
        structure(
            sink,
            None,
            "no end of central directory record: the file is truncated or not a ZIP archive",
        );
        return Ok(None);
    };
    let end_pos = tail_start + i as u64;
    let record = &tail[i..];
    let after = tail.len() - i - END_LEN as usize - u16_at(record, 20) as usize;
    if after > 0 {
        structure(
            sink,
            None,
            &format!("{after} bytes follow the end of central directory record"),
        );
    }
    if u16_at(record, 4) != 0 || u16_at(record, 6) != 0 || u16_at(record, 8) != u16_at(record, 10) {
        structure(sink, None, "the archive claims to span several disks");
    }
    let count16 = u64::from(u16_at(record, 10));
    let size32 = u64::from(u32_at(record, 12));
    let offset32 = u64::from(u32_at(record, 16));

    let locator = if end_pos >= LOCATOR_LEN {
        read_at(src, end_pos - LOCATOR_LEN, LOCATOR_LEN)?.filter(|l| u32_at(l, 0) == LOCATOR_SIG)
    } else {
        None
    };
    let (end, directory_end) = match locator {
        None => {
            if count16 == MAX16 || size32 == MAX32 || offset32 == MAX32 {
                structure(
                    sink,
                    None,
                    "the end record's fields are saturated but there is no ZIP64 end record",
                );
            }
            let end = End {
                count: count16,
                cd_offset: offset32,
                cd_size: size32,
            };
            (end, end_pos)
        }
        Some(locator) => {
            let at = u64_at(&locator, 8);
            if at.checked_add(END64_LEN) != Some(end_pos - LOCATOR_LEN) {
                structure(
                    sink,
                    None,
                    "the ZIP64 end record is not right before its locator",
                );
            }
            let Some(record64) = read_at(src, at, END64_LEN)?.filter(|r| u32_at(r, 0) == END64_SIG)
            else {
                structure(
                    sink,
                    None,
                    "the ZIP64 locator points to no ZIP64 end record",
                );
                return Ok(None);
            };
            let end = End {
                count: u64_at(&record64, 32),
                cd_size: u64_at(&record64, 40),
                cd_offset: u64_at(&record64, 48),
            };
            if u64_at(&record64, 24) != end.count {
                structure(
                    sink,
                    None,
                    "the ZIP64 end record claims to span several disks",
                );
            }
            let needed = end.count >= MAX16 || end.cd_offset >= MAX32 || end.cd_size >= MAX32;
            if !needed {
                structure(
                    sink,
                    None,
                    "a ZIP64 end record in an archive that needs none",
                );
            }
            if count16 != end.count.min(MAX16)
                || size32 != end.cd_size.min(MAX32)
                || offset32 != end.cd_offset.min(MAX32)
            {
                structure(
                    sink,
                    None,
                    "the end record and the ZIP64 end record disagree",
                );
            }
            (end, at)
        }
    };
    match end.cd_offset.checked_add(end.cd_size) {
        Some(cd_end) if cd_end == directory_end => {}
        Some(cd_end) if cd_end < directory_end => structure(
            sink,
            None,
            &format!(
                "{} bytes lie between the central directory and the end records",
                directory_end - cd_end
            ),
        ),
        _ => {
            structure(
                sink,
                None,
                "the central directory overlaps the end records or lies past them",
            );
            return Ok(None);
        }
    }
    Ok(Some(end))
}

/// Parses central records until the directory ends or stops making sense.
fn parse_central(cd: &[u8], sink: &mut Sink) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut seen = SeenNames::default();
    let mut pos = 0;
    while pos < cd.len() {
        let record = &cd[pos..];
        if record.len() < 46 || u32_at(record, 0) != CENTRAL_SIG {
            structure(
                sink,
                None,
                &format!(
                    "central directory record {} is malformed",
                    entries.len() + 1
                ),
            );
            break;
        }
        let name_len = u16_at(record, 28) as usize;
        let extra_len = u16_at(record, 30) as usize;
        let comment_len = u16_at(record, 32) as usize;
        let total = 46 + name_len + extra_len + comment_len;
        if record.len() < total {
            structure(
                sink,
                None,
                &format!(
                    "central directory record {} runs past the directory",
                    entries.len() + 1
                ),
            );
            break;
        }
        let flags = u16_at(record, 8);
        let name_bytes = &record[46..46 + name_len];
        let name = check_name(name_bytes, flags & FLAG_UTF8 != 0, &mut seen, sink);
        let extra = &record[46 + name_len..46 + name_len + extra_len];
        let mut entry = Entry {
            name,
            method: u16_at(record, 10),
            crc32: u32_at(record, 16),
            compressed: u64::from(u32_at(record, 20)),
            uncompressed: u64::from(u32_at(record, 24)),
            dos_time: (u16_at(record, 12), u16_at(record, 14)),
            local_offset: u64::from(u32_at(record, 42)),
            data_offset: 0,
            readable: true,
        };
        apply_central_zip64(&mut entry, extra, sink);
        if u16_at(record, 34) != 0 {
            structure(
                sink,
                Some(&entry.name),
                "the entry claims to start on another disk",
            );
        }
        if flags & FLAG_ENCRYPTED != 0 {
            structure(sink, Some(&entry.name), "the entry is encrypted");
            entry.readable = false;
        }
        if flags & FLAG_DATA_DESCRIPTOR != 0 {
            structure(sink, Some(&entry.name), "the entry uses a data descriptor");
        }
        if entry.method != 0 && entry.method != 8 {
            let message = format!(
                "compression method {} is neither stored nor deflate",
                entry.method
            );
            structure(sink, Some(&entry.name), &message);
            entry.readable = false;
        }
        entries.push(entry);
        pos += total;
    }
    entries
}

/// Reads the central ZIP64 extra field: the sizes and offset it holds are
/// those whose 32-bit fields are saturated, in that order. Also checks
/// ZIP64 is used only where needed.
fn apply_central_zip64(entry: &mut Entry, extra: &[u8], sink: &mut Sink) {
    let field = zip64_field(extra);
    let wants = [
        entry.uncompressed == MAX32,
        entry.compressed == MAX32,
        entry.local_offset == MAX32,
    ];
    let wanted = wants.iter().filter(|w| **w).count();
    let Some(field) = field else {
        if wanted > 0 {
            structure(
                sink,
                Some(&entry.name),
                "saturated size or offset fields but no ZIP64 extra field",
            );
        }
        return;
    };
    if field.len() < wanted * 8 {
        structure(
            sink,
            Some(&entry.name),
            "the ZIP64 extra field is too short",
        );
        entry.readable = false;
        return;
    }
    let mut values = field
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()));
    if wants[0] {
        entry.uncompressed = values.next().unwrap_or_default();
    }
    if wants[1] {
        entry.compressed = values.next().unwrap_or_default();
    }
    if wants[2] {
        entry.local_offset = values.next().unwrap_or_default();
    }
    // A streamed deflated entry is begun before its compressed size is
    // known, so ZIP64 sizes are justified when the worst case crosses 4 GiB.
    let bound = if entry.method == 8 {
        crate::archive::deflate::max_deflated_size(entry.uncompressed)
    } else {
        entry.compressed
    };
    let sizes_needed = entry.uncompressed >= MAX32 || entry.compressed >= MAX32 || bound >= MAX32;
    if wanted == 0
        || ((wants[0] || wants[1]) && !sizes_needed)
        || (wants[2] && entry.local_offset < MAX32)
    {
        structure(
            sink,
            Some(&entry.name),
            "a ZIP64 extra field on an entry that needs none",
        );
    }
}

/// The data of the ZIP64 extended-information extra field, if present.
fn zip64_field(extra: &[u8]) -> Option<&[u8]> {
    let mut pos = 0;
    while pos + 4 <= extra.len() {
        let id = u16_at(extra, pos);
        let size = u16_at(extra, pos + 2) as usize;
        let data = extra.get(pos + 4..pos + 4 + size)?;
        if id == 1 {
            return Some(data);
        }
        pos += 4 + size;
    }
    None
}

/// Checks each local header against its central record, and that entries
/// follow each other without gaps up to the central directory.
fn check_locals(
    src: &mut dyn Source,
    entries: &mut [Entry],
    cd_offset: u64,
    sink: &mut Sink,
) -> Result<()> {
    let mut expected = Some(0u64);
    for entry in entries.iter_mut() {
        match expected {
            Some(at) if entry.local_offset > at => {
                let message = format!("{} bytes of gap before the entry", entry.local_offset - at);
                structure(sink, Some(&entry.name), &message);
            }
            Some(at) if entry.local_offset < at => {
                structure(
                    sink,
                    Some(&entry.name),
                    "the entry overlaps the one before it",
                );
            }
            _ => {}
        }
        expected = local_header(src, entry, cd_offset, sink)?;
        if expected.is_none() {
            entry.readable = false;
        }
    }
    match expected {
        Some(at) if at < cd_offset => structure(
            sink,
            None,
            &format!(
                "{} bytes of gap before the central directory",
                cd_offset - at
            ),
        ),
        _ => {}
    }
    Ok(())
}

/// Checks one local header; returns where the entry's data ends, or `None`
/// when the header is unusable.
fn local_header(
    src: &mut dyn Source,
    entry: &mut Entry,
    cd_offset: u64,
    sink: &mut Sink,
) -> Result<Option<u64>> {
    let name = entry.name.clone();
    let fail = |sink: &mut Sink, message: &str| {
        structure(sink, Some(&name), message);
        Ok(None)
    };
    if entry.local_offset.saturating_add(30) > cd_offset {
        return fail(sink, "the local header lies past the entries' area");
    }
    let Some(fixed) = read_at(src, entry.local_offset, 30)? else {
        return fail(sink, "the local header lies past the end of the file");
    };
    if u32_at(&fixed, 0) != LOCAL_SIG {
        return fail(sink, "no local header at the entry's offset");
    }
    let variable = u64::from(u16_at(&fixed, 26)) + u64::from(u16_at(&fixed, 28));
    let Some(rest) = read_at(src, entry.local_offset + 30, variable)? else {
        return fail(sink, "the local header lies past the end of the file");
    };
    let (local_name, extra) = rest.split_at(u16_at(&fixed, 26) as usize);
    let mut problems = Vec::new();
    if local_name != entry.name.as_bytes() && String::from_utf8_lossy(local_name) != entry.name {
        problems.push("the local header's name differs from the central directory's");
    }
    if u16_at(&fixed, 8) != entry.method || u32_at(&fixed, 14) != entry.crc32 {
        problems.push("the local header's method or CRC differs from the central directory's");
    }
    if u16_at(&fixed, 6) & FLAG_DATA_DESCRIPTOR != 0 {
        problems.push("the local header announces a data descriptor");
    }
    let mut compressed = u64::from(u32_at(&fixed, 18));
    let mut uncompressed = u64::from(u32_at(&fixed, 22));
    if compressed == MAX32 || uncompressed == MAX32 {
        match zip64_field(extra).filter(|f| f.len() >= 16) {
            Some(field) => {
                uncompressed = u64_at(field, 0);
                compressed = u64_at(field, 8);
            }
            None => problems.push("saturated local sizes but no ZIP64 extra field"),
        }
    }
    if (compressed, uncompressed) != (entry.compressed, entry.uncompressed) {
        problems.push("the local header's sizes differ from the central directory's");
    }
    for problem in problems {
        structure(sink, Some(&entry.name), problem);
    }
    entry.data_offset = entry.local_offset + 30 + variable;
    match entry.data_offset.checked_add(entry.compressed) {
        Some(end) if end <= cd_offset => Ok(Some(end)),
        _ => fail(
            sink,
            "the entry's data runs past the entries' area (a truncated file?)",
        ),
    }
}

/// Reads an entry's data in full into `out`, checking size and CRC-32.
/// Returns true when the data is intact.
pub(crate) fn read_entry(
    src: &mut dyn Source,
    entry: &Entry,
    out: &mut dyn Write,
    sink: &mut Sink,
) -> Result<bool> {
    src.seek(SeekFrom::Start(entry.data_offset))
        .map_err(VerifyError::Read)?;
    let source_error = RefCell::new(None);
    let raw = Tracked {
        inner: (&mut *src).take(entry.compressed),
        error: &source_error,
    };
    let mut reader: Box<dyn Read + '_> = if entry.method == 8 {
        Box::new(flate2::read::DeflateDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    // One byte more than declared is enough to tell the data is too long.
    let mut limited = (&mut reader).take(entry.uncompressed.saturating_add(1));
    let mut crc = crc32fast::Hasher::new();
    let mut count = 0u64;
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        let n = match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if let Some(source) = source_error.borrow_mut().take() {
                    return Err(VerifyError::Read(source));
                }
                let message = format!("the data does not decompress: {e}");
                sink.push(
                    VerifyProblemKind::Integrity,
                    Some(&entry.name),
                    None,
                    message,
                );
                return Ok(false);
            }
        };
        crc.update(&buffer[..n]);
        count += n as u64;
        out.write_all(&buffer[..n]).map_err(VerifyError::Read)?;
    }
    let mut intact = true;
    if count != entry.uncompressed {
        let message = format!(
            "the data holds {}{count} bytes, the headers say {}",
            if count > entry.uncompressed {
                "more than "
            } else {
                ""
            },
            entry.uncompressed
        );
        sink.push(
            VerifyProblemKind::Integrity,
            Some(&entry.name),
            None,
            message,
        );
        intact = false;
    }
    let actual = crc.finalize();
    if intact && actual != entry.crc32 {
        let message = format!(
            "the data's CRC-32 is {actual:08x}, the headers say {:08x}",
            entry.crc32
        );
        sink.push(
            VerifyProblemKind::Integrity,
            Some(&entry.name),
            None,
            message,
        );
        intact = false;
    }
    Ok(intact)
}

/// Remembers an error of the underlying source, so that it is told apart
/// from the decoder's complaints about the data.
struct Tracked<'e, R> {
    inner: R,
    error: &'e RefCell<Option<io::Error>>,
}

impl<R: Read> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let copy = io::Error::new(e.kind(), e.to_string());
            *self.error.borrow_mut() = Some(e);
            copy
        })
    }
}

/// Reads `len` bytes at `offset`; `None` when the file ends first.
fn read_at(src: &mut dyn Source, offset: u64, len: u64) -> Result<Option<Vec<u8>>> {
    src.seek(SeekFrom::Start(offset))
        .map_err(VerifyError::Read)?;
    let mut buf = Vec::new();
    (&mut *src)
        .take(len)
        .read_to_end(&mut buf)
        .map_err(VerifyError::Read)?;
    Ok((buf.len() as u64 == len).then_some(buf))
}

fn structure(sink: &mut Sink, entry: Option<&str>, message: &str) {
    sink.push(
        VerifyProblemKind::Structure,
        entry,
        None,
        message.to_owned(),
    );
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}
