//! Upload entries: bytes streamed from the blob source into `files/`,
//! counted and hashed on the way, so a wrong size or SHA-256 abandons the
//! archive.
//!
//! Small uploads are read whole, checked and compressed in parallel batches
//! of bounded size, then written in name order without seeking. Large ones
//! are streamed in fixed batches of chunks, so memory stays flat whatever
//! their size.

use std::io::{self, Read, Seek, Write};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::deflate::{self, CHUNK};
use super::zip::{EntryData, Method, ZipWriter};
use super::Context;
use crate::blob::RefusedBlob;
use crate::error::{Error, Problem, ProblemKind, Problems};
use crate::model::Upload;
use crate::options::ProgressEvent;
use crate::pivot::FileEntry;

/// Uploads up to this size are prepared whole in memory.
const SMALL_UPLOAD: u64 = 4 << 20;
/// Bytes of small uploads prepared per parallel batch.
const SMALL_BATCH_BYTES: u64 = 8 << 20;
/// Bytes read per step when streaming a large upload: four deflate chunks
/// (so a deflated step keeps both workers busy), and for a stored one
/// large enough that the hand-off between the hashing and the writing
/// worker is rare.
const STREAM_BUFFER: usize = 4 * CHUNK;

/// File types that are compressed already: deflating them again costs time
/// and saves nothing, so they are stored.
const COMPRESSED_TYPES: [&str; 16] = [
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/heic",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "application/zip",
    "application/gzip",
    "application/x-7z-compressed",
    "application/pdf",
];
const COMPRESSED_EXTENSIONS: [&str; 26] = [
    "jpg", "jpeg", "png", "gif", "webp", "avif", "heic", "mp3", "m4a", "aac", "ogg", "opus",
    "flac", "mp4", "m4v", "mov", "webm", "mkv", "zip", "gz", "tgz", "7z", "bz2", "xz", "zst",
    "pdf",
];

/// Whether an upload is stored rather than deflated.
pub(crate) fn is_precompressed(upload: &Upload) -> bool {
    let by_type = upload.content_type.as_deref().is_some_and(|t| {
        let t = t
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        COMPRESSED_TYPES.contains(&t.as_str())
            || t == "application/x-gzip"
            || t == "application/x-zip-compressed"
    });
    let by_extension = upload
        .file_name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| COMPRESSED_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
    by_type || by_extension
}

/// Refuses, before anything is written, uploads whose bytes are missing or
/// of the wrong size, as far as the blob source can tell without reading.
pub(crate) fn precheck(files: &[FileEntry<'_>], cx: &Context<'_>) -> Result<(), Error> {
    let found: Vec<Problem> = files
        .par_iter()
        .filter_map(|file| match cx.blobs.len(file.upload) {
            Ok(None) => None,
            Ok(Some(len)) if len == file.upload.size_bytes => None,
            Ok(Some(len)) => Some(size_problem(file, len, cx)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Some(missing_problem(file, cx)),
            Err(err) => RefusedBlob::from_io(&err).map(|r| refused_problem(file, r, cx)),
            // Any other error is reported, with its cause, when the blob is opened.
        })
        .collect();
    let mut problems = Problems::default();
    found.into_iter().for_each(|p| problems.push(p));
    problems.into_result()
}

/// What the writer does next: a run of small uploads prepared together, or
/// one large upload streamed on its own.
enum Unit<'f, 'r> {
    Small(&'f [FileEntry<'r>]),
    Large(&'f FileEntry<'r>),
}

/// Cuts the name-ordered files into units, independently of thread count.
fn units<'f, 'r>(files: &'f [FileEntry<'r>]) -> Vec<Unit<'f, 'r>> {
    let mut units = Vec::new();
    let mut rest = files;
    while let Some(first) = rest.first() {
        if first.upload.size_bytes > SMALL_UPLOAD {
            units.push(Unit::Large(first));
            rest = &rest[1..];
            continue;
        }
        let mut len = 0;
        let mut bytes = 0;
        while len < rest.len()
            && rest[len].upload.size_bytes <= SMALL_UPLOAD
            && bytes < SMALL_BATCH_BYTES
        {
            bytes += rest[len].upload.size_bytes;
            len += 1;
        }
        let (batch, after) = rest.split_at(len);
        units.push(Unit::Small(batch));
        rest = after;
    }
    units
}

type PreparedBatch = Vec<Result<Prepared, Error>>;

