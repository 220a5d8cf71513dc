//! Load test of the export-job service's status endpoint (not run in CI).
//!
//! Starts the service in-process on 127.0.0.1:0 over a copy of the sample
//! dump, completes one export, then lets N concurrent pollers (default 50)
//! hammer `GET .../export/{export_id}` for a bounded time (default 10 s,
//! at most 60). Reports requests per second and p50/p99 latency; exits
//! non-zero on any wrong answer or 5xx.
//!
//! ```sh
//! cargo run --release --example load_status -- [POLLERS] [SECONDS]
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch_export::http::{self, Service, Signer, TokenEntry, TokenFile, Tokens};
use batch_export::jobs::{Catalog, DumpBuilder, Jobs, JobsConfig, SystemClock};

const TOKEN: &str = "load-test-token";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pollers: usize = args.next().map_or(Ok(50), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let duration = Duration::from_secs(seconds.min(60));

    let data = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-batch"),
        &data.path().join("sample"),
    )?;
    let jobs = Jobs::open(
        JobsConfig::new(state.path()),
        Arc::new(DumpBuilder),
        Arc::new(SystemClock),
    )?;
    let tokens = Tokens::from_file(&TokenFile {
        tokens: vec![TokenEntry {
            name: "load".into(),
            token: TOKEN.into(),
            workspaces: vec!["*".into()],
        }],
    });
    let signer = Signer::load_or_create(&state.path().join("signing.key"))?;
    let service = Service::new(jobs, Catalog::new(data.path()), tokens, signer);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let base = format!(
        "http://{}/api/v1/data-collection/batches/batch-7f3a/export",
        listener.local_addr()?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(http::serve(listener, service, async move {
        let _ = stopped.await;
    }));

    let auth = format!("Token {TOKEN}");
    let posted: serde_json::Value = serde_json::from_reader(
        ureq::post(&base)
            .set("Authorization", &auth)
            .call()?
            .into_reader(),
    )?;
    let export_id = posted["export_id"]
        .as_str()
        .ok_or("no export_id")?
        .to_owned();
    let status_url = format!("{base}/{export_id}");
    loop {
        let status: serde_json::Value = serde_json::from_reader(
            ureq::get(&status_url)
                .set("Authorization", &auth)
                .call()?
                .into_reader(),
        )?;
        if status["status"] == "complete" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let started = Instant::now();
    let workers: Vec<_> = (0..pollers)
        .map(|_| {
            let (url, auth, id) = (status_url.clone(), auth.clone(), export_id.clone());
            std::thread::spawn(move || poll(&url, &auth, &id, started + duration))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut wrong = 0usize;
    for worker in workers {
        let (mut l, w) = worker.join().map_err(|_| "a poller panicked")?;
        latencies.append(&mut l);
        wrong += w;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    runtime.block_on(served)??;

    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "{pollers} pollers, {elapsed:.1}s: {} requests, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {wrong} wrong or 5xx",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    if wrong > 0 {
        return Err(format!("{wrong} wrong answers").into());
    }
    Ok(())
}

/// Polls until `until`; returns each request's latency and the count of
/// answers that were not a 200 naming this complete export with a link.
fn poll(url: &str, auth: &str, export_id: &str, until: Instant) -> (Vec<Duration>, usize) {
    let agent = ureq::AgentBuilder::new().build();
    let (mut latencies, mut wrong) = (Vec::new(), 0);
    while Instant::now() < until {
        let sent = Instant::now();
        let answer = agent.get(url).set("Authorization", auth).call();
        let ok = match answer {
            Ok(response) => serde_json::from_reader::<_, serde_json::Value>(response.into_reader())
                .is_ok_and(|s| {
                    s["status"] == "complete" && s["export_id"] == export_id && s["url"].is_string()
                }),
            Err(_) => false,
        };
        latencies.push(sent.elapsed());
        wrong += usize::from(!ok);
    }
    (latencies, wrong)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
