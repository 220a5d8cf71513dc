//! A minimal, deterministic ZIP writer over a seekable sink.
//!
//! Why not the `zip` crate's writer: the contract needs properties it does
//! not let us pin down together — entries written from data deflated in
//! parallel (known CRC and sizes, no re-compression), ZIP64 records exactly
//! when a limit is crossed, the UTF-8 flag on exactly the non-ASCII names,
//! fixed entry times, and an entry abandoned without finishing the archive.
//! The format subset is small: local headers with sizes and CRC (patched in
//! place for streamed entries, never data descriptors), a central directory,
//! and the end records. The `zip` crate is still used to read archives back.

use std::io::{self, Seek, SeekFrom, Write};

/// Compression method of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Stored,
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// The largest value the 32-bit fields can hold; it doubles as the marker
/// "see the ZIP64 extra field", so it may not be used as a value itself.
const MAX32: u64 = 0xFFFF_FFFF;
const MAX16: u64 = 0xFFFF;
const LOCAL_HEADER_FIXED: u64 = 30;
const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Unix, so extractors apply the permissions below.
const MADE_BY_UNIX: u16 = 3 << 8;
/// A regular file, rw-r--r--.
const EXTERNAL_ATTRIBUTES: u32 = 0o100644 << 16;

/// Sizes and checksum of an entry's data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryData {
    pub(crate) crc32: u32,
    pub(crate) compressed: u64,
    pub(crate) uncompressed: u64,
}

struct CentralRecord {
    name: String,
    method: Method,
    data: EntryData,
    offset: u64,
    /// The local header carries ZIP64 sizes, so the central one does too.
    zip64_sizes: bool,
}

/// An entry begun with [`ZipWriter::begin_streamed`], to be completed by
/// [`ZipWriter::end_streamed`] once its data is written.
pub(crate) struct OpenEntry {
    name: String,
    method: Method,
    offset: u64,
    zip64_sizes: bool,
    data_start: u64,
}

/// Writes entries one after another; [`ZipWriter::finish`] writes the
/// central directory. Dropping the writer unfinished leaves an incomplete
/// archive, which callers discard.
pub(crate) struct ZipWriter<W: Write + Seek> {
    out: W,
    position: u64,
    entries: Vec<CentralRecord>,
    dos_time: u16,
    dos_date: u16,
}

impl<W: Write + Seek> ZipWriter<W> {
    /// A writer whose entries all carry the given MS-DOS time and date.
    /// `out` must be positioned at its start.
    pub(crate) fn new(out: W, (dos_time, dos_date): (u16, u16)) -> ZipWriter<W> {
        ZipWriter {
            out,
            position: 0,
            entries: Vec::new(),
            dos_time,
            dos_date,
        }
    }

    /// Writes an entry whose data is already compressed, given in pieces.
    pub(crate) fn add_prepared(
        &mut self,
        name: &str,
        method: Method,
        data: EntryData,
        pieces: &[Vec<u8>],
    ) -> io::Result<()> {
        self.add_with(name, method, data, |zip| {
            pieces.iter().try_for_each(|piece| zip.write_raw(piece))
        })
    }

