#!/usr/bin/env bash
# Issue 6: `ghosthunt bench` three times per configuration; prints every run and the medians.
#   N=1000000 benches/e2e/bench.sh            (release build first: cargo build --release -p ghosthunt)
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
N="${N:-1000000}"
RUNS="${RUNS:-3}"
export GHOSTHUNT__LOG__FILTER="${GHOSTHUNT__LOG__FILTER:-warn}"
run() {
  label="$1"; shift
  for _ in $(seq "$RUNS"); do "$BIN" bench --json --events "$N" "$@"; done | python3 "$HERE/medians.py" "$label"
}
run "file -> bundled hunts"
run "generator -> bundled hunts" --source generator
for n in 1 10 100; do run "file -> ${n} x lsass_memory_access" --copies "$n"; done
