//! The real `batch-export serve` process: what it logs at start (and that
//! a first start's development token stays out of it), and what it does
//! after being killed mid-build.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use super::*;

/// A running `serve` and the lines of its standard error.
pub(super) struct ServeProcess {
    pub(super) child: Child,
    pub(super) lines: Receiver<String>,
    /// Every line read so far (up to the "serving" line, or further when
    /// a test waited for later ones).
    pub(super) startup: Vec<String>,
    pub(super) base: String,
}

impl ServeProcess {
    /// Starts `serve` on a free port and waits for its "serving" line.
    fn start(data: &Path, state: &Path) -> ServeProcess {
        ServeProcess::start_with(data, state, &[])
    }

    /// [`Self::start`] with more arguments, and `RUST_LOG` unset so the
    /// default level holds.
    pub(super) fn start_with(data: &Path, state: &Path, args: &[&str]) -> ServeProcess {
        let tokens = state.join("test-tokens.json");
        let file = format!(r#"{{"tokens": [{{"token": "{TOKEN}", "workspaces": ["*"]}}]}}"#);
        fs::write(&tokens, file).unwrap();
        let mut with_tokens = vec!["--tokens", tokens.to_str().unwrap()];
        with_tokens.extend(args);
        ServeProcess::spawn(data, state, &with_tokens)
    }

    /// Starts `serve` with no arguments but the folders, a free port and
    /// `args` (no `--tokens`: the default token file), and waits for its
    /// "serving" line.
    pub(super) fn spawn(data: &Path, state: &Path, args: &[&str]) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_batch-export"))
            .arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--state")
            .arg(state)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        // Owned from here on, so that a failed start still kills it.
        let mut serve = ServeProcess {
            child,
            lines,
            startup: Vec::new(),
            base: String::new(),
        };
        while serve.base.is_empty() {
            // A bound so a service that never starts fails the test.
            let line = serve
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("serve did not start: {:#?}", serve.startup));
            // The log line's prefix (time, level) or JSON wrapping aside.
            if let Some((_, rest)) = line.split_once("serving http://") {
                let addr = rest.split('/').next().unwrap();
                serve.base = format!("http://{addr}");
            }
            serve.startup.push(line);
        }
        serve
    }

    /// Stops the service with SIGTERM, as a service manager does, and
    /// returns every line it wrote.
    pub(super) fn stop(mut self) -> Vec<String> {
        // SAFETY: kill(2) on our own child's pid, with a plain signal number.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
        // The reader thread ends, closing the channel, at the pipe's end.
        let mut lines = std::mem::take(&mut self.startup);
        lines.extend(self.lines.iter());
        lines
    }

    pub(super) fn export_url(&self) -> String {
        format!(
            "{}/api/v1/data-collection/batches/{BATCH}/export",
            self.base
        )
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn startup_logs_escape_batch_ids() {
    let dirs = Dirs::new();
    let hostile = dirs.data.path().join("hostile");
    fs::create_dir(&hostile).unwrap();
    let batch = r#"{"id": "b-1\r\nbatch fake-batch (workspace ws-x) from /etc", "name": "x",
                    "workspace_id": "ws\u202e-1"}"#;
    fs::write(hostile.join("batch.json"), batch).unwrap();
    let serve = ServeProcess::start(dirs.data.path(), dirs.state.path());
    let batch_lines: Vec<&String> = serve
        .startup
        .iter()
        .filter(|line| line.contains("batch found"))
        .collect();
    // One line per batch: the sample's and the hostile one.
    assert_eq!(batch_lines.len(), 2, "{:#?}", serve.startup);
    let line = batch_lines
        .iter()
        .find(|line| line.contains("b-1"))
        .unwrap();
    assert!(
        line.contains(
            r"batch_id=b-1\r\nbatch fake-batch (workspace ws-x) from /etc workspace_id=ws\u{202e}-1"
        ),
        "{line}"
    );
    assert!(!serve
        .startup
        .iter()
        .any(|l| l.starts_with("batch fake-batch")));
    // And the service serves.
    let answer = call("POST", &serve.export_url(), Some(TOKEN));
    assert_eq!(answer.status, 202, "{}", answer.text);
}

#[test]
fn a_first_start_keeps_its_development_token_in_a_private_file_and_out_of_the_log() {
    use std::os::unix::fs::PermissionsExt;

    let dirs = Dirs::new();
    let serve = ServeProcess::spawn(dirs.data.path(), dirs.state.path(), &[]);
    let path = dirs.state.path().join("tokens.json");
    let created = serve
        .startup
        .iter()
        .find(|line| line.contains("created a token file"))
        .unwrap_or_else(|| panic!("no line names the token file: {:#?}", serve.startup));
    assert!(created.contains(&path.display().to_string()), "{created}");
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let file: TokenFile = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let token = file.tokens[0].token.clone();
    assert!(token.len() >= 32, "{token}");
    assert_eq!(file.tokens[0].workspaces, ["ws-ecology"]);
    // The token in the file is the one the service accepts.
    let answer = call("POST", &serve.export_url(), Some(&token));
    assert_eq!(answer.status, 202, "{}", answer.text);
    let lines = serve.stop();
    let leaking: Vec<&String> = lines.iter().filter(|l| l.contains(&token)).collect();
    assert!(leaking.is_empty(), "the token is logged: {leaking:#?}");

    // A second start reads the file and creates nothing.
    let before = fs::read(&path).unwrap();
    let again = ServeProcess::spawn(dirs.data.path(), dirs.state.path(), &[]);
    assert!(
        !again
            .startup
            .iter()
            .any(|l| l.contains("created a token file")),
        "{:#?}",
        again.startup
    );
    assert_eq!(call("GET", &again.export_url(), Some(&token)).status, 200);
    assert_eq!(fs::read(&path).unwrap(), before);
}
