//! The memory budget (issue 13): a dump past it is built by spilling sorted
//! runs to disk, and nothing shows it but the memory used. Same SHA-256
//! at 16 MiB, at a middle budget and unlimited, whatever the thread count
//! and line order; the same refusal; no temporary file left behind.

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use batch_export::{Dump, Error, ExportFilter, ExportOptions, Progress, ProgressEvent};
use sha2::{Digest, Sha256};

use crate::common::*;

const MIB: u64 = 1 << 20;

/// 60,000 responses (about 17 MB of JSON Lines): several runs at 16 MiB,
/// fewer at 24 MiB, and by-task lines longer than a merge window.
fn big_dump() -> &'static Path {
    static DUMP: OnceLock<tempfile::TempDir> = OnceLock::new();
    generated_once(&DUMP, 1_200, 10, 60)
}

/// Builds with `Dump::build` into a fresh directory, its temporary runs
/// in a directory of their own; returns the archive's SHA-256 and checks
/// that no run is left.
fn built(dump: &Path, options: ExportOptions) -> Result<String, Error> {
    let out = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let archive = out.path().join("a.zip");
    let options = options
        .generated_at("2024-06-01T00:00:00Z")
        .temp_dir(temp.path());
    let result = Dump::build(dump, &archive, &options);
    assert_eq!(
        files_in(temp.path()),
        Vec::<String>::new(),
        "runs left behind"
    );
    let listed = files_in(out.path());
    result.map(|_| {
        assert_eq!(listed, ["a.zip"]);
        hex(&Sha256::digest(fs::read(&archive).unwrap()))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn in_memory(dump: &Path, options: ExportOptions) -> String {
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("a.zip");
    build(
        dump,
        &archive,
        &options.generated_at("2024-06-01T00:00:00Z"),
    )
    .unwrap();
    hex(&Sha256::digest(fs::read(&archive).unwrap()))
}

#[test]
fn one_sha256_at_16_mib_a_middle_budget_and_unlimited() {
    let dump = big_dump();
    let reference = in_memory(dump, ExportOptions::new());
    for budget in [16 * MIB, 24 * MIB, u64::MAX] {
        let sha = built(dump, ExportOptions::new().memory_budget(budget)).unwrap();
        assert_eq!(sha, reference, "budget {budget}");
    }
}

#[test]
fn spilled_bytes_do_not_depend_on_threads_or_line_order() {
    let dump = big_dump();
    let reference = in_memory(dump, ExportOptions::new());
    for threads in [1, 3] {
        let options = ExportOptions::new()
            .memory_budget(16 * MIB)
            .threads(threads);
        assert_eq!(
            built(dump, options).unwrap(),
            reference,
            "{threads} threads"
        );
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dump, copy.path());
    for file in ["submissions.jsonl", "responses.jsonl", "uploads.jsonl"] {
        reorder_lines(&copy.path().join(file), |lines| {
            lines.reverse();
            let third = lines.len() / 3;
            lines.rotate_left(third);
        });
    }
    let options = ExportOptions::new().memory_budget(16 * MIB);
    assert_eq!(built(copy.path(), options).unwrap(), reference);
}

#[test]
fn every_option_gives_the_same_bytes_past_the_budget() {
    let dump = big_dump();
    let variants: [fn() -> ExportOptions; 5] = [
        || ExportOptions::new().tables(true),
        || ExportOptions::new().pseudonymise("a key"),
        || ExportOptions::new().include_files(false).level(0),
        || ExportOptions::new().level(6),
        || {
            let filter = ExportFilter {
                from: Some("2024-05-05T00:00:00Z".to_owned()),
                ..ExportFilter::default()
            };
            ExportOptions::new().filter(filter)
        },
    ];
    for (i, options) in variants.iter().enumerate() {
        let reference = in_memory(dump, options());
        let spilled = built(dump, options().memory_budget(16 * MIB)).unwrap();
        assert_eq!(spilled, reference, "variant {i}");
    }
}

/// The dump with refused lines appended: repeated ids (more than the
/// problem cap), a dangling submission, a line that is not JSON.
fn broken_dump(dir: &Path) {
    copy_dir(big_dump(), dir);
    let path = dir.join("responses.jsonl");
    let mut text = fs::read_to_string(&path).unwrap();
    let first: Vec<String> = text.lines().take(250).map(str::to_owned).collect();
    text.push_str("{not json\n");
    for line in first.iter().rev() {
        text.push_str(line);
        text.push('\n');
    }
    let dangling = first[0]
        .replacen("\"id\": \"", "\"id\": \"other-", 1)
        .replacen("\"submission_id\": \"", "\"submission_id\": \"nobody-", 1);
    text.push_str(&dangling);
    text.push('\n');
    fs::write(&path, text).unwrap();
}

#[test]
fn a_refusal_lists_the_same_problems_past_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    broken_dump(dir.path());
    let out = tempfile::tempdir().unwrap();
    let in_memory = build(dir.path(), &out.path().join("a.zip"), &ExportOptions::new());
    let Err(Error::Refused(expected)) = in_memory else {
        panic!("the broken dump is refused: {in_memory:?}");
    };
    assert!(expected.total() > batch_export::error::PROBLEM_CAP);
    let spilled = built(dir.path(), ExportOptions::new().memory_budget(16 * MIB));
    let Err(Error::Refused(problems)) = spilled else {
        panic!("refused past the budget too: {spilled:?}");
    };
    assert_eq!(problems, expected);
    // The line that is not JSON, 250 repeated ids, the dangling submission.
    assert_eq!(problems.total(), 252);
}

#[test]
fn a_cancelled_or_failed_build_past_the_budget_leaves_nothing() {
    let flag = Arc::new(AtomicBool::new(true));
    let options = ExportOptions::new()
        .memory_budget(16 * MIB)
        .cancel_flag(flag);
    assert!(matches!(built(big_dump(), options), Err(Error::Cancelled)));

    // Upload bytes missing: found only after the views are written.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(big_dump(), dir.path());
    let uploads = dir.path().join("uploads");
    let last = files_in(&uploads).pop().unwrap();
    fs::remove_file(uploads.join(last)).unwrap();
    let failed = built(dir.path(), ExportOptions::new().memory_budget(16 * MIB));
    assert!(failed.is_err(), "{failed:?}");
}

#[test]
fn a_budget_below_16_mib_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let options = ExportOptions::new().memory_budget(MIB);
    let err = Dump::build(sample_dump(), out.path().join("a.zip"), &options).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "memory_budget",
                ..
            }
        ),
        "{err}"
    );
}