fn prepare_batch(batch: &[FileEntry<'_>], cx: &Context<'_>) -> PreparedBatch {
    batch
        .par_iter()
        .map(|file| prepare_small(file, cx))
        .collect()
}

/// Writes every upload entry, in name order. While one unit is written,
/// the next run of small uploads is already read, checked and compressed
/// on the other workers, so the writer rarely waits and the workers rarely
/// idle; at most two runs are held at once.
pub(crate) fn write_all<W: Write + Seek + Send>(
    zip: &mut ZipWriter<W>,
    files: &[FileEntry<'_>],
    cx: &Context<'_>,
) -> Result<(), Error> {
    let units = units(files);
    let mut ready: Option<PreparedBatch> = None;
    let mut buffers = StreamBuffers::default();
    // A large upload opened, and its first buffer read, while the one
    // before it was finishing.
    let mut ahead: Option<Opened<'_>> = None;
    for (i, unit) in units.iter().enumerate() {
        cx.config.check_cancelled()?;
        let current = match unit {
            Unit::Small(batch) => Some(ready.take().unwrap_or_else(|| prepare_batch(batch, cx))),
            Unit::Large(_) => None,
        };
        let (next_batch, next_large) = match units.get(i + 1) {
            Some(Unit::Small(batch)) => (Some(*batch), None),
            Some(Unit::Large(file)) => (None, Some(*file)),
            None => (None, None),
        };
        let (prepared, written) = rayon::join(
            || next_batch.map(|batch| prepare_batch(batch, cx)),
            || match (unit, current) {
                (Unit::Small(batch), Some(prepared)) => {
                    write_batch(zip, batch, prepared, cx).map(|()| None)
                }
                (Unit::Large(file), _) => {
                    let opened = ahead.take();
                    write_streamed(zip, file, cx, &mut buffers, opened, next_large)
                }
                (Unit::Small(_), None) => unreachable!("small units are prepared above"),
            },
        );
        ahead = written?;
        ready = prepared;
    }
    Ok(())
}

fn write_batch<W: Write + Seek>(
    zip: &mut ZipWriter<W>,
    batch: &[FileEntry<'_>],
    prepared: PreparedBatch,
    cx: &Context<'_>,
) -> Result<(), Error> {
    for (file, entry) in batch.iter().zip(prepared) {
        let entry = entry?;
        zip.add_prepared(&file.name, entry.method, entry.data, &entry.pieces)
            .map_err(Error::Write)?;
        cx.config.report(ProgressEvent::Advanced {
            bytes: entry.data.uncompressed,
        });
    }
    Ok(())
}

struct Prepared {
    method: Method,
    data: EntryData,
    pieces: Vec<Vec<u8>>,
}

fn prepare_small(file: &FileEntry<'_>, cx: &Context<'_>) -> Result<Prepared, Error> {
    let mut reader = open(file, cx)?;
    let mut bytes = Vec::with_capacity(file.upload.size_bytes as usize);
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| blob_error(file, e))?;
    reader.check(file, cx)?;
    let uncompressed = bytes.len() as u64;
    if is_stored(file, cx) {
        let data = EntryData {
            crc32: crc32fast::hash(&bytes),
            compressed: uncompressed,
            uncompressed,
        };
        return Ok(Prepared {
            method: Method::Stored,
            data,
            pieces: vec![bytes],
        });
    }
    let deflated = deflate::deflate(&bytes, cx.config.level, true);
    let data = EntryData {
        crc32: deflated.crc.finalize(),
        compressed: deflated.compressed,
        uncompressed,
    };
    Ok(Prepared {
        method: Method::Deflated,
        data,
        pieces: deflated.pieces,
    })
}

/// Streams one large upload in steps of one buffer. Each step overlaps
/// reading the next buffer with handling the current one: deflating it in
/// parallel chunks, or, when stored, hashing it (SHA-256) while another
/// worker computes its CRC-32 and writes it. Memory is two buffers,
/// whatever the upload's size. The last step reads, instead, the first
/// buffer of `following` (the next upload, when it is large too) and
/// returns it opened, so the writer never waits for a first read.
fn write_streamed<'b, W: Write + Seek + Send>(
    zip: &mut ZipWriter<W>,
    file: &FileEntry<'_>,
    cx: &Context<'b>,
    buffers: &mut StreamBuffers,
    opened: Option<Opened<'b>>,
    following: Option<&FileEntry<'_>>,
) -> Result<Option<Opened<'b>>, Error> {
    let size = file.upload.size_bytes;
    let stored = is_stored(file, cx);
    let (method, bound) = if stored {
        (Method::Stored, size)
    } else {
        (Method::Deflated, deflate::max_deflated_size(size))
    };
    let mut current_is_b = buffers.first_is_b;
    let (mut current, mut next) = buffers.two();
    let Opened {
        mut reader,
        mut sha,
        mut filled,
        ..
    } = match opened.filter(|o| o.index == file.index) {
        Some(opened) => opened,
        None => open_streamed(file, cx, current)?,
    };
    let entry = zip
        .begin_streamed(&file.name, method, size, bound)
        .map_err(Error::Write)?;
    let mut crc = crc32fast::Hasher::new();
    let mut ahead = None;
    loop {
        cx.config.check_cancelled()?;
        let at_end = filled < STREAM_BUFFER;
        let data = &current[..filled];
        let (read, written) = rayon::join(
            || {
                if at_end {
                    // A failure here is met again, in its place, when the
                    // next upload's turn comes.
                    ahead = following.and_then(|next_file| open_streamed(next_file, cx, next).ok());
                    Ok(0)
                } else {
                    read_full(&mut reader, next)
                }
            },
            || -> io::Result<()> {
                if stored {
                    let (_, written) = rayon::join(
                        || {
                            if let Some(sha) = &mut sha {
                                sha.update(data);
                            }
                        },
                        || {
                            crc.update(data);
                            zip.write_raw(data)
                        },
                    );
                    written
                } else {
                    let deflated = deflate::deflate(data, cx.config.level, at_end);
                    crc.combine(&deflated.crc);
                    deflated
                        .pieces
                        .iter()
                        .try_for_each(|piece| zip.write_raw(piece))
                }
            },
        );
        written.map_err(Error::Write)?;
        cx.config.report(ProgressEvent::Advanced {
            bytes: filled as u64,
        });
        if at_end {
            break;
        }
        filled = read.map_err(|e| blob_error(file, e))?;
        std::mem::swap(&mut current, &mut next);
        current_is_b = !current_is_b;
    }
    // The next upload's first buffer is in `next`.
    buffers.first_is_b = !current_is_b;
    let uncompressed = reader.count;
    if stored {
        // Hashed beside the reader: hand the digest back for the check. A
        // deflated upload's reader hashed it itself and keeps its own.
        reader.sha = sha;
    }
    reader.check(file, cx)?;
    zip.end_streamed(entry, crc.finalize(), uncompressed)
        .map_err(Error::Write)?;
    Ok(ahead)
}

