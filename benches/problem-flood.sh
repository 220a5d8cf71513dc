#!/usr/bin/env bash
# Peak memory of `batch-export build` on a flood of bad lines (issue 9:
# memory must not grow with the number of problems, only the capped list
# shown plus counts is kept). A benchmark, not a test: it prints figures
# and compares them with a budget, and exits 1 when a budget is exceeded.
#
# Two floods, each appended to a copy of the sample dump, at LINES/4 and
# LINES bad lines so the growth per bad line shows:
#   tasks      LINES task lines with a number for an id (one problem each;
#              no record is kept)
#   responses  LINES response lines naming a task and an instruction that
#              do not exist (two problems each; the responses themselves
#              are valid lines and are kept, so memory grows with them)
#
# Usage: benches/problem-flood.sh
# Env:   LINES (default 1000000), BIN (default target/release/batch-export,
#        built if missing), FLOOD_DATA (default target/bench-data/flood),
#        TASKS_BUDGET_MB (default 128), PER_RESPONSE_BUDGET_B (default 400:
#        bytes of peak RSS per kept response line)
# Needs: /usr/bin/time (Debian `time`), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LINES=${LINES:-1000000}
BIN=${BIN:-$ROOT/target/release/batch-export}
DATA=${FLOOD_DATA:-$ROOT/target/bench-data/flood}
TASKS_BUDGET_MB=${TASKS_BUDGET_MB:-128}
PER_RESPONSE_BUDGET_B=${PER_RESPONSE_BUDGET_B:-400}
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
[ -x "$BIN" ] || cargo build --release --quiet
mkdir -p "$DATA"

# A copy of the sample dump with `count` bad lines of `kind` appended.
flood() { # kind count
  local dir=$DATA/$1-$2
  [ -f "$dir/.complete" ] && return
  rm -rf "$dir"; cp -r fixtures/sample-batch "$dir"
  python3 - "$1" "$2" "$dir" <<'EOF'
import sys
kind, count, dump = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "tasks":
    line = '{"id": %d, "datapoint": {"text": "a flood of bad lines"}}\n'
    path = dump + "/tasks.jsonl"
else:
    line = ('{"id": "flood-%d", "submission_id": "sub-a1", "task_id": "no-such-task", '
            '"participant_id": "p-1", "response": {"instruction_id": "no-such-instruction", '
            '"type": "free_text", "answer": [{"value": "x"}]}}\n')
    path = dump + "/responses.jsonl"
with open(path, "a") as out:
    for n in range(count):
        out.write(line % n)
EOF
  touch "$dir/.complete"
}

# Peak RSS in kB and wall seconds of one build, which must be refused.
measure() { # dump
  local stderr=$DATA/.stderr
  if /usr/bin/time -f "%M %e" -o "$DATA/.time" "$BIN" build "$1" -o "$DATA/out.zip" \
      >/dev/null 2>"$stderr"; then
    echo "the flood in $1 was accepted" >&2; exit 2
  fi
  grep -q "problem" "$stderr" || { echo "no refusal for $1:" >&2; cat "$stderr" >&2; exit 2; }
  # time says "Command exited with non-zero status 1" first.
  tail -n 1 "$DATA/.time"
}

status=0
printf '%-10s %10s %14s %9s\n' flood "bad lines" "peak RSS (MB)" "wall (s)"
for kind in tasks responses; do
  small=$((LINES / 4))
  flood "$kind" "$small"; flood "$kind" "$LINES"
  read -r small_kb small_s < <(measure "$DATA/$kind-$small")
  read -r big_kb big_s < <(measure "$DATA/$kind-$LINES")
  printf '%-10s %10d %14.1f %9s\n' "$kind" "$small" "$((small_kb))e-3" "$small_s"
  printf '%-10s %10d %14.1f %9s\n' "$kind" "$LINES" "$((big_kb))e-3" "$big_s"
  per_line=$(( (big_kb - small_kb) * 1024 / (LINES - small) ))
  if [ "$kind" = tasks ]; then
    verdict="budget ${TASKS_BUDGET_MB} MB at $LINES lines"
    [ "$big_kb" -le $((TASKS_BUDGET_MB * 1024)) ] || { verdict="$verdict: EXCEEDED"; status=1; }
  else
    verdict="budget ${PER_RESPONSE_BUDGET_B} B per kept response"
    [ "$per_line" -le "$PER_RESPONSE_BUDGET_B" ] || { verdict="$verdict: EXCEEDED"; status=1; }
  fi
  echo "  $kind: $per_line bytes of peak RSS per extra bad line; $verdict"
done
exit $status
