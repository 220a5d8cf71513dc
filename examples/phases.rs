//! Times the stages of a build one by one on a dump: a profiling aid.
use std::time::Instant;
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn lap(name: &str, t: &mut (Instant, f64)) {
    eprintln!(
        "{name:10} wall {:.2}s cpu {:.2}s",
        t.0.elapsed().as_secs_f64(),
        cpu() - t.1
    );
    *t = (Instant::now(), cpu());
}
fn main() {
    let dir = std::env::args().nth(1).expect("DUMP");
    let mut t = (Instant::now(), cpu());
    let dump = batch_export::Dump::open(&dir).unwrap();
    lap("open", &mut t);
    dump.check().unwrap();
    lap("check", &mut t);
    let records = dump.records().unwrap();
    let options = batch_export::ExportOptions::new();
    batch_export::bench_support::pivot_only(records, &options).unwrap();
    lap("pivot", &mut t);
    let (a, _b) = batch_export::bench_support::views(records, &options).unwrap();
    lap("chk+piv+views", &mut t);
    for level in [1, 2, 3, 6] {
        let z = batch_export::bench_support::deflate(&a, level);
        lap(&format!("deflate{level} {}MB", z.len() >> 20), &mut t);
    }
}
