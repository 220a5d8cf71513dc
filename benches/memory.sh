#!/usr/bin/env bash
# Peak memory and time of `batch-export build --memory-budget 400M` as the
# batch grows (issue 13): `gen` dumps of 1M, 2M, 5M and 10M responses (few
# uploads), each built once, then the table and the plot of BENCHMARKS.md.
#
# Usage: benches/memory.sh [SIZES...]     (default: 1000000 2000000 5000000 10000000)
# Env:   BUDGET (default 400M), BENCH_DATA (default target/bench-data),
#        WRITE=1 to rewrite the memory section of BENCHMARKS.md and
#        benches/memory.svg. Needs /usr/bin/time (Debian `time`), python3.
# The dumps take about 260 MB of disk per million responses, the runs as
# much again while a build spills; they stay under BENCH_DATA (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUDGET=${BUDGET:-400M}
DATA=${BENCH_DATA:-$ROOT/target/bench-data}
BIN=$ROOT/target/release/batch-export
SIZES=${*:-1000000 2000000 5000000 10000000}
RESULTS=$DATA/results/memory.tsv
mkdir -p "$DATA/results" "$DATA/out"
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
cargo build --release --quiet

: >"$RESULTS"
for n in $SIZES; do
  dir=$DATA/memory-$n
  # 20 tasks x 5 instructions per submission; 100 uploads in all.
  [ -f "$dir/uploads.jsonl" ] || "$BIN" gen "$dir" --submissions $((n / 100)) \
    --tasks 20 --instructions 5 --uploads 100 >/dev/null
  rm -f "$DATA/out/a.zip"
  sync
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %M" -o "$DATA/.time" "$BIN" build "$dir" -o "$DATA/out/a.zip" \
    --memory-budget "$BUDGET" --generated-at 2024-06-01T00:00:00Z >/dev/null 2>"$DATA/.stderr" || {
      echo "FAILED at $n:" >&2; cat "$DATA/.stderr" >&2; exit 1; }
  read -r seconds kb <"$DATA/.time"
  echo "$n $seconds $kb $load" >>"$RESULTS"
  printf '%9d responses: %7.1f s  %6d MB peak RSS  (load %s)\n' "$n" "$seconds" $((kb / 1024)) "$load" >&2
done
python3 benches/memory_report.py "$RESULTS" "$BUDGET"