    /// Writes an entry whose data is already compressed, copied from
    /// `data_source` (a spooled view of a build past its memory budget),
    /// which must hold exactly `data.compressed` bytes.
    pub(crate) fn add_copied(
        &mut self,
        name: &str,
        method: Method,
        data: EntryData,
        data_source: &mut dyn io::Read,
    ) -> io::Result<()> {
        self.add_with(name, method, data, |zip| {
            let copied = io::copy(data_source, &mut zip.out)?;
            zip.position += copied;
            if copied == data.compressed {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "entry {name} has {copied} bytes, not the {} spooled",
                    data.compressed
                )))
            }
        })
    }

    /// The local header of an entry whose sizes are known, its data (which
    /// `write_data` writes), and its central record.
    fn add_with(
        &mut self,
        name: &str,
        method: Method,
        data: EntryData,
        write_data: impl FnOnce(&mut Self) -> io::Result<()>,
    ) -> io::Result<()> {
        let zip64_sizes = data.uncompressed >= MAX32 || data.compressed >= MAX32;
        let offset = self.position;
        self.write_local_header(name, method, &data, zip64_sizes)?;
        write_data(self)?;
        self.entries.push(CentralRecord {
            name: name.to_owned(),
            method,
            data,
            offset,
            zip64_sizes,
        });
        Ok(())
    }

    /// Starts an entry whose data will be streamed through [`Self::data_sink`].
    /// `max_compressed` bounds the data's size, to choose ZIP64 up front.
    pub(crate) fn begin_streamed(
        &mut self,
        name: &str,
        method: Method,
        uncompressed: u64,
        max_compressed: u64,
    ) -> io::Result<OpenEntry> {
        let zip64_sizes = uncompressed >= MAX32 || max_compressed >= MAX32;
        let offset = self.position;
        let placeholder = EntryData {
            crc32: 0,
            compressed: 0,
            uncompressed,
        };
        self.write_local_header(name, method, &placeholder, zip64_sizes)?;
        Ok(OpenEntry {
            name: name.to_owned(),
            method,
            offset,
            zip64_sizes,
            data_start: self.position,
        })
    }

    /// Writes raw entry data (already compressed when the entry is deflated).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    /// Completes a streamed entry: patches the local header's CRC and sizes.
    pub(crate) fn end_streamed(
        &mut self,
        entry: OpenEntry,
        crc32: u32,
        uncompressed: u64,
    ) -> io::Result<()> {
        let compressed = self.position - entry.data_start;
        if !entry.zip64_sizes && (compressed >= MAX32 || uncompressed >= MAX32) {
            return Err(io::Error::other(format!(
                "entry {} outgrew the size it was begun with",
                entry.name
            )));
        }
        let data = EntryData {
            crc32,
            compressed,
            uncompressed,
        };
        self.out.seek(SeekFrom::Start(entry.offset + 14))?;
        let mut patch = Vec::with_capacity(12);
        patch.extend_from_slice(&crc32.to_le_bytes());
        if entry.zip64_sizes {
            patch.extend_from_slice(&u32::MAX.to_le_bytes());
            patch.extend_from_slice(&u32::MAX.to_le_bytes());
            self.out.write_all(&patch)?;
            // The ZIP64 extra field follows the name: id, size, then sizes.
            let extra = entry.offset + LOCAL_HEADER_FIXED + entry.name.len() as u64 + 4;
            self.out.seek(SeekFrom::Start(extra))?;
            let mut sizes = Vec::with_capacity(16);
            sizes.extend_from_slice(&uncompressed.to_le_bytes());
            sizes.extend_from_slice(&compressed.to_le_bytes());
            self.out.write_all(&sizes)?;
        } else {
            patch.extend_from_slice(&(compressed as u32).to_le_bytes());
            patch.extend_from_slice(&(uncompressed as u32).to_le_bytes());
            self.out.write_all(&patch)?;
        }
        self.out.seek(SeekFrom::Start(self.position))?;
        self.entries.push(CentralRecord {
            name: entry.name,
            method: entry.method,
            data,
            offset: entry.offset,
            zip64_sizes: entry.zip64_sizes,
        });
        Ok(())
    }

    fn write_local_header(
        &mut self,
        name: &str,
        method: Method,
        data: &EntryData,
        zip64_sizes: bool,
    ) -> io::Result<()> {
        let mut header = Vec::with_capacity(30 + name.len() + 20);
        put32(&mut header, 0x0403_4b50);
        put16(
            &mut header,
            if zip64_sizes {
                VERSION_ZIP64
            } else {
                VERSION_DEFAULT
            },
        );
        put16(&mut header, flags(name));
        put16(&mut header, method.code());
        put16(&mut header, self.dos_time);
        put16(&mut header, self.dos_date);
        put32(&mut header, data.crc32);
        if zip64_sizes {
            put32(&mut header, u32::MAX);
            put32(&mut header, u32::MAX);
        } else {
            put32(&mut header, data.compressed as u32);
            put32(&mut header, data.uncompressed as u32);
        }
        put16(&mut header, name.len() as u16);
        put16(&mut header, if zip64_sizes { 20 } else { 0 });
        header.extend_from_slice(name.as_bytes());
        if zip64_sizes {
            put16(&mut header, 0x0001);
            put16(&mut header, 16);
            put64(&mut header, data.uncompressed);
            put64(&mut header, data.compressed);
        }
        self.write_raw(&header)
    }

    /// Writes the central directory and end records, flushes, and returns
    /// the sink and the archive's size.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        let directory_start = self.position;
        let mut directory = Vec::with_capacity(self.entries.len() * 80);
        for entry in &self.entries {
            write_central_record(&mut directory, entry, self.dos_time, self.dos_date);
        }
        let directory_size = directory.len() as u64;
        let count = self.entries.len() as u64;
        let needs_zip64 = count >= MAX16 || directory_start >= MAX32 || directory_size >= MAX32;
        let mut end = Vec::with_capacity(100);
        if needs_zip64 {
            let record_offset = directory_start + directory_size;
            put32(&mut end, 0x0606_4b50);
            put64(&mut end, 44);
            put16(&mut end, MADE_BY_UNIX | VERSION_ZIP64);
            put16(&mut end, VERSION_ZIP64);
            put32(&mut end, 0);
            put32(&mut end, 0);
            put64(&mut end, count);
            put64(&mut end, count);
            put64(&mut end, directory_size);
            put64(&mut end, directory_start);
            put32(&mut end, 0x0706_4b50);
            put32(&mut end, 0);
            put64(&mut end, record_offset);
            put32(&mut end, 1);
        }
        put32(&mut end, 0x0605_4b50);
        put16(&mut end, 0);
        put16(&mut end, 0);
        put16(&mut end, count.min(MAX16) as u16);
        put16(&mut end, count.min(MAX16) as u16);
        put32(&mut end, directory_size.min(MAX32) as u32);
        put32(&mut end, directory_start.min(MAX32) as u32);
        put16(&mut end, 0);
        self.write_raw(&directory)?;
        self.write_raw(&end)?;
        self.out.flush()?;
        Ok((self.out, self.position))
    }
}

