//! The embedding API: records and blobs handed over by a backend, any
//! `Write + Seek` sink, a blob source that returns short reads, options.

use std::io::{self, Cursor, Read};

use batch_export::model::Upload;
use batch_export::{export, BlobSource, DirBlobSource, Dump, Error, ExportOptions};

use crate::common::*;

#[test]
fn records_from_the_api_give_the_same_archive_as_the_dump() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    build(&sample_dump(), &out, &ExportOptions::new()).unwrap();

    let dump = Dump::open(sample_dump()).unwrap();
    let records = dump.records().unwrap().clone();
    let mut sink = Cursor::new(Vec::new());
    let summary = export(
        &records,
        &DirBlobSource::new(sample_dump()),
        &mut sink,
        &ExportOptions::new(),
    )
    .unwrap();
    assert_eq!(sink.into_inner(), std::fs::read(&out).unwrap());
    assert_eq!(summary.counts.responses, 20);
    assert_eq!(
        summary.archive_bytes,
        std::fs::metadata(&out).unwrap().len()
    );
}

/// Hands out at most 7 bytes per read, to prove nothing assumes full reads.
struct Trickle(DirBlobSource);

struct TrickleReader<'a>(Box<dyn Read + Send + 'a>);

impl Read for TrickleReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(7);
        self.0.read(&mut buf[..n])
    }
}

impl BlobSource for Trickle {
    fn open(&self, upload: &Upload) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(TrickleReader(self.0.open(upload)?)))
    }
}

#[test]
fn short_reads_from_the_blob_source_give_the_same_bytes() {
    let dump = Dump::open(sample_dump()).unwrap();
    let records = dump.records().unwrap();
    let mut normal = Cursor::new(Vec::new());
    export(records, &dump.blobs(), &mut normal, &ExportOptions::new()).unwrap();
    let mut trickled = Cursor::new(Vec::new());
    export(
        records,
        &Trickle(dump.blobs()),
        &mut trickled,
        &ExportOptions::new(),
    )
    .unwrap();
    assert_eq!(normal.into_inner(), trickled.into_inner());
}

#[test]
fn api_records_are_validated_with_their_positions() {
    let dump = Dump::open(sample_dump()).unwrap();
    let mut records = dump.records().unwrap().clone();
    records.responses[4].task_id = "t-missing".into();
    let err = export(
        &records,
        &dump.blobs(),
        Cursor::new(Vec::new()),
        &ExportOptions::new(),
    )
    .unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.line, Some(5), "API records are located by position");
    assert_eq!(problem.field.as_deref(), Some("task_id"));
}

#[test]
fn invalid_options_are_refused_before_any_work() {
    let dump = Dump::open(sample_dump()).unwrap();
    for options in [
        ExportOptions::new().level(10),
        ExportOptions::new().threads(0),
        ExportOptions::new().generated_at("yesterday"),
        ExportOptions::new().filter(batch_export::ExportFilter {
            from: Some("May 1st".into()),
            ..Default::default()
        }),
    ] {
        let err = dump.export(Cursor::new(Vec::new()), &options).unwrap_err();
        assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    }
}

#[test]
fn a_cancelled_build_stops_and_leaves_nothing() {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    let err = build(
        &sample_dump(),
        &out,
        &ExportOptions::new().cancel_flag(flag),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn level_zero_stores_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.zip");
    build(&sample_dump(), &out, &ExportOptions::new().level(0)).unwrap();
    assert!(central_directory(&out).iter().all(|e| e.method == 0));
    assert_eq!(read_entries(&out).len(), 9);
}
