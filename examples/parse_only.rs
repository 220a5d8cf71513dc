fn main() {
    let dir = std::env::args().nth(1).expect("DUMP");
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let dump = batch_export::Dump::open(&dir).unwrap();
        eprintln!("open {:?}", t.elapsed());
        std::mem::forget(dump);
    }
}
