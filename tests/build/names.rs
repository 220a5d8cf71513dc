//! Entry names are safe and unique whatever the uploads were called.

use std::collections::HashSet;
use std::fs;

use batch_export::ExportOptions;

use crate::common::*;

/// A dump whose one submission uploaded files with hostile names.
fn hostile_dump(dir: &std::path::Path, names: &[&str]) {
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
        "{\"id\":\"s\",\"participant_id\":\"p\"}\n",
    )
    .unwrap();
    let mut uploads = String::new();
    let mut items = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let key = format!("k{i}");
        fs::write(dir.join("uploads").join(&key), format!("bytes of {i}")).unwrap();
        let size = format!("bytes of {i}").len();
        uploads.push_str(&serde_json::json!({"file_key": key, "submission_id": "s", "file_name": name, "size_bytes": size}).to_string());
        uploads.push('\n');
        items.push(serde_json::json!({"file_key": key, "file_name": name, "file_size_mb": 0.0, "content_type": "text/plain"}));
    }
    fs::write(dir.join("uploads.jsonl"), uploads).unwrap();
    let response = serde_json::json!({"id": "r", "submission_id": "s", "task_id": "t",
        "response": {"instruction_id": "i", "type": "file_upload", "answer": items}});
    fs::write(dir.join("responses.jsonl"), format!("{response}\n")).unwrap();
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
    let dump = tempfile::tempdir().unwrap();
    hostile_dump(dump.path(), &names);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("a.zip");
    build(dump.path(), &out, &ExportOptions::new()).unwrap();
    let files: Vec<String> = read_entries(&out)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("files/"))
        .collect();
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
            rest.len() <= 200 + 2,
            "{name} is at most 200 bytes plus a -N suffix"
        );
        assert!(
            lower.insert(name.to_lowercase()),
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
    assert_eq!(long_entry.strip_prefix("files/s_").unwrap().len(), 200);
}
