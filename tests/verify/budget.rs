//! `verify --dump` and the dump check within the memory budget (issue 13):
//! past the budget the dump is built through the spill path into a
//! temporary archive and compared an entry and a line at a time. Good
//! archives pass with every option, each kind of difference is found,
//! a refused dump is refused, and nothing is left in the temporary folder.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use batch_export::verify::{Report, VerifyError, VerifyProblemKind};
use batch_export::{Dump, Error, ExportOptions};

use super::hand_made;
use crate::common::generated_once;

/// The archive's entries, one of them changed by `edit`, written again.
fn rewritten(archive: &[u8], name: &str, edit: impl FnOnce(&str) -> String) -> Vec<u8> {
    rewritten_bytes(archive, name, |bytes| {
        *bytes = edit(std::str::from_utf8(bytes).unwrap()).into_bytes();
    })
}

fn rewritten_bytes(archive: &[u8], name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).unwrap();
    let mut entries = Vec::new();
    let mut edit = Some(edit);
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut data).unwrap();
        if file.name() == name {
            (edit.take().unwrap())(&mut data);
        }
        entries.push((file.name().to_owned(), data));
    }
    assert!(edit.is_none(), "no entry {name}");
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    hand_made(&refs)
}

const BUDGET: u64 = 16 << 20;

/// 60,000 responses (about 17 MB of JSON Lines), past a 16 MiB budget.
fn big_dump() -> &'static Path {
    static DUMP: OnceLock<tempfile::TempDir> = OnceLock::new();
    generated_once(&DUMP, 1_200, 10, 40)
}

fn archive_of(dump: &Path, options: &ExportOptions) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    Dump::open(dump).unwrap().export(&mut out, options).unwrap();
    out.into_inner()
}

/// Verifies `archive` against `dump` within `budget`, checking that the
/// temporary folder is left empty.
fn verified(dump: &Path, archive: &[u8], budget: u64) -> Result<Report, VerifyError> {
    let temp = tempfile::tempdir().unwrap();
    let options = ExportOptions::new()
        .memory_budget(budget)
        .temp_dir(temp.path());
    let report = Dump::verify_archive(dump, Cursor::new(archive), &options);
    assert_eq!(
        crate::common::files_in(temp.path()),
        Vec::<String>::new(),
        "left behind"
    );
    report
}

#[test]
fn archives_pass_against_their_dump_past_the_budget_with_every_option() {
    let variants: [fn() -> ExportOptions; 4] = [
        ExportOptions::new,
        || ExportOptions::new().tables(true),
        || ExportOptions::new().pseudonymise("the operator's key"),
        || ExportOptions::new().include_files(false),
    ];
    for (i, options) in variants.iter().enumerate() {
        let archive = archive_of(big_dump(), &options());
        let report = verified(big_dump(), &archive, BUDGET).unwrap();
        assert!(report.is_ok(), "variant {i}: {report}");
        assert!(report.entries() >= 4, "variant {i}");
    }
}

/// The problems of the dump comparison, as `entry:line: message` lines.
fn content(report: &Report) -> Vec<String> {
    report
        .problems()
        .iter()
        .filter(|p| p.kind == VerifyProblemKind::Content)
        .map(ToString::to_string)
        .collect()
}

