//! The export-job service, end to end: a real server on 127.0.0.1:0, real
//! HTTP, a manual clock (so links and exports age without sleeping) and,
//! where a test must catch a job mid-build, a builder held at a gate.

mod api;
mod budget;
mod client;
mod client_faults;
mod hostile;
mod jobs;
mod links;
mod logs;
mod openapi;
mod options;
mod process;
mod restarts;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use batch_export::http::{self, Service, Signer, TokenEntry, TokenFile, Tokens};
use batch_export::jobs::{
    BuildJob, Builder, Catalog, DumpBuilder, Jobs, JobsConfig, ManualClock, ReusePolicy,
};
use serde_json::Value;
use tempfile::TempDir;

use crate::common;

/// The sample batch's id.
pub const BATCH: &str = "batch-7f3a";
/// A token for the sample batch's workspace.
pub const TOKEN: &str = "tok-ecology";
/// A valid token for another workspace only.
pub const OTHER_TOKEN: &str = "tok-other";

/// The time the manual clock starts at.
pub fn start_time() -> time::OffsetDateTime {
    time::macros::datetime!(2024-06-01 12:00:00 UTC)
}

/// A data folder holding a copy of the sample dump, and a state folder.
pub struct Dirs {
    pub data: TempDir,
    pub state: TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        let data = tempfile::tempdir().unwrap();
        common::copy_dir(&common::sample_dump(), &data.path().join("sample"));
        Dirs {
            data,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// The copy of the sample dump.
    pub fn dump(&self) -> PathBuf {
        self.data.path().join("sample")
    }
}

/// A builder that waits at a gate until it is opened (or the engine shuts
/// down), then builds for real.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
    /// How many builds reached the gate.
    pub arrived: AtomicUsize,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    /// Blocks until `n` builds reached the gate.
    pub fn wait_arrivals(&self, n: usize) {
        let mut open = self.open.lock().unwrap();
        while self.arrived.load(Ordering::SeqCst) < n {
            open = self.changed.wait(open).unwrap();
        }
    }
}

impl Builder for Gate {
    fn build(&self, job: &BuildJob<'_>) -> Result<(), batch_export::Error> {
        let mut open = self.open.lock().unwrap();
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_all();
        while !*open {
            if job.cancel.load(Ordering::SeqCst) {
                return Err(batch_export::Error::Cancelled);
            }
            // The cancel flag is not a condition variable: look again soon.
            open = self
                .changed
                .wait_timeout(open, Duration::from_millis(10))
                .unwrap()
                .0;
        }
        drop(open);
        DumpBuilder.build(job)
    }
}

/// How a test server is set up.
pub struct Options {
    pub builder: Arc<dyn Builder>,
    pub max_attempts: u32,
    pub reuse: ReusePolicy,
    pub pseudonym_key: Option<Vec<u8>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            builder: Arc::new(DumpBuilder),
            max_attempts: 3,
            reuse: ReusePolicy::Recent,
            pseudonym_key: None,
        }
    }
}

/// A running server; dropping it shuts it down (and its job engine).
pub struct TestServer {
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub jobs: Jobs,
    pub state: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub fn start(dirs: &Dirs) -> TestServer {
        TestServer::start_with(dirs, Options::default())
    }

    pub fn start_with(dirs: &Dirs, options: Options) -> TestServer {
        let clock = Arc::new(ManualClock::new(start_time()));
        let mut config = JobsConfig::new(dirs.state.path())
            .build_threads(1)
            .max_attempts(options.max_attempts)
            .reuse(options.reuse);
        if let Some(key) = &options.pseudonym_key {
            config = config.pseudonym_key(key);
        }
        let jobs = Jobs::open(config, options.builder, clock.clone()).unwrap();
        let tokens = Tokens::from_file(&TokenFile {
            tokens: vec![token(TOKEN, "ws-ecology"), token(OTHER_TOKEN, "ws-other")],
        });
        let signer = Signer::load_or_create(&dirs.state.path().join("signing.key")).unwrap();
        let service = Service::new(jobs.clone(), Catalog::new(dirs.data.path()), tokens, signer);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(http::serve(listener, service, async move {
            let _ = rx.await;
        }));
        TestServer {
            base,
            clock,
            jobs,
            state: dirs.state.path().to_path_buf(),
            runtime: Some(runtime),
            shutdown: Some(tx),
            served: Some(served),
        }
    }

    /// The export endpoint of a batch.
    pub fn export_url(&self, batch: &str) -> String {
        format!(
            "{}/api/v1/data-collection/batches/{batch}/export",
            self.base
        )
    }

    pub fn post(&self, query: &str) -> Answer {
        call(
            "POST",
            &format!("{}{query}", self.export_url(BATCH)),
            Some(TOKEN),
        )
    }

    pub fn status(&self, export_id: &str) -> Answer {
        call(
            "GET",
            &format!("{}/{export_id}", self.export_url(BATCH)),
            Some(TOKEN),
        )
    }

    /// Polls a job until it is no longer generating.
    pub fn wait(&self, export_id: &str) -> Value {
        // A bound so a broken engine fails the test instead of hanging it;
        // the sample builds in milliseconds.
        for _ in 0..3000 {
            let answer = self.status(export_id);
            assert_eq!(answer.status, 200, "{}", answer.text);
            if answer.json["status"] != "generating" {
                return answer.json;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("export {export_id} still generating after 30s");
    }

    /// POSTs with `query`, expects 202 and waits for the job: its id and
    /// final status.
    pub fn export(&self, query: &str) -> (String, Value) {
        let answer = self.post(query);
        assert_eq!(answer.status, 202, "{}", answer.text);
        let id = answer.json["export_id"].as_str().unwrap().to_owned();
        let status = self.wait(&id);
        (id, status)
    }

    pub fn archive(&self, export_id: &str) -> PathBuf {
        self.state.join("exports").join(format!("{export_id}.zip"))
    }

    /// Shuts the server down and waits until it and its engine stopped.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let (Some(runtime), Some(served)) = (self.runtime.take(), self.served.take()) {
            runtime.block_on(served).unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn token(token: &str, workspace: &str) -> TokenEntry {
    TokenEntry {
        name: String::new(),
        token: token.to_owned(),
        workspaces: vec![workspace.to_owned()],
    }
}

/// An HTTP answer, whatever its status.
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub headers: Vec<(String, String)>,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn call(method: &str, url: &str, token: Option<&str>) -> Answer {
    call_with(method, url, token, &[])
}

pub fn call_with(method: &str, url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Answer {
    let mut request = ureq::request(method, url);
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Token {token}"));
    }
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or_default().to_owned();
            (n, v)
        })
        .collect();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        text,
        json,
        headers,
        bytes,
    }
}

/// Entry names of an archive.
pub fn entry_names(archive: &Path) -> Vec<String> {
    common::read_entries(archive)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}
