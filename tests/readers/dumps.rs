//! Dumps built on the fly: one with non-ASCII names everywhere, and
//! seeded random ones. Also the manifest of what an archive of a dump must
//! hold, and running the archive README's Python example.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{hash_file, python_with_pandas, run, Expected, Manifest};

/// Records of a dump being written, one list per file.
pub struct DumpWriter {
    root: PathBuf,
    pub batch: Value,
    pub instructions: Vec<Value>,
    pub tasks: Vec<Value>,
    pub submissions: Vec<Value>,
    pub responses: Vec<Value>,
    pub uploads: Vec<Value>,
}

impl DumpWriter {
    pub fn new(root: &Path, batch_id: &str) -> DumpWriter {
        std::fs::create_dir_all(root.join("uploads")).unwrap();
        DumpWriter {
            root: root.to_path_buf(),
            batch: json!({"id": batch_id, "name": format!("Batch {batch_id}"), "workspace_id": "ws-1"}),
            instructions: Vec::new(),
            tasks: Vec::new(),
            submissions: Vec::new(),
            responses: Vec::new(),
            uploads: Vec::new(),
        }
    }

    /// Stores an upload's bytes and record; returns its answer item.
    pub fn upload(
        &mut self,
        file_key: &str,
        submission_id: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Value {
        std::fs::write(self.root.join("uploads").join(file_key), bytes).unwrap();
        self.uploads.push(json!({
            "file_key": file_key,
            "submission_id": submission_id,
            "file_name": file_name,
            "size_bytes": bytes.len(),
            "content_type": content_type,
            "sha256": hex::encode(Sha256::digest(bytes)),
        }));
        json!({
            "file_key": file_key,
            "file_name": file_name,
            "file_size_mb": bytes.len() as f64 / 1e6,
            "content_type": content_type,
        })
    }

    pub fn finish(self) -> PathBuf {
        let write = |name: &str, lines: &[Value]| {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(self.root.join(name), text).unwrap();
        };
        std::fs::write(self.root.join("batch.json"), self.batch.to_string()).unwrap();
        write("instructions.jsonl", &self.instructions);
        write("tasks.jsonl", &self.tasks);
        write("submissions.jsonl", &self.submissions);
        write("responses.jsonl", &self.responses);
        write("uploads.jsonl", &self.uploads);
        self.root
    }
}

/// A dump whose ids, names and answers are non-ASCII throughout, with
/// upload names that need every rule of safe naming.
pub fn non_ascii(root: &Path) -> PathBuf {
    let mut dump = DumpWriter::new(root, "lot-été-📦");
    dump.batch["name"] = json!("Étude «faune» — 野生動物");
    dump.instructions
        .push(json!({"id": "i-описание", "type": "free_text", "description": "Décrivez"}));
    dump.instructions
        .push(json!({"id": "i-fichier", "type": "file_upload", "description": "Téléversez"}));
    dump.tasks
        .push(json!({"id": "tâche-1", "datapoint": {"légende": "cerf"}}));
    dump.tasks
        .push(json!({"id": "タスク-2", "group_id": "groupe-Ω"}));
    let subs = [
        ("soumission-Ä", "participant-ü"),
        ("提出-2", "参加者-2"),
        ("υποβολή-3", "συμμετέχων-3"),
    ];
    for (id, participant) in subs {
        dump.submissions
            .push(json!({"id": id, "participant_id": participant, "status": "APPROVED"}));
    }
    let names: [(&str, &str); 5] = [
        ("résumé des notes.txt", "text/plain"),
        ("日本語 ノート.csv", "text/csv"),
        ("📷 Фото.jpg", "image/jpeg"),
        ("dossier\\sous-dossier\\Größe?.png", "image/png"),
        ("CON.txt", "text/plain"),
    ];
    let mut n = 0;
    for (s, (submission, participant)) in subs.iter().enumerate() {
        for (t, task) in ["tâche-1", "タスク-2"].iter().enumerate() {
            n += 1;
            dump.responses.push(json!({
                "id": format!("réponse-{n:02}"), "submission_id": submission, "task_id": task,
                "participant_id": participant,
                "response": {"instruction_id": "i-описание", "type": "free_text", "answer": [{"value": format!("ça va 🦊 {s}{t}")}]},
                "created_at": format!("2024-06-0{}T10:00:0{}Z", s + 1, t),
            }));
            let mut items = Vec::new();
            for (k, (name, kind)) in names
                .iter()
                .enumerate()
                .filter(|(k, _)| (k + s + t) % 2 == 0)
            {
                let key = format!("clé-{s}-{t}-{k}");
                let bytes = format!("{name} · {submission} · {task}\n").repeat(k * 40 + 1);
                items.push(dump.upload(&key, submission, name, kind, bytes.as_bytes()));
            }
            n += 1;
            dump.responses.push(json!({
                "id": format!("réponse-{n:02}"), "submission_id": submission, "task_id": task,
                "response": {"instruction_id": "i-fichier", "type": "file_upload", "answer": items},
            }));
        }
    }
    dump.finish()
}

const NAME_PARTS: [&str; 16] = [
    "photo",
    "Photo",
    "notes",
    "scan",
    "données",
    "写真",
    "x",
    "CON",
    "a b",
    "..",
    "<weird>",
    "tab\there",
    "long-name-",
    "ÄÖÜ",
    "😀",
    "dir/sub",
];
const EXTENSIONS: [&str; 8] = [".jpg", ".JPG", ".txt", ".csv", "", ".tar.gz", ".png", "."];
const TYPES: [(&str, &str); 5] = [
    ("free_text", "value"),
    ("multiple_choice", "value"),
    ("multiple_choice_with_free_text", "explanation"),
    ("free_text_with_unit", "unit"),
    ("file_upload", ""),
];

/// A random but valid dump from `seed`: random counts, types, names
/// (colliding, unsafe, non-ASCII), sizes, timestamps, no_submission
/// responses and pass-through fields, with shuffled lines.
pub fn random(root: &Path, seed: u64) -> PathBuf {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut dump = DumpWriter::new(root, &format!("rand-{seed}"));
    for i in 0..rng.gen_range(1..=6) {
        let (kind, _) = TYPES[if i == 0 {
            4
        } else {
            rng.gen_range(0..TYPES.len())
        }];
        dump.instructions.push(
            json!({"id": format!("i{i}"), "type": kind, "description": format!("question {i}")}),
        );
    }
    let tasks = rng.gen_range(1..=12);
    for t in 0..tasks {
        dump.tasks.push(json!({"id": format!("t{t:02}"), "datapoint": {"n": t}, "extra_field": rng.gen_bool(0.3)}));
    }
    let submissions = rng.gen_range(1..=8);
    let mut next_upload = 0;
    let mut next_response = 0;
    for s in 0..submissions {
        let sub = format!("s{}", rng.gen_range(0..1000) * 10 + s);
        dump.submissions
            .push(json!({"id": sub, "participant_id": format!("p-{sub}"), "study_id": "st"}));
        for t in 0..tasks {
            for i in 0..dump.instructions.len() {
                if !rng.gen_bool(0.5) {
                    continue;
                }
                next_response += 1;
                let kind = dump.instructions[i]["type"].as_str().unwrap().to_owned();
                let no_submission = rng.gen_bool(0.15);
                let mut answer = Vec::new();
                if !no_submission {
                    for a in 0..rng.gen_range(1..=3) {
                        if kind == "file_upload" {
                            next_upload += 1;
                            let name = format!(
                                "{}{}{}",
                                NAME_PARTS.choose(&mut rng).unwrap(),
                                if rng.gen_bool(0.3) {
                                    ""
                                } else {
                                    NAME_PARTS.choose(&mut rng).unwrap()
                                },
                                EXTENSIONS.choose(&mut rng).unwrap()
                            );
                            let size = if rng.gen_bool(0.1) {
                                0
                            } else {
                                rng.gen_range(1..30_000)
                            };
                            let bytes: Vec<u8> =
                                (0..size).map(|_| rng.gen_range(b'a'..=b'e')).collect();
                            let content_type =
                                ["image/jpeg", "text/plain", "application/octet-stream"]
                                    .choose(&mut rng)
                                    .unwrap();
                            let key = format!("u{next_upload}");
                            answer.push(dump.upload(&key, &sub, &name, content_type, &bytes));
                        } else {
                            answer.push(json!({"value": format!("v{a}-{}", rng.gen_range(0..100)), "unit": "m"}));
                        }
                    }
                }
                let mut response = json!({
                    "id": format!("r{next_response:05}"), "submission_id": sub, "task_id": format!("t{t:02}"),
                    "response": {"instruction_id": format!("i{i}"), "type": if no_submission { "no_submission" } else { kind.as_str() }, "answer": answer},
                });
                if rng.gen_bool(0.8) {
                    let minute = rng.gen_range(0..60);
                    response["created_at"] = json!(format!("2024-07-01T12:{minute:02}:00Z"));
                }
                if rng.gen_bool(0.2) {
                    response["client"] = json!({"app": "web"});
                }
                dump.responses.push(response);
            }
        }
    }
    dump.submissions.shuffle(&mut rng);
    dump.responses.shuffle(&mut rng);
    dump.uploads.shuffle(&mut rng);
    dump.finish()
}

/// What an archive of `dump` must hold: text entries as the `zip` crate
/// reads them from the archive, `files/` entries as the dump's upload
/// bytes, found through each answer's `path` and `file_key`.
pub fn manifest(archive: &Path, dump: &Path) -> Manifest {
    let file = std::fs::File::open(archive).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let mut manifest = Manifest::new();
    let mut by_task = String::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().to_owned();
        if name.starts_with("files/") {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name == "responses-by-task.jsonl" {
            by_task = String::from_utf8(bytes.clone()).unwrap();
        }
        manifest.insert(name, Expected::of(&bytes));
    }
    let uploads = std::fs::read_to_string(dump.join("uploads.jsonl")).unwrap_or_default();
    let blob_of = |key: &str| -> PathBuf {
        for line in uploads.lines().filter(|l| !l.trim().is_empty()) {
            let record: Value = serde_json::from_str(line).unwrap();
            if record["file_key"] == key {
                return match record["path"].as_str() {
                    Some(path) => dump.join(path),
                    None => dump.join("uploads").join(key),
                };
            }
        }
        panic!("no upload {key} in the dump");
    };
    for line in by_task.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        for response in line["responses"].as_array().unwrap() {
            for item in response["answer"].as_array().unwrap() {
                if let (Some(path), Some(key)) = (item["path"].as_str(), item["file_key"].as_str())
                {
                    manifest.insert(path.to_owned(), hash_file(&blob_of(key)));
                }
            }
        }
    }
    let files = (0..zip.len())
        .filter(|&i| zip.name_for_index(i).unwrap().starts_with("files/"))
        .count();
    assert_eq!(
        manifest.len(),
        4 + files,
        "every files/ entry is some answer's path"
    );
    manifest
}

