//! Times the stages of a build one by one on a dump, with the CPU time and
//! peak memory after each: a profiling aid.
//!
//! `cargo run --release --example phases -- DUMP_DIR`

use std::time::Instant;

use batch_export::bench_support;
use batch_export::{Dump, ExportOptions};

/// User plus system CPU seconds of this process so far.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory so far, MB.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn lap(name: &str, t: &mut (Instant, f64)) {
    eprintln!(
        "{name:18} wall {:.2}s cpu {:.2}s peak {} MB",
        t.0.elapsed().as_secs_f64(),
        cpu() - t.1,
        peak_rss_mb()
    );
    *t = (Instant::now(), cpu());
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: phases DUMP_DIR");
    let mut t = (Instant::now(), cpu());
    let dump = Dump::open(&dir).expect("open the dump");
    lap("open", &mut t);
    dump.check().expect("a valid dump");
    lap("check", &mut t);
    let records = dump.records().expect("records");
    let options = ExportOptions::new();
    bench_support::pivot_only(records, &options).expect("pivot");
    lap("pivot", &mut t);
    let (by_submission, by_task) = bench_support::views(records, &options).expect("views");
    lap("check+pivot+views", &mut t);
    drop(by_task);
    for level in [1, 2, 3, 6] {
        let deflated = bench_support::deflate(&by_submission, level);
        lap(
            &format!("deflate {level}: {} MB", deflated.len() >> 20),
            &mut t,
        );
    }
}