fn write_central_record(out: &mut Vec<u8>, entry: &CentralRecord, dos_time: u16, dos_date: u16) {
    let data = &entry.data;
    let big_sizes = entry.zip64_sizes;
    let big_offset = entry.offset >= MAX32;
    let mut extra = Vec::new();
    if big_sizes || big_offset {
        let mut fields = Vec::new();
        if big_sizes {
            put64(&mut fields, data.uncompressed);
            put64(&mut fields, data.compressed);
        }
        if big_offset {
            put64(&mut fields, entry.offset);
        }
        put16(&mut extra, 0x0001);
        put16(&mut extra, fields.len() as u16);
        extra.extend_from_slice(&fields);
    }
    let version = if extra.is_empty() {
        VERSION_DEFAULT
    } else {
        VERSION_ZIP64
    };
    put32(out, 0x0201_4b50);
    put16(out, MADE_BY_UNIX | version);
    put16(out, version);
    put16(out, flags(&entry.name));
    put16(out, entry.method.code());
    put16(out, dos_time);
    put16(out, dos_date);
    put32(out, data.crc32);
    if big_sizes {
        put32(out, u32::MAX);
        put32(out, u32::MAX);
    } else {
        put32(out, data.compressed as u32);
        put32(out, data.uncompressed as u32);
    }
    put16(out, entry.name.len() as u16);
    put16(out, extra.len() as u16);
    put16(out, 0); // comment length
    put16(out, 0); // disk number
    put16(out, 0); // internal attributes
    put32(out, EXTERNAL_ATTRIBUTES);
    put32(
        out,
        if big_offset {
            u32::MAX
        } else {
            entry.offset as u32
        },
    );
    out.extend_from_slice(entry.name.as_bytes());
    out.extend_from_slice(&extra);
}

/// General-purpose flags: bit 11 (names are UTF-8) on exactly the names
/// that need it, so ASCII names read the same in every tool.
fn flags(name: &str) -> u16 {
    if name.is_ascii() {
        0
    } else {
        1 << 11
    }
}

fn put16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    fn read_back(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
        let mut archive = ::zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).unwrap();
                let mut data = Vec::new();
                file.read_to_end(&mut data).unwrap();
                (file.name().to_owned(), data)
            })
            .collect()
    }

    fn stored(data: &[u8]) -> EntryData {
        EntryData {
            crc32: crc32fast::hash(data),
            compressed: data.len() as u64,
            uncompressed: data.len() as u64,
        }
    }

    #[test]
    fn prepared_and_streamed_entries_read_back() {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()), (0, 33));
        zip.add_prepared(
            "a.txt",
            Method::Stored,
            stored(b"alpha"),
            &[b"al".to_vec(), b"pha".to_vec()],
        )
        .unwrap();
        let entry = zip
            .begin_streamed("dir/ü.bin", Method::Stored, 4, 4)
            .unwrap();
        zip.write_raw(b"beta").unwrap();
        zip.end_streamed(entry, crc32fast::hash(b"beta"), 4)
            .unwrap();
        let (out, size) = zip.finish().unwrap();
        let bytes = out.into_inner();
        assert_eq!(size, bytes.len() as u64);
        let entries = read_back(bytes);
        assert_eq!(entries[0], ("a.txt".to_owned(), b"alpha".to_vec()));
        assert_eq!(entries[1], ("dir/ü.bin".to_owned(), b"beta".to_vec()));
    }

    #[test]
    fn streamed_entry_with_zip64_sizes_reads_back() {
        // Pretending the data could pass 4 GiB makes the entry carry ZIP64
        // sizes, which exercises the patching of the local extra field.
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()), (0, 33));
        let entry = zip
            .begin_streamed("big.bin", Method::Stored, 5, MAX32)
            .unwrap();
        zip.write_raw(b"gamma").unwrap();
        zip.end_streamed(entry, crc32fast::hash(b"gamma"), 5)
            .unwrap();
        let (out, _) = zip.finish().unwrap();
        let bytes = out.into_inner();
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), VERSION_ZIP64);
        assert_eq!(
            read_back(bytes),
            vec![("big.bin".to_owned(), b"gamma".to_vec())]
        );
    }

    #[test]
    fn an_empty_archive_is_only_the_end_record() {
        let zip = ZipWriter::new(Cursor::new(Vec::new()), (0, 33));
        let (out, size) = zip.finish().unwrap();
        assert_eq!(size, 22);
        assert!(read_back(out.into_inner()).is_empty());
    }

    #[test]
    fn a_streamed_entry_that_outgrows_plain_sizes_is_an_error() {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()), (0, 33));
        let entry = zip.begin_streamed("x", Method::Stored, 1, 1).unwrap();
        zip.write_raw(b"x").unwrap();
        assert!(zip.end_streamed(entry, 0, MAX32).is_err());
    }

    #[test]
    fn utf8_flag_only_for_non_ascii_names() {
        assert_eq!(flags("plain.txt"), 0);
        assert_eq!(flags("Größe.txt"), 1 << 11);
    }
}
