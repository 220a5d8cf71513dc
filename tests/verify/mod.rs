//! `verify`: good archives pass; truncated, corrupted, hand-made and
//! altered ones are reported (never a panic, an error or a hang); the
//! command's exit codes.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
#[cfg(feature = "cli")]
use std::process::Command;

use batch_export::verify::{self, Report, VerifyProblemKind};
use batch_export::{Dump, ExportOptions};

fn sample_dump() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-batch")
}

fn sample_archive() -> Vec<u8> {
    let dump = Dump::open(sample_dump()).unwrap();
    let mut out = Cursor::new(Vec::new());
    dump.export(&mut out, &ExportOptions::new()).unwrap();
    out.into_inner()
}

fn check(bytes: &[u8]) -> Report {
    verify::verify(Cursor::new(bytes)).expect("verify reads from memory without I/O errors")
}

fn messages(report: &Report) -> String {
    report.to_string()
}

#[test]
fn the_sample_archive_passes_alone_and_against_its_dump() {
    let bytes = sample_archive();
    let report = check(&bytes);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.entries(), 9);
    let dump = Dump::open(sample_dump()).unwrap();
    let report = verify::verify_against_dump(Cursor::new(&bytes), &dump).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn every_truncation_is_reported() {
    let bytes = sample_archive();
    for len in (0..bytes.len()).step_by(7) {
        let report = check(&bytes[..len]);
        assert!(!report.is_ok(), "a file cut to {len} bytes passed");
    }
}

#[test]
fn corrupted_bytes_never_crash_and_data_corruption_is_caught() {
    let bytes = sample_archive();
    // Any byte may be hit: verify must answer with a report every time.
    for at in 0..bytes.len() {
        let mut corrupted = bytes.clone();
        corrupted[at] ^= 0x5A;
        let _ = check(&corrupted);
    }
    // A byte inside a stored upload (photo.jpg, stored as a JPEG) breaks its CRC.
    let name = b"files/sub-a1_photo.jpg";
    let header = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("the local header's name");
    let mut corrupted = bytes.clone();
    corrupted[header + name.len() + 100] ^= 1;
    let report = check(&corrupted);
    assert!(report.has(VerifyProblemKind::Integrity), "{report}");
    assert!(
        messages(&report).contains("files/sub-a1_photo.jpg: the data's CRC-32"),
        "{report}"
    );
    // A byte inside the deflated README breaks its stream or its CRC.
    let mut corrupted = bytes.clone();
    corrupted[30 + "README.md".len() + 200] ^= 0x10;
    let report = check(&corrupted);
    assert!(report.has(VerifyProblemKind::Integrity), "{report}");
}

#[test]
fn bytes_after_the_central_directory_are_reported() {
    let mut bytes = sample_archive();
    bytes.extend_from_slice(b"trailing");
    let report = check(&bytes);
    assert!(
        messages(&report).contains("8 bytes follow the end of central directory record"),
        "{report}"
    );
}

