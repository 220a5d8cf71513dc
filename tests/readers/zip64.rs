//! ZIP64 at scale: more than 65,535 entries, and an upload over 4 GiB
//! streamed from a generator (never held in memory). Both must pass
//! `verify` and every reader; small archives must stay plain ZIP.
//!
//! The scale tests are `#[ignore]`d so a plain `cargo test` stays quick;
//! CI runs them with `--include-ignored`.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use batch_export::model::*;
use batch_export::{export_to_path, verify, BlobSource, ExportOptions, MemoryBlobSource};
use sha2::{Digest, Sha256};

use super::sample::{build_verified, sample_dump};
use super::{check_all, Depth, Expected, Manifest};

/// One submission, one task, one file_upload instruction, and one
/// response per upload `(file_key, file_name, size, content_type)`.
fn records(uploads: &[(String, String, u64, &str)]) -> Records {
    let mut records = Records::new(Batch::new("scale", "Scale test", "w1"));
    let mut instruction = RawObject::default();
    instruction.insert("id", RawJson::string("i1"));
    instruction.insert("type", RawJson::string("file_upload"));
    instruction.insert("description", RawJson::string("Upload"));
    records.instructions.push(Instruction {
        id: "i1".into(),
        kind: InstructionType::FileUpload,
        fields: instruction,
    });
    records.tasks.push(Task {
        id: "t1".into(),
        ..Task::default()
    });
    records.submissions.push(Submission {
        id: "s1".into(),
        participant_id: "p1".into(),
        ..Submission::default()
    });
    for (i, (key, name, size, content_type)) in uploads.iter().enumerate() {
        let item = serde_json::json!({
            "file_key": key, "file_name": name, "file_size_mb": *size as f64 / 1e6, "content_type": content_type,
        });
        records.responses.push(Response {
            id: format!("r{i:06}").into(),
            submission_id: "s1".into(),
            task_id: "t1".into(),
            instruction_id: "i1".into(),
            kind: "file_upload".into(),
            answer: vec![RawJson::parse(&item.to_string()).unwrap()],
            ..Response::default()
        });
        records.uploads.push(Upload {
            file_key: key.clone().into(),
            submission_id: "s1".into(),
            file_name: name.clone(),
            size_bytes: *size,
            content_type: Some((*content_type).to_owned()),
            ..Upload::default()
        });
    }
    records
}

fn options() -> ExportOptions {
    ExportOptions::new().generated_at("2024-05-01T12:00:00Z")
}

/// The text entries as the `zip` crate reads them back.
fn text_manifest(archive: &Path) -> Manifest {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(archive).unwrap()).unwrap();
    let mut manifest = Manifest::new();
    for name in [
        "README.md",
        "batch.json",
        "responses-by-submission.jsonl",
        "responses-by-task.jsonl",
    ] {
        let mut bytes = Vec::new();
        zip.by_name(name).unwrap().read_to_end(&mut bytes).unwrap();
        manifest.insert(name.to_owned(), Expected::of(&bytes));
    }
    manifest
}

/// What the tests need of each central record, read straight from the file.
struct Central {
    name: String,
    version_needed: u16,
    extra_len: u16,
}

/// The central records and whether a ZIP64 end record is present. Assumes
/// a well-formed archive (verify has passed by then).
fn central(archive: &Path) -> (Vec<Central>, bool) {
    let mut file = std::fs::File::open(archive).unwrap();
    let len = file.seek(SeekFrom::End(0)).unwrap();
    let mut tail = vec![0u8; 22 + 20 + 56];
    file.seek(SeekFrom::Start(len - tail.len() as u64)).unwrap();
    file.read_exact(&mut tail).unwrap();
    let end = &tail[56 + 20..];
    assert_eq!(&end[..4], b"PK\x05\x06");
    let locator = &tail[56..56 + 20];
    let zip64 = &locator[..4] == b"PK\x06\x07";
    let (offset, size) = if zip64 {
        let record = &tail[..56];
        assert_eq!(&record[..4], b"PK\x06\x06");
        (u64_at(record, 48), u64_at(record, 40))
    } else {
        (u32_at(end, 16) as u64, u32_at(end, 12) as u64)
    };
    let mut cd = vec![0u8; size as usize];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut cd).unwrap();
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < cd.len() {
        let r = &cd[pos..];
        let name_len = u16_at(r, 28) as usize;
        let extra_len = u16_at(r, 30);
        records.push(Central {
            name: String::from_utf8(r[46..46 + name_len].to_vec()).unwrap(),
            version_needed: u16_at(r, 6),
            extra_len,
        });
        pos += 46 + name_len + extra_len as usize + u16_at(r, 32) as usize;
    }
    (records, zip64)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn small_archives_stay_plain_zip() {
    let dir = tempfile::tempdir().unwrap();
    let archive = build_verified(&sample_dump(), dir.path());
    let (records, zip64) = central(&archive);
    assert!(!zip64, "a small archive has no ZIP64 end record");
    assert_eq!(records.len(), 9);
    for record in &records {
        assert_eq!(record.extra_len, 0, "{} has an extra field", record.name);
        assert_eq!(
            record.version_needed, 20,
            "{} needs a later version",
            record.name
        );
    }
}

