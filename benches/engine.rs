//! Criterion benches of the engine's stages on a small generated dump:
//! parsing, pivot, serialisation, compression and a whole build. A few
//! minutes in total; the comparisons with other tools are in compare.sh.

use std::io::Cursor;
use std::time::Duration;

use batch_export::bench_support;
use batch_export::synth::{generate, SynthOptions};
use batch_export::{Dump, ExportOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// 10,000 responses and 300 uploads of up to 64 KB: big enough to show
/// parallel work, small enough for many samples.
fn dump_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SynthOptions {
        submissions: 200,
        tasks: 10,
        instructions: 5,
        uploads: 300,
        upload_max_bytes: 64 << 10,
        ..SynthOptions::default()
    };
    generate(dir.path(), &options).expect("generate the dump");
    dir
}

fn stages(c: &mut Criterion) {
    let dir = dump_dir();
    let options = ExportOptions::new().generated_at("2024-06-01T00:00:00Z");
    let responses_bytes = std::fs::metadata(dir.path().join("responses.jsonl"))
        .expect("responses.jsonl")
        .len();

    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Bytes(responses_bytes));
    group.bench_function("parse", |b| {
        b.iter(|| Dump::open(dir.path()).expect("open"))
    });
    let dump = Dump::open(dir.path()).expect("open");
    let records = dump.records().expect("records");
    group.bench_function("check", |b| b.iter(|| dump.check().expect("valid")));
    group.bench_function("pivot", |b| {
        b.iter(|| bench_support::pivot_only(records, &options).expect("pivot"))
    });
    group.bench_function("check+pivot+serialise", |b| {
        b.iter(|| bench_support::views(records, &options).expect("views"))
    });
    group.bench_function("build", |b| {
        b.iter(|| {
            let mut out = Cursor::new(Vec::new());
            dump.export(&mut out, &options).expect("build");
            out
        })
    });
    group.finish();

    let (by_submission, _) = bench_support::views(records, &options).expect("views");
    let mut group = c.benchmark_group("deflate");
    group.throughput(Throughput::Bytes(by_submission.len() as u64));
    for level in [1, 2, 3, 6] {
        group.bench_with_input(BenchmarkId::from_parameter(level), &level, |b, &level| {
            b.iter(|| bench_support::deflate(&by_submission, level))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = stages
}
criterion_main!(benches);
