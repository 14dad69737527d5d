#!/usr/bin/env bash
# Issue 14: how cost grows — events/s and peak RSS of file → decode → Sigma rules → alerts against the number
# of rules (100, 500, 1,000 rule files and the whole SigmaHQ Windows set) and against the number of events
# (a tenth of the OTRF atomic backlog, the backlog, ten times it). Writes growth.csv and, with matplotlib,
# growth.png into $OUTDIR (default: benches/).
#
#   RUNS=3 benches/e2e/growth.sh          (release build first; PYTHON with matplotlib for the plot)
#
# The rule subsets are every k-th rule file of the set in path order (deterministic). The 10x backlog is
# the OTRF file written ten times over into $TMPDIR (about 16 GB; removed afterwards).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
OUTDIR="${OUTDIR:-$HERE/..}"
PYTHON="${PYTHON:-python3}"
RUNS="${RUNS:-3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

. "$HERE/sigma_inputs.sh"
lines=$(wc -l < "$EVENTS")
head -n $((lines / 10)) "$EVENTS" > "$WORK/tenth.jsonl"
for _ in $(seq 10); do cat "$EVENTS"; done > "$WORK/ten.jsonl"

find "${RULE_DIRS[@]}" -name '*.yml' | sort > "$WORK/all-rules"
total=$(wc -l < "$WORK/all-rules")
subset() { # $1 files -> directory with every k-th rule file
  dir="$WORK/rules-$1"; mkdir -p "$dir"
  awk -v n="$1" -v t="$total" 'NR % int(t / n) == 0 && c < n { c++; print }' "$WORK/all-rules" |
    while read -r f; do cp "$f" "$dir/$(echo "$f" | md5sum | cut -c1-12).yml"; done
  echo "$dir"
}

run() { # label rules_dir events_file -> CSV lines
  for _ in $(seq "$RUNS"); do
    env GHOSTHUNT__LOG__FILTER=warn GHOSTHUNT__HUNTS__BUILTIN=false GHOSTHUNT__INCIDENTS__BUILTIN=false \
      GHOSTHUNT__SIGMA__DIRECTORIES="$2" \
      /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" bench --json --file "$3" > "$WORK/out.json"
    "$PYTHON" - "$1" "$WORK/out.json" "$(cat "$WORK/rss")" <<'EOF'
import json, sys
r = json.load(open(sys.argv[2]))
print(f"{sys.argv[1]},{r['hunts']},{r['events']},{r['events_per_second']:.0f},{int(sys.argv[3]) / 1024:.0f},"
      f"{r['cpu_seconds_per_million_events']:.2f},{r['alerts']}")
EOF
  done
}

echo "axis,hunts,events,events_per_second,peak_rss_mib,cpu_s_per_million,alerts" > "$WORK/growth.csv"
for n in 100 500 1000; do run rules "$(subset "$n")" "$EVENTS" | tee -a "$WORK/growth.csv"; done
all="$WORK/rules-all"; mkdir -p "$all"
while read -r f; do cp "$f" "$all/$(echo "$f" | md5sum | cut -c1-12).yml"; done < "$WORK/all-rules"
run rules "$all" "$EVENTS" | tee -a "$WORK/growth.csv"
run events "$all" "$WORK/tenth.jsonl" | tee -a "$WORK/growth.csv"
run events "$all" "$WORK/ten.jsonl" | tee -a "$WORK/growth.csv"
cp "$WORK/growth.csv" "$OUTDIR/growth.csv"
"$PYTHON" "$HERE/growth_plot.py" "$OUTDIR/growth.csv" "$OUTDIR/growth.png" ||
  echo "no plot: PYTHON=$PYTHON needs matplotlib (pip install matplotlib)" >&2
