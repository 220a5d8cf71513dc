#!/usr/bin/env bash
# Compares `batch-export build` with other tools on the two benchmark
# workloads (see BENCHMARKS.md), interleaved A B A B so that the noise of a
# shared machine hits every tool alike, and reports medians and peak RSS.
#
# Usage: benches/compare.sh [tools|levels|all]    (default: all)
# Env:   RUNS (default 5), WORKLOADS (default "responses-heavy uploads-heavy"),
#        BENCH_DATA (default target/bench-data), WRITE=1 to rewrite the
#        results section of BENCHMARKS.md.
# Needs: /usr/bin/time (Debian `time`), zip, python3; DuckDB is installed
# into benches/.venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-all}
RUNS=${RUNS:-5}
WORKLOADS=${WORKLOADS:-"responses-heavy uploads-heavy"}
DATA=${BENCH_DATA:-$ROOT/target/bench-data}
BIN=$ROOT/target/release/batch-export
VENV=$ROOT/benches/.venv
RESULTS=$DATA/results
mkdir -p "$DATA" "$RESULTS"

cargo build --release --quiet
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q duckdb; }
command -v zip >/dev/null || { echo "zip is missing (apt-get install zip)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 2; }

# Dumps: each preset, and the preset at double size for the scaling check.
dump() { # name preset extra-args...
  local dir=$DATA/$1; shift
  [ -f "$dir/uploads.jsonl" ] || "$BIN" gen "$dir" --preset "$@" >/dev/null
}
dump responses-heavy responses-heavy
dump responses-heavy-x2 responses-heavy --submissions 10000 --uploads 150000
dump uploads-heavy uploads-heavy
dump uploads-heavy-x2 uploads-heavy --submissions 100 --uploads 480

OUT=$DATA/out
# One timed run: label, then the command; appends "label seconds kb" to $LOG.
timed() {
  local label=$1; shift
  rm -rf "$OUT"; mkdir -p "$OUT"
  sync
  /usr/bin/time -f "%e %M" -o "$DATA/.time" "$@" >/dev/null 2>"$DATA/.stderr" || {
    echo "FAILED: $label: $*" >&2; cat "$DATA/.stderr" >&2; exit 1; }
  echo "$label $(cat "$DATA/.time")" >>"$LOG"
  printf '  %-16s %s\n' "$label" "$(cat "$DATA/.time")" >&2
}

tools() { # workload
  local w=$1 d=$DATA/$1
  LOG=$RESULTS/$w.tools; : >"$LOG"
  for run in $(seq "$RUNS"); do
    echo "$w run $run/$RUNS" >&2
    timed build "$BIN" build "$d" -o "$OUT/a.zip"
    timed build-1thread env RAYON_NUM_THREADS=1 "$BIN" build "$d" -o "$OUT/a.zip"
    timed build-x2 "$BIN" build "$d-x2" -o "$OUT/a.zip"
    timed python "$VENV/bin/python" benches/peers/python_export.py "$d" "$OUT/a.zip"
    timed zip-r-6 sh -c "cd '$d' && zip -q -r -6 '$OUT/a.zip' ."
    timed cp-r cp -r "$d" "$OUT/copy"
    if [ "$w" = responses-heavy ]; then
      timed views-only "$BIN" build "$d" --views-only "$OUT/views"
      timed duckdb-pivot "$VENV/bin/python" benches/peers/duckdb_pivot.py "$d" "$OUT/views"
    fi
  done
}

levels() { # workload
  local w=$1 d=$DATA/$1
  LOG=$RESULTS/$w.levels; : >"$LOG"
  for run in $(seq 3); do
    for level in 1 2 3 4 5 6 9; do
      timed "level-$level" "$BIN" build "$d" --level "$level" -o "$OUT/a.zip"
      echo "size-$level $(stat -c %s "$OUT/a.zip") 0" >>"$LOG"
    done
  done
}

for w in $WORKLOADS; do
  case $MODE in
    tools) tools "$w" ;;
    levels) levels "$w" ;;
    all) tools "$w"; levels "$w" ;;
  esac
done

"$VENV/bin/python" benches/report.py "$RESULTS" ${WRITE:+--write BENCHMARKS.md}
