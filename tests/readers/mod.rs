//! Archives opened by real readers: Info-ZIP, Python's `zipfile`,
//! libarchive's `bsdtar` (from the file and from a pipe), 7-Zip and Java's
//! `ZipFile` and `ZipInputStream`.
//!
//! Each reader tests the archive's integrity and extracts (or hashes) every
//! entry; the bytes out must be the bytes expected, and extraction must
//! create nothing outside its target folder. A reader that is missing fails
//! the test when `CI=true` (CI installs them all, see `.ci/install.sh`) and
//! is skipped with a note otherwise.

mod dumps;
mod sample;
mod unseen;
mod zip64;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

/// What an entry should hold: its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    pub sha256: String,
}

impl Expected {
    pub fn of(bytes: &[u8]) -> Expected {
        Expected {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        }
    }
}

/// Entry name to expected content, in name order.
pub type Manifest = BTreeMap<String, Expected>;

/// How thoroughly to read: everything, or (for multi-gigabyte archives)
/// integrity tests plus a streamed read, without writing files out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Extract,
    TestOnly,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's interpreter (with pandas), or `python3` outside CI.
pub fn python() -> Option<PathBuf> {
    let venv = repo().join(".venv/bin/python");
    if venv.is_file() {
        return Some(venv);
    }
    tool("python3 (or .venv/bin/python)", &["python3"])
}

/// A Python with pandas (for the README example and the CSV oracle). When
/// pandas is missing: a failure under CI, otherwise `None` after a note.
pub fn python_with_pandas() -> Option<PathBuf> {
    let python = python()?;
    let has_pandas = Command::new(&python)
        .args(["-c", "import pandas"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pandas {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "pandas is missing under CI (see .ci/install.sh)"
        );
        eprintln!("note: pandas not installed, skipping");
        return None;
    }
    Some(python)
}

/// The first of `names` on the PATH. When none is: a failure under CI,
/// otherwise `None` after a note (the caller skips that reader).
pub fn tool(what: &str, names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is missing, and CI=true requires every reader (see .ci/install.sh)");
    }
    eprintln!("note: {what} not found, skipping that reader");
    None
}

/// Runs a command in a UTF-8 locale (bsdtar converts names through it)
/// and returns its output, failing the test on a non-zero exit.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every file under `dir`, by path relative to it (with `/`), hashed.
/// Fails on anything that is neither a file nor a folder.
pub fn tree(dir: &Path) -> Manifest {
    let mut found = Manifest::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.expect("walking an extracted tree");
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        assert!(
            kind.is_file(),
            "{} is not a regular file",
            entry.path().display()
        );
        let relative = entry.path().strip_prefix(dir).unwrap();
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_str().expect("a UTF-8 name"))
            .collect::<Vec<_>>()
            .join("/");
        found.insert(name, hash_file(entry.path()));
    }
    found
}

pub fn hash_file(path: &Path) -> Expected {
    let mut file = std::fs::File::open(path).unwrap();
    let mut sha = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        sha.update(&buffer[..n]);
        size += n as u64;
    }
    Expected {
        size,
        sha256: hex::encode(sha.finalize()),
    }
}

/// Extracts with `extract(target)` into a fresh folder inside a fresh
/// parent, then checks the parent holds only that folder and the folder
/// exactly the manifest.
fn check_extraction(reader: &str, manifest: &Manifest, extract: impl FnOnce(&Path)) {
    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("out");
    std::fs::create_dir(&target).unwrap();
    extract(&target);
    let outside: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec!["out"], "{reader} wrote outside its target");
    let got = tree(&target);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        manifest.keys().collect::<Vec<_>>(),
        "{reader} extracted other names"
    );
    for (name, expected) in manifest {
        assert_eq!(
            &got[name], expected,
            "{reader} extracted other bytes for {name}"
        );
    }
}

/// Every reader in turn, each asserting it accepts the archive and reads
/// the manifest's bytes.
/// Each reader's time is printed (visible with `--nocapture`), as the
/// scale tests' runtimes are reported from it; nothing asserts on time.
pub fn check_all(archive: &Path, manifest: &Manifest, depth: Depth) {
    let timed = |reader: &str, check: &dyn Fn()| {
        let started = std::time::Instant::now();
        check();
        eprintln!("{reader}: {:.1?} ({depth:?})", started.elapsed());
    };
    timed("unzip", &|| unzip(archive, manifest, depth));
    timed("python zipfile", &|| {
        python_zipfile(archive, manifest, depth)
    });
    timed("bsdtar", &|| bsdtar(archive, manifest, depth));
    timed("7z", &|| seven_zip(archive, manifest, depth));
    timed("java", &|| java(archive, manifest));
}

fn unzip(archive: &Path, manifest: &Manifest, depth: Depth) {
    let Some(unzip) = tool("unzip (Info-ZIP)", &["unzip"]) else {
        return;
    };
    let out = run(Command::new(&unzip).arg("-t").arg(archive));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("No errors detected"),
        "unzip -t said:\n{text}"
    );
    if depth == Depth::Extract {
        check_extraction("unzip", manifest, |target| {
            run(Command::new(&unzip)
                .arg("-q")
                .arg(archive)
                .arg("-d")
                .arg(target));
        });
    }
}