/// A hand-made archive with the `zip` crate's writer, entries as given.
fn hand_made(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn unsafe_and_colliding_names_are_reported() {
    let bytes = hand_made(&[
        ("README.md", b"x"),
        ("../evil.txt", b"x"),
        ("/etc/passwd", b"x"),
        ("files/a\\b.txt", b"x"),
        ("files/bell\u{7}.txt", b"x"),
        ("files/Photo.jpg", b"x"),
        ("files/photo.JPG", b"x"),
    ]);
    let report = check(&bytes);
    let text = messages(&report);
    for expected in [
        "../evil.txt: a name with a `..` component",
        "/etc/passwd: an absolute name",
        "files/a\\b.txt: a name with a backslash",
        "a name with a control character",
        "files/photo.JPG: the same name as \"files/Photo.jpg\" ignoring case",
        "batch.json: the entry is missing",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

/// What the writer never makes, verify never passes (issue 9): names a
/// reader cannot extract, or extracts over each other.
#[test]
fn names_the_writer_would_not_make_are_reported() {
    let long = format!("files/s_{}.txt", "a".repeat(250));
    let bytes = hand_made(&[
        ("README.md", b"x"),
        ("files/s_Stra\u{df}e.txt", b"x"),
        ("files/s_STRASSE.TXT", b"x"),
        ("files/s_caf\u{e9}.txt", b"x"),
        ("files/s_cafe\u{301}.txt", b"x"),
        ("files/s_rlo\u{202e}gpj.exe", b"x"),
        ("files/s_zero\u{200b}width", b"x"),
        (&long, b"x"),
        ("files/s_trailing.", b"x"),
    ]);
    let text = messages(&check(&bytes));
    for expected in [
        "files/s_STRASSE.TXT: the same name as \"files/s_Straße.txt\" ignoring case",
        "files/s_cafe\u{301}.txt: the same name as \"files/s_café.txt\"",
        "an upload name that is not a safe name (safe: \"s_caf\u{e9}.txt\")",
        "files/s_rlo\u{202e}gpj.exe: an upload name that is not a safe name",
        "files/s_zero\u{200b}width: an upload name that is not a safe name",
        "a name component of 256 bytes, over the 255",
        "files/s_trailing.: an upload name that is not a safe name",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn data_descriptors_are_reported() {
    // Flag bit 3 in both headers, as a streaming writer would set it.
    let mut bytes = hand_made(&[("README.md", b"hello")]);
    bytes[6] |= 1 << 3;
    let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[central + 8] |= 1 << 3;
    let report = check(&bytes);
    assert!(
        messages(&report).contains("README.md: the entry uses a data descriptor"),
        "{report}"
    );
}

#[test]
fn an_empty_or_foreign_file_is_reported() {
    assert!(!check(b"").is_ok());
    assert!(!check(b"not a zip archive at all, just some text that goes on").is_ok());
    let report = check(&[
        0x50, 0x4b, 0x05, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
    ]);
    assert!(!report.is_ok());
}

/// Copies the sample dump, lets `change` alter the copy, builds the
/// copy's archive and verifies it against the original dump.
fn altered(change: impl FnOnce(&Path)) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("dump");
    for entry in walkdir::WalkDir::new(sample_dump()) {
        let entry = entry.unwrap();
        let target = copy.join(entry.path().strip_prefix(sample_dump()).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    change(&copy);
    let mut out = Cursor::new(Vec::new());
    Dump::open(&copy)
        .unwrap()
        .export(&mut out, &ExportOptions::new())
        .unwrap();
    let bytes = out.into_inner();
    assert!(
        check(&bytes).is_ok(),
        "the altered archive is itself well-formed"
    );
    let original = Dump::open(sample_dump()).unwrap();
    verify::verify_against_dump(Cursor::new(bytes), &original).unwrap()
}

fn edit_lines(path: &Path, edit: impl Fn(&str) -> Option<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: String = text
        .lines()
        .filter_map(|l| edit(l).map(|l| l + "\n"))
        .collect();
    std::fs::write(path, lines).unwrap();
}

#[test]
fn a_missing_response_is_reported() {
    let report = altered(|dump| {
        edit_lines(&dump.join("responses.jsonl"), |l| {
            (!l.contains("\"r-0012\"")).then(|| l.to_owned())
        });
    });
    assert!(
        messages(&report).contains("response \"r-0012\" of the dump is missing"),
        "{report}"
    );
    assert!(report.has(VerifyProblemKind::Content));
}

#[test]
fn an_extra_response_is_reported() {
    let report = altered(|dump| {
        let path = dump.join("responses.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"id": "r-0099", "submission_id": "sub-c3", "task_id": "t-001", "response": {"instruction_id": "i-caption", "type": "free_text", "answer": [{"value": "extra"}]}}"#);
        text.push('\n');
        std::fs::write(path, text).unwrap();
    });
    assert!(
        messages(&report).contains("response \"r-0099\" is not in the dump's export"),
        "{report}"
    );
}

#[test]
fn an_altered_response_is_reported() {
    let report = altered(|dump| {
        edit_lines(&dump.join("responses.jsonl"), |l| {
            Some(l.replace("A roe deer", "A red deer"))
        });
    });
    assert!(
        messages(&report).contains("response \"r-0001\" differs from the dump"),
        "{report}"
    );
}

#[test]
fn altered_upload_bytes_are_reported() {
    let report = altered(|dump| {
        let path = dump.join("uploads/up-03");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        // Keep the copy valid: drop the SHA-256 its record would refuse.
        edit_lines(&dump.join("uploads.jsonl"), |l| {
            let mut record: serde_json::Value = serde_json::from_str(l).unwrap();
            if record["file_key"] == "up-03" {
                record.as_object_mut().unwrap().remove("sha256");
            }
            Some(record.to_string())
        });
    });
    let text = messages(&report);
    assert!(
        text.contains("files/sub-b2_measurements.csv: the bytes differ from upload \"up-03\""),
        "{text}"
    );
}

#[cfg(feature = "cli")]
fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batch-export"))
}

#[cfg(feature = "cli")]
#[test]
fn the_command_exits_0_1_or_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.zip");
    std::fs::write(&good, sample_archive()).unwrap();
    let status = binary()
        .arg("verify")
        .arg(&good)
        .arg("--dump")
        .arg(sample_dump())
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    let bad = dir.path().join("bad.zip");
    std::fs::write(&bad, &sample_archive()[..5000]).unwrap();
    let out = binary().arg("verify").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("truncated"));

    let out = binary()
        .arg("verify")
        .arg(dir.path().join("absent.zip"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

mod budget;
mod options;
