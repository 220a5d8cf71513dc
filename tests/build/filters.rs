//! Export filters (used by export jobs): study and time window.

use batch_export::{ExportFilter, ExportOptions};
use serde_json::Value;

use crate::common::*;

fn response_ids(filter: ExportFilter) -> (Vec<String>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    build(&sample_dump(), &out, &ExportOptions::new().filter(filter)).unwrap();
    let mut ids: Vec<String> = jsonl(&out, "responses-by-task.jsonl")
        .iter()
        .flat_map(|t| t["responses"].as_array().unwrap().clone())
        .map(|r| r["response_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let batch: Value = serde_json::from_slice(&entry(&out, "batch.json")).unwrap();
    (ids, batch["export"]["counts"].clone())
}

#[test]
fn study_filter_keeps_that_studys_submissions_only() {
    let (ids, counts) = response_ids(ExportFilter {
        study_id: Some("study-2".into()),
        ..Default::default()
    });
    assert_eq!(ids, ["r-0017", "r-0018"]);
    assert_eq!(counts["submissions"], 1);
    assert_eq!(counts["files"], 1);
}

#[test]
fn time_window_is_from_inclusive_to_exclusive_and_drops_undated_responses() {
    let filter = ExportFilter {
        from: Some("2024-05-01T09:10:00Z".into()),
        to: Some("2024-05-01T09:12:00Z".into()),
        ..Default::default()
    };
    let (ids, _) = response_ids(filter);
    // 09:10:00 is in, 09:12:00 is out; r-0022 has no created_at.
    assert_eq!(ids, ["r-0006", "r-0007", "r-0008"]);
}

#[test]
fn window_compares_instants_not_strings() {
    // r-0024 is 11:30+02:00, that is 09:30Z.
    let filter = ExportFilter {
        from: Some("2024-05-01T09:29:00Z".into()),
        to: Some("2024-05-01T09:31:00Z".into()),
        ..Default::default()
    };
    let (ids, _) = response_ids(filter);
    assert_eq!(ids, ["r-0014", "r-0024"]);
}

#[test]
fn terms_combine_with_and() {
    let filter = ExportFilter {
        study_id: Some("study-1".into()),
        from: Some("2024-05-01T09:30:00Z".into()),
        to: None,
    };
    let (ids, _) = response_ids(filter);
    assert_eq!(ids, ["r-0014", "r-0015", "r-0016", "r-0024"]);
}

#[test]
fn a_window_ending_before_it_starts_is_refused() {
    let dump = batch_export::Dump::open(sample_dump()).unwrap();
    let filter = ExportFilter {
        from: Some("2024-05-02T00:00:00Z".into()),
        to: Some("2024-05-01T00:00:00Z".into()),
        ..ExportFilter::default()
    };
    let options = ExportOptions::new().filter(filter);
    let err = dump
        .export(std::io::Cursor::new(Vec::new()), &options)
        .unwrap_err();
    assert!(
        matches!(err, batch_export::Error::InvalidOption { option: "to", .. }),
        "{err}"
    );
}
