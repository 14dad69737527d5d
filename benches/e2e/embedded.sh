#!/usr/bin/env bash
# Issue 2 sanity figure: the embedded default for 30 s, 3 runs.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
WORK="$(mktemp -d)"
cd "$WORK"; echo "output in $WORK"
for run in 1 2 3; do
  rm -f dead-letters.jsonl
  $BIN run > alerts-$run.jsonl 2> log-$run.txt &
  pid=$!
  sleep 30
  python3 "$HERE/quantiles.py" http://127.0.0.1:9464/metrics > metrics-$run.txt
  grep -E "^VmHWM|^VmRSS" /proc/$pid/status >> metrics-$run.txt
  kill -INT $pid; wait $pid
  echo "run $run: $(wc -l < alerts-$run.jsonl) alerts"; cat metrics-$run.txt
done