/// Whether an upload is stored rather than deflated in this build.
fn is_stored(file: &FileEntry<'_>, cx: &Context<'_>) -> bool {
    is_precompressed(file.upload) || cx.config.level == 0
}

/// A large upload opened and its first buffer read.
struct Opened<'b> {
    /// The upload's position in `uploads.jsonl`, to match it to its turn.
    index: usize,
    reader: CheckedReader<'b>,
    /// A stored upload's SHA-256, taken out of the reader: it is computed
    /// beside the reading instead, so that both run at once.
    sha: Option<Sha256>,
    /// Bytes of the first buffer.
    filled: usize,
}

fn open_streamed<'b>(
    file: &FileEntry<'_>,
    cx: &Context<'b>,
    buffer: &mut [u8],
) -> Result<Opened<'b>, Error> {
    let mut reader = open(file, cx)?;
    let sha = if is_stored(file, cx) {
        reader.sha.take()
    } else {
        None
    };
    let filled = read_full(&mut reader, buffer).map_err(|e| blob_error(file, e))?;
    Ok(Opened {
        index: file.index,
        reader,
        sha,
        filled,
    })
}

/// The two buffers large uploads are streamed through, kept from one
/// upload to the next: fresh ones were 8 MB to zero per upload, on the
/// writer's critical path.
#[derive(Default)]
struct StreamBuffers {
    a: Vec<u8>,
    b: Vec<u8>,
    /// Whether an upload's first buffer is `b` (read ahead into it).
    first_is_b: bool,
}

impl StreamBuffers {
    /// The buffer an upload starts in, then the other one.
    fn two(&mut self) -> (&mut [u8], &mut [u8]) {
        for buffer in [&mut self.a, &mut self.b] {
            buffer.resize(STREAM_BUFFER, 0);
        }
        if self.first_is_b {
            (&mut self.b[..], &mut self.a[..])
        } else {
            (&mut self.a[..], &mut self.b[..])
        }
    }
}