/// The progress events of one build, in order.
#[derive(Default)]
struct Events(Mutex<Vec<ProgressEvent>>);

impl Progress for Events {
    fn event(&self, event: ProgressEvent) {
        self.0.lock().unwrap().push(event);
    }
}

#[test]
fn a_build_reports_spilling_first_and_only_past_its_budget() {
    for (budget, spills) in [(16 * MIB, true), (u64::MAX, false)] {
        let events = Arc::new(Events::default());
        let options = ExportOptions::new()
            .memory_budget(budget)
            .progress(events.clone());
        built(big_dump(), options).unwrap();
        let events = events.0.lock().unwrap();
        let spilling: Vec<usize> = (0..events.len())
            .filter(|&i| matches!(events[i], ProgressEvent::Spilling { .. }))
            .collect();
        if !spills {
            assert!(spilling.is_empty(), "{events:?}");
            continue;
        }
        assert_eq!(spilling, [0], "{events:?}");
        let ProgressEvent::Spilling {
            estimated_bytes,
            budget_bytes,
        } = events[0]
        else {
            unreachable!()
        };
        assert_eq!(budget_bytes, budget);
        assert!(estimated_bytes > budget, "{estimated_bytes}");
    }
}

#[test]
fn views_only_past_the_budget_writes_the_views_of_a_build_in_memory() {
    let write = |budget: u64| {
        let dir = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        let options = ExportOptions::new()
            .memory_budget(budget)
            .temp_dir(temp.path());
        let dump =
            batch_export::bench_support::write_views_of(big_dump(), dir.path(), &options).unwrap();
        assert_eq!(dump.is_none(), budget == 16 * MIB);
        assert_eq!(files_in(temp.path()), Vec::<String>::new());
        let names = ["responses-by-submission.jsonl", "responses-by-task.jsonl"];
        assert_eq!(files_in(dir.path()), names);
        names.map(|name| fs::read(dir.path().join(name)).unwrap())
    };
    let spilled = write(16 * MIB);
    let in_memory = write(u64::MAX);
    for (spilled, in_memory) in spilled.iter().zip(&in_memory) {
        assert!(spilled.len() > 1 << 20);
        assert!(spilled == in_memory, "the views differ");
    }
}

/// A dump in a bucket past the budget (an in-memory object store standing
/// in for S3): its responses are streamed from the bucket into the runs.
#[cfg(feature = "s3")]
#[test]
fn a_dump_in_a_bucket_past_the_budget_gives_the_bytes_of_memory() {
    use batch_export::s3::{S3Dump, S3Location};
    use object_store::{path::Path as ObjectPath, ObjectStoreExt};

    let store = Arc::new(object_store::memory::InMemory::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for entry in walkdir::WalkDir::new(big_dump()) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry.path().strip_prefix(big_dump()).unwrap();
        let key = ObjectPath::from(format!("d/{}", relative.to_string_lossy()));
        let bytes = fs::read(entry.path()).unwrap();
        runtime.block_on(store.put(&key, bytes.into())).unwrap();
    }
    let dump = S3Dump::new(store, S3Location::parse("s3://b/d").unwrap());

    let out = tempfile::tempdir().unwrap();
    let spilled = out.path().join("spilled.zip");
    let events = Arc::new(Events::default());
    let options = ExportOptions::new()
        .generated_at("2024-06-01T00:00:00Z")
        .memory_budget(16 * MIB)
        .progress(events.clone());
    dump.export_to_path(&spilled, &options).unwrap();
    let spills = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, ProgressEvent::Spilling { .. }))
        .count();
    assert_eq!(spills, 1);
    assert_eq!(files_in(out.path()), ["spilled.zip"]);
    let sha = hex(&Sha256::digest(fs::read(&spilled).unwrap()));
    assert_eq!(sha, in_memory(big_dump(), ExportOptions::new()));
}