#[test]
#[ignore = "slow: ZIP64 scale"]
fn more_than_65535_entries() {
    const COUNT: usize = 70_000;
    let started = Instant::now();
    let mut blobs = MemoryBlobSource::new();
    let mut uploads = Vec::with_capacity(COUNT);
    let mut manifest = Manifest::new();
    for i in 0..COUNT {
        let key = format!("u{i:05}");
        let bytes = format!("upload {i}\n").into_bytes();
        manifest.insert(format!("files/s1_f{i:05}.txt"), Expected::of(&bytes));
        uploads.push((
            key.clone(),
            format!("f{i:05}.txt"),
            bytes.len() as u64,
            "text/plain",
        ));
        blobs.insert(&key, bytes);
    }
    let records = records(&uploads);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("many.zip");
    let summary = export_to_path(&records, &blobs, &archive, &options()).unwrap();
    assert_eq!(summary.entries, COUNT as u64 + 4);
    eprintln!("70,000 entries: built in {:.1?}", started.elapsed());

    let report =
        verify::verify_against(std::fs::File::open(&archive).unwrap(), &records, &blobs).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.entries(), COUNT as u64 + 4);
    eprintln!("70,000 entries: verified at {:.1?}", started.elapsed());

    let (central, zip64) = central(&archive);
    assert!(zip64, "more than 65,535 entries need the ZIP64 end record");
    assert_eq!(central.len(), COUNT + 4);
    assert!(
        central.iter().all(|r| r.extra_len == 0),
        "small entries at small offsets carry no ZIP64 extra field"
    );

    manifest.extend(text_manifest(&archive));
    // Integrity tests plus every entry's bytes hashed (Python, Java) or read
    // (bsdtar from a pipe): creating and deleting 70,000 files once per
    // reader would mostly measure the file system.
    check_all(&archive, &manifest, Depth::TestOnly);
    eprintln!(
        "70,000 entries: all readers done at {:.1?}",
        started.elapsed()
    );
}

/// Deterministic bytes without end: xorshift64*, produced on the fly.
struct Generated {
    state: u64,
    left: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Serves the generator for the big upload and small fixed bytes for the rest.
struct GeneratedBlobs {
    big_key: &'static str,
    big_size: u64,
    small: MemoryBlobSource,
}

impl GeneratedBlobs {
    fn big(&self) -> Generated {
        Generated {
            state: 0x9E37_79B9_7F4A_7C15,
            left: self.big_size,
        }
    }
}

impl BlobSource for GeneratedBlobs {
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>> {
        if upload.file_key == self.big_key {
            Ok(Box::new(self.big()))
        } else {
            self.small.open(upload)
        }
    }

    fn len(&self, upload: &Upload) -> io::Result<Option<u64>> {
        if upload.file_key == self.big_key {
            Ok(Some(self.big_size))
        } else {
            self.small.len(upload)
        }
    }
}

#[test]
#[ignore = "slow: ZIP64 scale"]
fn an_upload_over_4_gib() {
    const BIG: u64 = (4 << 30) + 12_345;
    let started = Instant::now();
    let small = b"after the big one\n".to_vec();
    let mut blobs = GeneratedBlobs {
        big_key: "big",
        big_size: BIG,
        small: MemoryBlobSource::new(),
    };
    blobs.small.insert("small", small.clone());
    // Stored (JPEG), so writing is disk-bound; "small" sorts after "big",
    // so its local header lies past 4 GiB and needs a ZIP64 offset.
    let records = records(&[
        ("big".into(), "big.jpg".into(), BIG, "image/jpeg"),
        (
            "small".into(),
            "small.txt".into(),
            small.len() as u64,
            "text/plain",
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("big.zip");
    export_to_path(&records, &blobs, &archive, &options()).unwrap();
    eprintln!("4 GiB upload: built in {:.1?}", started.elapsed());

    let mut sha = Sha256::new();
    io::copy(&mut blobs.big(), &mut HashWriter(&mut sha)).unwrap();
    let mut manifest = text_manifest(&archive);
    manifest.insert(
        "files/s1_big.jpg".into(),
        Expected {
            size: BIG,
            sha256: hex::encode(sha.finalize()),
        },
    );
    manifest.insert("files/s1_small.txt".into(), Expected::of(&small));

    let report =
        verify::verify_against(std::fs::File::open(&archive).unwrap(), &records, &blobs).unwrap();
    assert!(report.is_ok(), "{report}");
    eprintln!("4 GiB upload: verified at {:.1?}", started.elapsed());

    let (central, zip64) = central(&archive);
    assert!(zip64, "an archive over 4 GiB needs the ZIP64 end record");
    for record in &central {
        let needs = record.name.starts_with("files/");
        assert_eq!(
            record.extra_len > 0,
            needs,
            "ZIP64 extra field on {}",
            record.name
        );
    }

    // Extracting 4 GiB once per reader would only measure the disk; each
    // reader instead tests every CRC (Java and bsdtar hash every byte).
    check_all(&archive, &manifest, Depth::TestOnly);
    std::fs::remove_file(&archive).unwrap();
    eprintln!("4 GiB upload: done at {:.1?}", started.elapsed());
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
