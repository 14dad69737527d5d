#!/usr/bin/env bash
# Issue 14 (latency): the embedded default (generator at 2,000 events/s → 11 bundled hunts → stdout) for
# 30 s with adaptive micro-batching off and on, alternating, 3 runs each; p50/p99 received → alert flushed
# from the end-to-end latency histogram (interpolated within buckets). Then throughput at saturation
# (`ghosthunt bench`, 1,000,000 generated events) with each setting, 3 runs each.
#   GHOSTHUNT_BIN=target/release/ghosthunt benches/e2e/latency.sh
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
WORK="$(mktemp -d)"
cd "$WORK"; echo "output in $WORK"
for run in 1 2 3; do
  for adaptive in false true; do
    GHOSTHUNT__DECODE__ADAPTIVE=$adaptive $BIN run > alerts-$adaptive-$run.jsonl 2> log-$adaptive-$run.txt &
    pid=$!
    sleep 30
    echo "== run $run adaptive=$adaptive (load $(cut -d' ' -f1-3 /proc/loadavg))"
    python3 "$HERE/quantiles.py" http://127.0.0.1:9464/metrics | grep -E "latency|received|cpu"
    kill -INT $pid; wait $pid
  done
done
for run in 1 2 3; do
  for adaptive in false true; do
    echo "== saturation run $run adaptive=$adaptive (load $(cut -d' ' -f1-3 /proc/loadavg))"
    GHOSTHUNT__DECODE__ADAPTIVE=$adaptive $BIN bench --events 1000000 2>&1 | grep -iE "events/s|latency|cpu"
  done
done
