//! Seeded random dumps that are valid but awkward: ids in mixed case and
//! scripts, repeated and hostile upload names, timestamps in several
//! offsets or missing or not RFC 3339, `no_submission` responses, unknown
//! fields, uploads nobody uses, and lines in random order.

use std::fs;
use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const TYPES: [&str; 5] = [
    "free_text",
    "multiple_choice",
    "multiple_choice_with_free_text",
    "free_text_with_unit",
    "file_upload",
];
const NAMES: [&str; 12] = [
    "photo.jpg",
    "Photo.JPG",
    "notes.txt",
    "a/b/notes.txt",
    "C:\\tmp\\scan.png",
    "CON",
    "über näme.csv",
    "x?y*.pdf",
    "...",
    "data.tar.gz",
    "data.tar.gz",
    "clip.mp4",
];
const CONTENT_TYPES: [&str; 5] = [
    "image/jpeg",
    "text/plain",
    "text/csv",
    "video/mp4",
    "application/octet-stream",
];
const TIMES: [&str; 6] = [
    "2024-05-01T10:00:00Z",
    "2024-05-01T12:00:00+02:00",
    "2024-05-01T09:59:59.250Z",
    "2024-05-02T00:00:00-05:00",
    "2024-05-01T10:00:00Z",
    "not a time",
];

pub fn write(dir: &Path, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    fs::create_dir_all(dir.join("uploads")).unwrap();
    fs::write(
        dir.join("batch.json"),
        json!({"id": format!("batch-{seed}"), "name": "random", "workspace_id": "w"}).to_string(),
    )
    .unwrap();

    let instructions: Vec<(String, &str)> = (0..rng.gen_range(1..=6))
        .map(|i| (format!("ins-{i}"), *TYPES.choose(&mut rng).unwrap()))
        .collect();
    let instruction_lines: Vec<Value> = instructions
        .iter()
        .map(|(id, t)| json!({"id": id, "type": t, "description": "q"}))
        .collect();
    write_lines(dir, "instructions.jsonl", &instruction_lines, None);

    let task_ids: Vec<String> = (0..rng.gen_range(1..=8))
        .map(|i| format!("task-{}", 9 - i))
        .collect();
    let task_lines: Vec<Value> = task_ids
        .iter()
        .map(|id| {
            let mut task = json!({"id": id});
            if rng.gen_bool(0.6) {
                task["datapoint"] =
                    json!({"text": format!("item {id}"), "n": rng.gen_range(0..100)});
            }
            if rng.gen_bool(0.5) {
                task["group_id"] = json!(format!("g{}", rng.gen_range(0..3)));
            }
            if rng.gen_bool(0.3) {
                task["metadata"] = json!({"source": "s"});
            }
            if rng.gen_bool(0.2) {
                task["extra_field"] = json!([1, 2]);
            }
            task
        })
        .collect();
    write_lines(dir, "tasks.jsonl", &task_lines, None);

    let submission_ids: Vec<String> = (0..rng.gen_range(1..=10))
        .map(|i| {
            ["s", "S", "sé", "s_", "Ω"][i % 5].to_owned()
                + &format!("{}", rng.gen_range(0..1000))
                + &i.to_string()
        })
        .collect();
    let mut submission_lines = Vec::new();
    for (i, id) in submission_ids.iter().enumerate() {
        let mut s = json!({"id": id, "participant_id": format!("p{i}")});
        if rng.gen_bool(0.7) {
            s["study_id"] = json!(format!("study-{}", i % 2));
        }
        if rng.gen_bool(0.5) {
            s["started_at"] = json!(TIMES.choose(&mut rng).unwrap());
        }
        if rng.gen_bool(0.3) {
            s["note"] = json!("unknown field");
        }
        submission_lines.push(s);
    }

    let mut responses = Vec::new();
    let mut uploads = Vec::new();
    let mut counter = 0;
    for (i, sid) in submission_ids.iter().enumerate() {
        for task in &task_ids {
            if rng.gen_bool(0.4) {
                continue;
            }
            for (iid, kind) in &instructions {
                for _ in 0..rng.gen_range(1..=2) {
                    counter += 1;
                    let no_submission = rng.gen_bool(0.15);
                    let answer = if no_submission {
                        json!([])
                    } else {
                        answer(&mut rng, kind, sid, &mut uploads, dir)
                    };
                    let mut r = json!({
                        "id": format!("r{:03}", rng.gen_range(0..1000)) + &counter.to_string(),
                        "submission_id": sid, "task_id": task,
                        "response": {"instruction_id": iid, "type": if no_submission { "no_submission" } else { kind }, "answer": answer},
                    });
                    if rng.gen_bool(0.8) {
                        r["created_at"] = json!(TIMES.choose(&mut rng).unwrap());
                    }
                    if rng.gen_bool(0.5) {
                        r["participant_id"] = json!(format!("p{i}"));
                    }
                    if rng.gen_bool(0.3) {
                        r["correlation_id"] = json!(format!("c{}", rng.gen_range(0..5)));
                    }
                    if rng.gen_bool(0.1) {
                        r["client"] = json!({"v": 1});
                    }
                    responses.push(r);
                }
            }
        }
    }
    // An upload nobody refers to.
    uploads.push(json!({"file_key": "orphan", "submission_id": submission_ids[0], "file_name": "orphan.txt", "size_bytes": 1}));
    fs::write(dir.join("uploads/orphan"), b"o").unwrap();

    write_lines(dir, "submissions.jsonl", &submission_lines, Some(&mut rng));
    write_lines(dir, "responses.jsonl", &responses, Some(&mut rng));
    write_lines(dir, "uploads.jsonl", &uploads, Some(&mut rng));
}

fn answer(rng: &mut StdRng, kind: &str, sid: &str, uploads: &mut Vec<Value>, dir: &Path) -> Value {
    match kind {
        "free_text" => {
            let value = ["yes", "a longer answer", "ünïcödé"][rng.gen_range(0..3)];
            json!([{ "value": value }])
        }
        "multiple_choice" => json!((0..rng.gen_range(1..=3))
            .map(|i| json!({"value": format!("opt{i}")}))
            .collect::<Vec<_>>()),
        "multiple_choice_with_free_text" => json!([{"value": "other", "explanation": "because"}]),
        "free_text_with_unit" => json!([{"value": rng.gen_range(0..50), "unit": "cm"}]),
        _ => {
            let items: Vec<Value> = (0..rng.gen_range(1..=2))
                .map(|_| {
                    let key = format!("k{}", uploads.len());
                    let name = NAMES.choose(rng).unwrap();
                    let bytes = format!("contents of {key}").into_bytes();
                    fs::write(dir.join("uploads").join(&key), &bytes).unwrap();
                    let content_type = CONTENT_TYPES.choose(rng).unwrap();
                    uploads.push(json!({"file_key": key, "submission_id": sid, "file_name": name,
                        "size_bytes": bytes.len(), "content_type": content_type}));
                    json!({"file_key": key, "file_name": name, "file_size_mb": 0.0, "content_type": content_type})
                })
                .collect();
            json!(items)
        }
    }
}

fn write_lines(dir: &Path, file: &str, lines: &[Value], shuffle: Option<&mut StdRng>) {
    let mut texts: Vec<String> = lines.iter().map(Value::to_string).collect();
    if let Some(rng) = shuffle {
        texts.shuffle(rng);
    }
    fs::write(dir.join(file), texts.join("\n") + "\n").unwrap();
}