#[test]
fn each_kind_of_difference_is_found_past_the_budget() {
    let archive = archive_of(big_dump(), &ExportOptions::new().tables(true));
    let by_task = "responses-by-task.jsonl";

    // One line of a view altered: named by its line and what differs.
    let altered = rewritten(&archive, by_task, |text| {
        let (first, rest) = text.split_once('\n').unwrap();
        let line = first.replacen("\"response_id\":\"", "\"response_id\":\"x", 1);
        assert_ne!(line, first, "{first:.200}");
        format!("{line}\n{rest}")
    });
    let found = content(&verified(big_dump(), &altered, BUDGET).unwrap());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("responses-by-task.jsonl:1: task_id ")
            && found[0].ends_with("differs from the dump in responses"),
        "{found:#?}"
    );
    // The comparison in memory says it otherwise: this was the spill path.
    let in_memory = content(&verified(big_dump(), &altered, u64::MAX).unwrap());
    assert_ne!(in_memory, found);

    // The last line missing, and two lines swapped (of the by-submission
    // view: a by-task line missing makes the archive's own checks fill
    // the problem list).
    let by_submission = "responses-by-submission.jsonl";
    let shortened = rewritten(&archive, by_submission, |text| {
        let body = text.strip_suffix('\n').unwrap();
        format!("{}\n", body.rsplit_once('\n').unwrap().0)
    });
    let in_view = |found: Vec<String>| -> Vec<String> {
        found
            .into_iter()
            .filter(|p| p.starts_with(by_submission))
            .collect()
    };
    let found = in_view(content(&verified(big_dump(), &shortened, BUDGET).unwrap()));
    assert!(
        found.len() == 1 && found[0].contains(": no line for submission_id"),
        "{found:#?}"
    );
    let swapped = rewritten(&archive, by_submission, |text| {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(0, 1);
        lines.iter().map(|l| format!("{l}\n")).collect()
    });
    let found = in_view(content(&verified(big_dump(), &swapped, BUDGET).unwrap()));
    assert!(
        found.len() == 2
            && found[0].contains(":1: holds submission_id")
            && found[1].contains(":2: holds submission_id"),
        "{found:#?}"
    );

    // A table's cell and the README, byte for byte, at the first line
    // that differs; an upload's bytes.
    let table = rewritten(&archive, "responses.csv", |text| {
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        lines[3].push(' ');
        lines.join("\n")
    });
    let found = content(&verified(big_dump(), &table, BUDGET).unwrap());
    let differs = "responses.csv:4: differs from the table the dump gives";
    assert!(found.iter().any(|p| p == differs), "{found:#?}");
    let readme = rewritten(&archive, "README.md", |text| format!("{text}more\n"));
    let found = content(&verified(big_dump(), &readme, BUDGET).unwrap());
    assert!(
        found.len() == 1 && found[0].starts_with("README.md:"),
        "{found:#?}"
    );
    let zip = zip::ZipArchive::new(Cursor::new(&archive)).unwrap();
    let upload = zip
        .file_names()
        .find(|n| n.starts_with("files/"))
        .unwrap()
        .to_owned();
    let bytes = rewritten_bytes(&archive, &upload, |bytes| bytes[0] ^= 1);
    let found = content(&verified(big_dump(), &bytes, BUDGET).unwrap());
    assert_eq!(
        found,
        [format!(
            "{upload}: the bytes differ from the upload the dump gives"
        )]
    );
}

#[test]
fn a_refused_dump_past_the_budget_is_refused_and_checked_within_it() {
    let dir = tempfile::tempdir().unwrap();
    crate::common::copy_dir(big_dump(), dir.path());
    let responses = dir.path().join("responses.jsonl");
    let mut text = std::fs::read_to_string(&responses).unwrap();
    text.push_str("{not json\n");
    std::fs::write(&responses, text).unwrap();

    let archive = archive_of(big_dump(), &ExportOptions::new());
    let refused = verified(dir.path(), &archive, BUDGET);
    let Err(VerifyError::Expected(Error::Refused(problems))) = refused else {
        panic!("the broken dump is refused: {refused:?}");
    };
    let in_memory = Dump::open(dir.path()).unwrap().check().unwrap_err();
    let Error::Refused(expected) = in_memory else {
        panic!("{in_memory}");
    };
    assert_eq!(problems, expected);

    // The check alone, within the budget and in memory: the same problems.
    let temp = tempfile::tempdir().unwrap();
    let options = ExportOptions::new()
        .memory_budget(BUDGET)
        .temp_dir(temp.path());
    let checked = Dump::check_within(dir.path(), &options).unwrap_err();
    assert!(
        matches!(&checked, Error::Refused(p) if *p == expected),
        "{checked}"
    );
    assert_eq!(crate::common::files_in(temp.path()), Vec::<String>::new());
    Dump::check_within(big_dump(), &options).unwrap();
}
