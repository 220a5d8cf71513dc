//! Several processes of the real binary on one PostgreSQL: `serve
//! --workers 0` answering the API, `worker` processes building. Every
//! process is killed when its guard drops, also when a test fails.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use batch_export::ExportOptions;
use serde_json::Value;

use super::servers;
use crate::common;
use crate::service::{call, BATCH, TOKEN};

/// A child process, killed on drop; its stderr is collected line by line.
pub(super) struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts the binary with `args` and these environment variables.
    pub(super) fn start_env(args: &[&str], env: &[(String, String)]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_batch-export"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Proc { child, lines }
    }

    /// The first line containing `needle`, waiting up to 30 s for it.
    pub(super) fn wait_line(&self, needle: &str) -> String {
        self.wait_all(&[needle])
    }

    /// The first line containing every needle, waiting up to 30 s for it.
    pub(super) fn wait_all(&self, needles: &[&str]) -> String {
        for _ in 0..1500 {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no line with {needles:?} in:\n{}",
            self.lines.lock().unwrap().join("\n")
        );
    }

    pub(super) fn has_all(&self, needles: &[&str]) -> bool {
        let lines = self.lines.lock().unwrap();
        lines.iter().any(|l| needles.iter().all(|n| l.contains(n)))
    }

    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A data folder with the sample dump, a shared state folder (signing
/// key, tokens, archives) and a fresh PostgreSQL database; `extra`
/// arguments and `env` variables go to every process.
pub(super) struct Deployment {
    pub(super) data: tempfile::TempDir,
    pub(super) state: tempfile::TempDir,
    store: String,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl Deployment {
    pub(super) fn new() -> Option<Deployment> {
        let store = servers::postgres()?.fresh_database();
        let data = tempfile::tempdir().unwrap();
        common::copy_dir(&common::sample_dump(), &data.path().join("sample"));
        let state = tempfile::tempdir().unwrap();
        let tokens = serde_json::json!({"tokens": [
            {"name": "test", "token": TOKEN, "workspaces": ["ws-ecology", "ws-synth"]}
        ]});
        std::fs::write(state.path().join("tokens.json"), tokens.to_string()).unwrap();
        Some(Deployment {
            data,
            state,
            store,
            extra: Vec::new(),
            env: Vec::new(),
        })
    }

    /// The same deployment, with `extra` arguments and `env` variables for
    /// every process.
    pub(super) fn with(mut self, extra: &[&str], env: &[(&str, &str)]) -> Deployment {
        self.extra.extend(extra.iter().map(|s| s.to_string()));
        self.env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    fn common_args(&self) -> Vec<String> {
        vec![
            "--data".into(),
            self.data.path().display().to_string(),
            "--state".into(),
            self.state.path().display().to_string(),
            "--store".into(),
            self.store.clone(),
        ]
        .into_iter()
        .chain(self.extra.iter().cloned())
        .collect()
    }

    /// An API process (no builds); returns it and its base URL.
    pub(super) fn api(&self) -> (Proc, String) {
        self.api_with(&[])
    }

    /// An API process with `extra` arguments.
    pub(super) fn api_with(&self, extra: &[&str]) -> (Proc, String) {
        let mut args = vec!["serve".to_owned()];
        args.extend(self.common_args());
        args.extend(["--workers", "0", "--listen", "127.0.0.1:0"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::start_env(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &self.env,
        );
        let line = proc.wait_line("serving http://");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .trim_end_matches("/api/v1/data-collection/")
            .to_owned();
        (proc, base)
    }

    pub(super) fn worker(&self, extra: &[&str]) -> Proc {
        let mut args = vec!["worker".to_owned()];
        args.extend(self.common_args());
        args.extend(["--lease-seconds", "2", "--poll-ms", "100"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::start_env(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &self.env,
        );
        proc.wait_line("worker building exports");
        proc
    }

    fn exports(&self) -> PathBuf {
        self.state.path().join("exports")
    }

    /// The archive `build` makes of the same dump.
    pub(super) fn reference(&self) -> Vec<u8> {
        let out = self.state.path().join("reference.zip");
        common::build(
            &self.data.path().join("sample"),
            &out,
            &ExportOptions::new(),
        )
        .unwrap();
        std::fs::read(out).unwrap()
    }
}

pub(super) fn export_url(base: &str) -> String {
    format!("{base}/api/v1/data-collection/batches/{BATCH}/export")
}

/// Polls a job through one API until it is no longer generating.
/// 100 POSTs for one batch, released together and split between two APIs,
/// must all answer with one export id: returns it.
pub(super) fn one_job_from_concurrent_posts(base1: &str, base2: &str) -> String {
    let barrier = Arc::new(Barrier::new(100));
    let posts: Vec<_> = (0..100)
        .map(|n| {
            let url = export_url(if n % 2 == 0 { base1 } else { base2 });
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                call("POST", &url, Some(TOKEN))
            })
        })
        .collect();
    let ids: BTreeSet<String> = posts
        .into_iter()
        .map(|post| {
            let answer = post.join().unwrap();
            // 200 once a worker already finished it: the same job either way.
            assert!(matches!(answer.status, 200 | 202), "{}", answer.text);
            answer.json["export_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap()
}

pub(super) fn wait_done(base: &str, export_id: &str) -> Value {
    for _ in 0..600 {
        let answer = call(
            "GET",
            &format!("{}/{export_id}", export_url(base)),
            Some(TOKEN),
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
        if answer.json["status"] != "generating" {
            return answer.json;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("export {export_id} still generating after 30 s");
}

#[test]
fn two_apis_and_two_workers_share_one_queue() {
    let Some(deployment) = Deployment::new() else {
        return;
    };
    let (_api1, base1) = deployment.api();
    let (_api2, base2) = deployment.api();
    let workers = [deployment.worker(&[]), deployment.worker(&[])];

    let id = one_job_from_concurrent_posts(&base1, &base2);

    let reference = deployment.reference();
    for base in [&base1, &base2] {
        let status = wait_done(base, &id);
        assert_eq!(status["status"], "complete", "{status}");
        let download = call("GET", status["url"].as_str().unwrap(), None);
        assert_eq!(download.status, 200);
        assert!(download.bytes == reference, "byte-identical to build");
    }
    let took = format!("export_id={id}");
    let builders = workers
        .iter()
        .filter(|w| w.has_all(&["job started", &took]))
        .count();
    assert_eq!(builders, 1, "one worker built it, once");
    assert_eq!(
        common::files_in(&deployment.exports()),
        [format!("{id}.zip")]
    );
    let listed = call("GET", &export_url(&base2), Some(TOKEN));
    assert_eq!(listed.json["exports"].as_array().unwrap().len(), 1);
}

#[test]
fn a_worker_killed_mid_build_is_replaced_once_its_lease_expires() {
    let Some(deployment) = Deployment::new() else {
        return;
    };
    let (_api, base) = deployment.api();
    // This worker waits a minute before building: it is killed long before.
    let mut doomed = deployment.worker(&["--test-build-delay-ms", "60000"]);
    let answer = call("POST", &export_url(&base), Some(TOKEN));
    assert_eq!(answer.status, 202, "{}", answer.text);
    let id = answer.json["export_id"].as_str().unwrap().to_owned();
    let took = format!("export_id={id}");
    doomed.wait_all(&["job started", &took, "attempt=1"]);

    // The rescuer starts while the lease is held; SIGKILL stops the
    // renewals, and the rescuer takes the job over as attempt 2.
    let rescuer = deployment.worker(&[]);
    doomed.kill();
    rescuer.wait_all(&["job started", &took, "attempt=2"]);
    let status = wait_done(&base, &id);
    assert_eq!(status["status"], "complete", "{status}");
    let download = call("GET", status["url"].as_str().unwrap(), None);
    assert!(download.bytes == deployment.reference());
    assert_eq!(
        common::files_in(&deployment.exports()),
        [format!("{id}.zip")],
        "exactly one archive"
    );
}
