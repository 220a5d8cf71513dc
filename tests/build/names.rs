//! Entry names are safe and unique whatever the uploads were called.

use std::collections::HashSet;
use std::fs;

use batch_export::ExportOptions;

use crate::common::*;

/// A dump whose one submission, `submission`, uploaded files with hostile
/// names.
fn hostile_dump_of(dir: &std::path::Path, submission: &str, names: &[&str]) {
    fs::create_dir_all(dir.join("uploads")).unwrap();
    fs::write(
        dir.join("batch.json"),
        r#"{"id":"b","name":"n","workspace_id":"w"}"#,
    )
    .unwrap();
    fs::write(
        dir.join("instructions.jsonl"),
        "{\"id\":\"i\",\"type\":\"file_upload\",\"description\":\"d\"}\n",
    )
    .unwrap();
    fs::write(dir.join("tasks.jsonl"), "{\"id\":\"t\"}\n").unwrap();
    fs::write(
        dir.join("submissions.jsonl"),
        format!("{{\"id\":{submission:?},\"participant_id\":\"p\"}}\n"),
    )
    .unwrap();
    let mut uploads = String::new();
    let mut items = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let key = format!("k{i}");
        fs::write(dir.join("uploads").join(&key), format!("bytes of {i}")).unwrap();
        let size = format!("bytes of {i}").len();
        uploads.push_str(&serde_json::json!({"file_key": key, "submission_id": submission, "file_name": name, "size_bytes": size}).to_string());
        uploads.push('\n');
        items.push(serde_json::json!({"file_key": key, "file_name": name, "file_size_mb": 0.0, "content_type": "text/plain"}));
    }
    fs::write(dir.join("uploads.jsonl"), uploads).unwrap();
    let response = serde_json::json!({"id": "r", "submission_id": submission, "task_id": "t",
        "response": {"instruction_id": "i", "type": "file_upload", "answer": items}});
    fs::write(dir.join("responses.jsonl"), format!("{response}\n")).unwrap();
}

/// Builds the archive of [`hostile_dump_of`] and lists its `files/` entries;
/// the folder holding the archive lives as long as the first value.
fn build_files(
    submission: &str,
    names: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    hostile_dump_of(&dump, submission, names);
    let out = dir.path().join("a.zip");
    build(&dump, &out, &ExportOptions::new()).unwrap();
    let files = read_entries(&out)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("files/"))
        .collect();
    (dir, out, files)
}

#[test]
fn hostile_upload_names_become_safe_unique_entries() {
    let long = format!("{}.txt", "ü".repeat(300));
    let names = [
        "../../etc/passwd",
        "/abs/path.txt",
        "C:\\Windows\\evil.txt",
        "..",
        "con",
        "NUL.txt",
        "a\u{1}b\tc.txt",
        "what?<>|*\":.txt",
        "trailing. . ",
        "Report.PDF",
        "report.pdf",
        "REPORT.pdf",
        &long,
        "",
        "dir/",
    ];
    let (_dir, _out, files) = build_files("s", &names);
    assert_eq!(files.len(), names.len());
    let mut lower = HashSet::new();
    for name in &files {
        let rest = name.strip_prefix("files/s_").unwrap();
        assert!(!rest.contains('/') && !rest.contains('\\'), "{name}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(
            !name.split('/').any(|part| part == ".." || part == "."),
            "{name}"
        );
        assert!(
            name.strip_prefix("files/").unwrap().len() <= 255,
            "{name}: the last component is at most 255 bytes"
        );
        assert!(
            lower.insert(batch_export::naming::fold_key(name)),
            "{name} unique ignoring case"
        );
    }
    for expected in [
        "files/s_passwd",
        "files/s_path.txt",
        "files/s_evil.txt",
        "files/s_file",
        "files/s__con",
        "files/s__NUL.txt",
        "files/s_abc.txt",
        "files/s_what_______.txt",
        "files/s_trailing",
        "files/s_Report.PDF",
        "files/s_report-2.pdf",
        "files/s_REPORT-3.pdf",
        "files/s_file-2",
        "files/s_file-3",
    ] {
        assert!(
            files.contains(&expected.to_owned()),
            "{expected} in {files:?}"
        );
    }
    let long_entry = files.iter().find(|n| n.contains('ü')).unwrap();
    assert!(long_entry.ends_with(".txt"));
    // 255 bytes less `s_` and `.txt` leave 249, so 124 two-byte letters.
    assert_eq!(long_entry.strip_prefix("files/").unwrap().len(), 254);
}

/// Spellings that collide or spoof on some system (issue 9): one name
/// under NFC and case folding, format characters, device names, and a long
/// id with a long name; verify passes what the writer makes.
#[test]
fn names_are_unique_under_nfc_and_case_folding_and_spoof_nothing() {
    let names = [
        "caf\u{e9}.txt",
        "cafe\u{301}.txt",
        "Stra\u{df}e.txt",
        "STRASSE.TXT",
        "rlo\u{202e}gpj.exe",
        "\u{feff}zero\u{200b}width.txt",
        "CONIN$",
        "conout$.log",
        "COM\u{b9}.txt",
        "LPT\u{b3}",
    ];
    let (_dir, out, files) = build_files("s", &names);
    let mut expected = vec![
        "files/s_caf\u{e9}.txt",
        "files/s_caf\u{e9}-2.txt",
        "files/s_Stra\u{df}e.txt",
        "files/s_STRASSE-2.TXT",
        "files/s_rlogpj.exe",
        "files/s_zerowidth.txt",
        "files/s__CONIN$",
        "files/s__conout$.log",
        "files/s__COM\u{b9}.txt",
        "files/s__LPT\u{b3}",
    ];
    expected.sort();
    assert_eq!(files, expected);
    let report = batch_export::verify::verify(fs::File::open(&out).unwrap()).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn a_long_id_and_a_long_name_fit_one_component_of_255_bytes() {
    let id = "s".repeat(180);
    let name = format!("{}.jpeg", "n".repeat(200));
    let (_dir, out, files) = build_files(&id, &[&name, &name]);
    let stem = "n".repeat(255 - 181 - 5);
    let short = "n".repeat(255 - 181 - 5 - 2);
    assert_eq!(
        files,
        // In name order: `-` sorts before `n`.
        vec![
            format!("files/{id}_{short}-2.jpeg"),
            format!("files/{id}_{stem}.jpeg"),
        ]
    );
    let report = batch_export::verify::verify(fs::File::open(&out).unwrap()).unwrap();
    assert!(report.is_ok(), "{report}");
}
