//! Archives of dumps built on the fly: non-ASCII names everywhere, and
//! seeded random dumps. Every reader, `verify` and the README example.

use super::sample::build_verified;
use super::{check_all, dumps, Depth};

#[test]
fn non_ascii_names_read_the_same_in_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dumps::non_ascii(&dir.path().join("dump"));
    let archive = build_verified(&dump, dir.path());
    let manifest = dumps::manifest(&archive, &dump);
    let non_ascii = manifest.keys().filter(|n| !n.is_ascii()).count();
    assert!(
        non_ascii >= 5,
        "expected many non-ASCII names, got {manifest:?}"
    );
    check_all(&archive, &manifest, Depth::Extract);
    dumps::run_readme_example(&archive);
}

#[test]
fn random_dumps_pass_verify_and_every_reader() {
    for seed in [7, 1_234, 98_765] {
        let dir = tempfile::tempdir().unwrap();
        let dump = dumps::random(&dir.path().join("dump"), seed);
        let archive = build_verified(&dump, dir.path());
        let manifest = dumps::manifest(&archive, &dump);
        check_all(&archive, &manifest, Depth::Extract);
        dumps::run_readme_example(&archive);
    }
}

#[test]
fn an_archive_without_responses_still_reads_and_runs_its_example() {
    let dir = tempfile::tempdir().unwrap();
    let mut dump = dumps::DumpWriter::new(&dir.path().join("dump"), "empty");
    dump.instructions
        .push(serde_json::json!({"id": "i1", "type": "free_text", "description": "?"}));
    dump.tasks.push(serde_json::json!({"id": "t1"}));
    dump.submissions
        .push(serde_json::json!({"id": "s1", "participant_id": "p1"}));
    dump.responses.push(serde_json::json!({
        "id": "r1", "submission_id": "s1", "task_id": "t1",
        "response": {"instruction_id": "i1", "type": "no_submission", "answer": []},
    }));
    let dump = dump.finish();
    let archive = build_verified(&dump, dir.path());
    let manifest = dumps::manifest(&archive, &dump);
    assert_eq!(manifest.len(), 4, "only the text entries");
    check_all(&archive, &manifest, Depth::Extract);
    dumps::run_readme_example(&archive);
}