/// Extracts the archive, runs the README's Python block(s) exactly as
/// written in that folder, and checks what they print against batch.json
/// and the answers counted from the JSON Lines.
pub fn run_readme_example(archive: &Path) {
    let Some(python) = python_with_pandas() else {
        return;
    };
    let folder = tempfile::tempdir().unwrap();
    let file = std::fs::File::open(archive).unwrap();
    zip::ZipArchive::new(file)
        .unwrap()
        .extract(folder.path())
        .unwrap();
    let readme = std::fs::read_to_string(folder.path().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```python\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty(), "the README has no python block");
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), blocks.concat()).unwrap();
    let out = run(Command::new(&python)
        .arg(script.path())
        .current_dir(folder.path()));
    let printed = String::from_utf8(out.stdout).unwrap();

    let batch: Value =
        serde_json::from_slice(&std::fs::read(folder.path().join("batch.json")).unwrap()).unwrap();
    let counts = &batch["export"]["counts"];
    let by_task = std::fs::read_to_string(folder.path().join("responses-by-task.jsonl")).unwrap();
    let answers: usize = by_task
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .flat_map(|l| l["responses"].as_array().unwrap().clone())
        .map(|r| r["answer"].as_array().unwrap().len())
        .sum();
    let mut expected = format!(
        "{} submissions\n{} tasks\n{} responses\n{answers} answers\n",
        counts["submissions"], counts["tasks"], counts["responses"]
    );
    // With tables, the README's second block loads them and counts rows.
    if let Some(rows) = counts.get("responses_csv_rows") {
        expected += &format!(
            "{rows} rows in responses.csv\n{} rows in codebook.csv\n",
            counts["codebook_csv_rows"]
        );
    }
    assert_eq!(printed, expected, "the README example printed other counts");
}