/// `testzip()` reads every entry and checks its CRC; then `extractall`
/// writes them out, or (with `TestOnly`) each entry is hashed from `open()`
/// and compared with the manifest.
fn python_zipfile(archive: &Path, manifest: &Manifest, depth: Depth) {
    let Some(python) = python() else {
        return;
    };
    let script = "import hashlib, sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        bad = z.testzip()\n\
        assert bad is None, f'bad entry {bad}'\n\
        if sys.argv[2] == 'extract':\n    z.extractall(sys.argv[3])\n\
        else:\n    for info in z.infolist():\n        sha, size = hashlib.sha256(), 0\n        \
        with z.open(info) as f:\n            while chunk := f.read(1 << 20):\n                \
        sha.update(chunk)\n                size += len(chunk)\n        \
        print(size, sha.hexdigest(), info.filename, sep='\\t')\n";
    match depth {
        Depth::Extract => check_extraction("python zipfile", manifest, |target| {
            run(Command::new(&python)
                .args(["-c", script])
                .arg(archive)
                .arg("extract")
                .arg(target));
        }),
        Depth::TestOnly => {
            let out = run(Command::new(&python)
                .args(["-c", script])
                .arg(archive)
                .arg("hash"));
            let text = String::from_utf8(out.stdout).expect("UTF-8 output");
            assert_eq!(
                &parse_hashes(text.lines()),
                manifest,
                "python zipfile read other bytes"
            );
        }
    }
}

/// Parses `size<TAB>sha256<TAB>name` lines, refusing repeated names.
fn parse_hashes<'l>(lines: impl Iterator<Item = &'l str>) -> Manifest {
    let mut seen = Manifest::new();
    for line in lines {
        let mut fields = line.splitn(3, '\t');
        let size = fields.next().unwrap().parse().unwrap();
        let sha256 = fields.next().unwrap().to_owned();
        let name = fields.next().unwrap().to_owned();
        assert!(
            seen.insert(name.clone(), Expected { size, sha256 })
                .is_none(),
            "{name} read twice"
        );
    }
    seen
}

/// bsdtar from the file, and from a pipe, where it cannot seek and must
/// rely on the local headers alone.
fn bsdtar(archive: &Path, manifest: &Manifest, depth: Depth) {
    let Some(bsdtar) = tool("bsdtar (libarchive-tools)", &["bsdtar"]) else {
        return;
    };
    let listing = run(Command::new(&bsdtar).arg("-tf").arg(archive));
    let mut listed: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        manifest.keys().cloned().collect::<Vec<_>>(),
        "bsdtar -t listed other names"
    );
    match depth {
        Depth::Extract => {
            check_extraction("bsdtar", manifest, |target| {
                run(Command::new(&bsdtar)
                    .arg("-xf")
                    .arg(archive)
                    .arg("-C")
                    .arg(target));
            });
            check_extraction("bsdtar from a pipe", manifest, |target| {
                bsdtar_from_pipe(&bsdtar, archive, &["-xf", "-", "-C"], Some(target));
            });
        }
        Depth::TestOnly => {
            // Reading every entry to stdout (discarded) checks every CRC.
            bsdtar_from_pipe(&bsdtar, archive, &["-xOf", "-"], None);
        }
    }
}

/// Feeds the archive to bsdtar's standard input through a real pipe.
fn bsdtar_from_pipe(bsdtar: &Path, archive: &Path, args: &[&str], target: Option<&Path>) {
    let mut command = Command::new(bsdtar);
    command.args(args);
    if let Some(target) = target {
        command.arg(target);
    }
    let mut child = command
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(if target.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bsdtar");
    let mut stdin = child.stdin.take().unwrap();
    let path = archive.to_path_buf();
    let feeder = std::thread::spawn(move || {
        let mut file = std::fs::File::open(path).unwrap();
        // bsdtar may stop reading once past the last entry: not an error.
        let _ = std::io::copy(&mut file, &mut stdin);
        let _ = stdin.flush();
    });
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        output.status.success(),
        "bsdtar from a pipe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn seven_zip(archive: &Path, manifest: &Manifest, depth: Depth) {
    let Some(seven) = tool("7-Zip (7z or 7zz)", &["7z", "7zz"]) else {
        return;
    };
    let out = run(Command::new(&seven).arg("t").arg(archive));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Everything is Ok"), "7z t said:\n{text}");
    if depth == Depth::Extract {
        check_extraction("7z", manifest, |target| {
            run(Command::new(&seven)
                .arg("x")
                .arg("-y")
                .arg(format!("-o{}", target.display()))
                .arg(archive));
        });
    }
}

/// Java's `ZipFile` (central directory) and `ZipInputStream` (local
/// headers only) must both see every entry with the expected bytes.
fn java(archive: &Path, manifest: &Manifest) {
    let Some(java) = tool("java (JDK 17+)", &["java"]) else {
        return;
    };
    let program = repo().join("tests/java/ReadZip.java");
    let out = run(Command::new(java).arg(program).arg(archive));
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    for reader in ["zipfile", "stream"] {
        let prefix = format!("{reader}\t");
        let lines = text.lines().filter_map(|l| l.strip_prefix(&prefix));
        assert_eq!(
            &parse_hashes(lines),
            manifest,
            "java {reader} read other bytes"
        );
    }
}
