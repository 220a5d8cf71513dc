#!/usr/bin/env python3
"""Turns the timings benches/compare.sh recorded into the tables of
BENCHMARKS.md: medians, ratios against `build`, peak RSS, targets met.

Usage: report.py RESULTS_DIR [--write BENCHMARKS.md]
"""
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import defaultdict

START, END = "<!-- results:start -->", "<!-- results:end -->"

COMMANDS = {
    "build": "batch-export build DUMP -o OUT.zip",
    "build-1thread": "RAYON_NUM_THREADS=1 batch-export build DUMP -o OUT.zip",
    "build-x2": "batch-export build DUMP-x2 -o OUT.zip  (the workload at double size)",
    "python": "python benches/peers/python_export.py DUMP OUT.zip",
    "zip-r-6": "cd DUMP && zip -q -r -6 OUT.zip .",
    "cp-r": "cp -r DUMP OUT",
    "views-only": "batch-export build DUMP --views-only OUTDIR",
    "duckdb-pivot": "python benches/peers/duckdb_pivot.py DUMP OUTDIR",
}


def load(path):
    runs = defaultdict(list)
    for line in open(path):
        label, seconds, kb = line.split()
        runs[label].append((float(seconds), int(kb)))
    return {k: (statistics.median(s for s, _ in v), max(m for _, m in v), len(v)) for k, v in runs.items()}


def machine():
    model = next((l.split(":", 1)[1].strip() for l in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores (`nproc`), {model}, {mem / 2**20:.0f} GiB RAM, Linux {platform.release()}"


def check(ok):
    return "met" if ok else "**not met**"


def tools_table(name, t):
    b = t["build"][0]
    rows = [f"#### {name}\n", "| tool | median s | ratio to build | peak RSS MB | runs |", "|---|---:|---:|---:|---:|"]
    for label, (sec, kb, n) in t.items():
        rows.append(f"| {label} | {sec:.2f} | {sec / b:.2f}× | {kb / 1024:.0f} | {n} |")
    rows.append("")
    g = lambda k: t[k][0] if k in t else float("nan")
    rss = lambda k: t[k][1] / 1024 if k in t else float("nan")
    targets = []
    if name == "responses-heavy":
        targets += [
            ("build ≥ 15× faster than the Python peer", g("python") / b, 15, g("python") / b >= 15),
            ("build peak RSS ≤ 25% of the Python peer's", rss("build") / rss("python"), 0.25, rss("build") / rss("python") <= 0.25),
            ("pivot alone ≥ 6× faster than DuckDB", g("duckdb-pivot") / g("views-only"), 6, g("duckdb-pivot") / g("views-only") >= 6),
            ("build ≥ 5× faster than zip -r -6", g("zip-r-6") / b, 5, g("zip-r-6") / b >= 5),
        ]
    else:
        targets += [
            ("build ≥ 3× faster than the Python peer", g("python") / b, 3, g("python") / b >= 3),
            ("build ≥ 10× faster than zip -r -6", g("zip-r-6") / b, 10, g("zip-r-6") / b >= 10),
            ("build peak RSS < 128 MB", rss("build"), 128, rss("build") < 128),
        ]
    targets += [
        ("1 thread vs default ≥ 1.7×", g("build-1thread") / b, 1.7, g("build-1thread") / b >= 1.7),
        ("double workload ≤ 2.2× the time", g("build-x2") / b, 2.2, g("build-x2") / b <= 2.2),
    ]
    rows += ["| target | measured | goal | |", "|---|---:|---:|---|"]
    rows += [f"| {d} | {m:.2f} | {goal} | {check(ok)} |" for d, m, goal, ok in targets]
    return "\n".join(rows) + "\n"


def levels_table(name, t):
    rows = [f"#### {name}: deflate level\n", "| level | median s | archive MB |", "|---:|---:|---:|"]
    for level in sorted({int(k.split("-")[1]) for k in t if k.startswith("level-")}):
        rows.append(f"| {level} | {t[f'level-{level}'][0]:.2f} | {t[f'size-{level}'][0] / 1e6:.1f} |")
    return "\n".join(rows) + "\n"


def main():
    results = sys.argv[1]
    parts = [f"Measured on: {machine()}.\n", "Commands (DUMP is the workload's dump, made by `gen --preset`):\n"]
    parts += [f"- `{label}`: `{cmd}`" for label, cmd in COMMANDS.items()]
    parts.append("")
    for w in ("responses-heavy", "uploads-heavy"):
        p = os.path.join(results, f"{w}.tools")
        if os.path.exists(p):
            parts.append(tools_table(w, load(p)))
    for w in ("responses-heavy", "uploads-heavy"):
        p = os.path.join(results, f"{w}.levels")
        if os.path.exists(p):
            parts.append(levels_table(w, load(p)))
    text = "\n".join(parts)
    print(text)
    if "--write" in sys.argv:
        path = sys.argv[sys.argv.index("--write") + 1]
        doc = open(path).read()
        doc = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{text}\n{END}", doc, flags=re.S)
        open(path, "w").write(doc)


if __name__ == "__main__":
    main()