/// Reads until `buffer` is full or the reader is exhausted, so chunk
/// boundaries never depend on how the source splits its reads.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Counts and hashes the bytes read through it. Reads at most one byte more
/// than the record's size: enough to tell the blob is too long.
struct CheckedReader<'b> {
    inner: io::Take<Box<dyn Read + Send + 'b>>,
    sha: Option<Sha256>,
    count: u64,
}

impl Read for CheckedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

impl CheckedReader<'_> {
    fn check(self, file: &FileEntry<'_>, cx: &Context<'_>) -> Result<(), Error> {
        let upload = file.upload;
        if self.count != upload.size_bytes {
            let problem = if self.count > upload.size_bytes {
                upload_problem(
                    file,
                    cx,
                    "size_bytes",
                    format!(
                        "upload {:?} has more than {} bytes",
                        upload.file_key, upload.size_bytes
                    ),
                )
            } else {
                size_problem(file, self.count, cx)
            };
            return Err(Error::refuse_one(problem));
        }
        if let (Some(sha), Some(expected)) = (self.sha, upload.sha256) {
            let actual: [u8; 32] = sha.finalize().into();
            if actual != expected {
                let message = format!(
                    "upload {:?} has SHA-256 {}, the record says {}",
                    upload.file_key,
                    crate::hash::to_hex(&actual),
                    crate::hash::to_hex(&expected)
                );
                return Err(Error::refuse_one(upload_problem(
                    file, cx, "sha256", message,
                )));
            }
        }
        Ok(())
    }
}

fn open<'b>(file: &FileEntry<'_>, cx: &Context<'b>) -> Result<CheckedReader<'b>, Error> {
    match cx.blobs.open(file.upload) {
        Ok(reader) => Ok(CheckedReader {
            inner: reader.take(file.upload.size_bytes.saturating_add(1)),
            sha: file.upload.sha256.map(|_| Sha256::new()),
            count: 0,
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err(Error::refuse_one(missing_problem(file, cx)))
        }
        Err(err) => match RefusedBlob::from_io(&err) {
            Some(refused) => Err(Error::refuse_one(refused_problem(file, refused, cx))),
            None => Err(blob_error(file, err)),
        },
    }
}

/// Bytes the blob source will not read: blamed on the record's `path`
/// when it has one, else on its `file_key` (which names `uploads/<key>`).
fn refused_problem(file: &FileEntry<'_>, refused: &RefusedBlob, cx: &Context<'_>) -> Problem {
    let field = if file.upload.path.is_some() {
        "path"
    } else {
        "file_key"
    };
    let message = format!(
        "the bytes of upload {:?}: {}",
        file.upload.file_key, refused.reason
    );
    upload_problem(file, cx, field, message)
}

fn blob_error(file: &FileEntry<'_>, source: io::Error) -> Error {
    Error::Blob {
        file_key: file.upload.file_key.to_string(),
        source,
    }
}

fn upload_problem(file: &FileEntry<'_>, cx: &Context<'_>, field: &str, message: String) -> Problem {
    cx.origins.problem(
        ProblemKind::UploadBytes,
        crate::model::origin::RecordFile::Uploads,
        file.index,
        field,
        message,
    )
}

fn missing_problem(file: &FileEntry<'_>, cx: &Context<'_>) -> Problem {
    upload_problem(
        file,
        cx,
        "file_key",
        format!("the bytes of upload {:?} are missing", file.upload.file_key),
    )
}

fn size_problem(file: &FileEntry<'_>, actual: u64, cx: &Context<'_>) -> Problem {
    let message = format!(
        "upload {:?} has {actual} bytes, the record says {}",
        file.upload.file_key, file.upload.size_bytes
    );
    upload_problem(file, cx, "size_bytes", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(name: &str, content_type: Option<&str>) -> Upload {
        Upload {
            file_name: name.to_owned(),
            content_type: content_type.map(str::to_owned),
            ..Upload::default()
        }
    }

    #[test]
    fn compressed_types_are_stored_by_type_or_extension() {
        assert!(is_precompressed(&upload("a.bin", Some("image/JPEG"))));
        assert!(is_precompressed(&upload("clip.MP4", None)));
        assert!(!is_precompressed(&upload("notes.csv", Some("text/csv"))));
        assert!(!is_precompressed(&upload("data", None)));
    }

    #[test]
    fn read_full_fills_across_short_reads() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(3).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut buffer = [0u8; 10];
        assert_eq!(
            read_full(&mut Trickle(b"abcdefghijkl"), &mut buffer).unwrap(),
            10
        );
        assert_eq!(&buffer, b"abcdefghij");
    }
}
