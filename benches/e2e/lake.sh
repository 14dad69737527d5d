#!/usr/bin/env bash
# Issue 12: the lake's cost and payoff on the same events, side by side, runs alternating:
#   json       file (JSON lines) -> the hunts                      the same hunts over the same events as JSON
#   json+lake  file -> the hunts, and the lake sink writing them   the sink's overhead on the live path
#   lake       the lake's events table -> the hunts (retro-hunt)   over the table json+lake wrote first
# then the bytes on disk per event (the events table, Parquet + log, vs the JSON lines).
#   N=1000000 RUNS=3 benches/e2e/lake.sh                  generated events, the bundled hunts
#   FILE=events.jsonl SIGMA=rules/windows benches/e2e/lake.sh   your events, with a Sigma rule set
# (release build first: cargo build --release --locked -p ghosthunt)
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
N="${N:-1000000}"
RUNS="${RUNS:-3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ghosthunt-lake-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export GHOSTHUNT__LOG__FILTER="${GHOSTHUNT__LOG__FILTER:-warn}"
export GHOSTHUNT__METRICS__LISTEN=""
if [ -n "${SIGMA:-}" ]; then
  export GHOSTHUNT__SIGMA__DIRECTORIES="$SIGMA" GHOSTHUNT__HUNTS__BUILTIN=false
fi
input=(--events "$N")
if [ -n "${FILE:-}" ]; then
  input=(--file "$FILE")
  json_bytes=$(stat -c %s "$FILE")
fi
for r in $(seq "$RUNS"); do
  "$BIN" bench --json "${input[@]}" >>"$WORK/json"
  GHOSTHUNT__LAKE__PATH="$WORK/lake-$r" "$BIN" bench --json --lake-sink "${input[@]}" >>"$WORK/json+lake"
  GHOSTHUNT__LAKE__PATH="$WORK/lake-1" "$BIN" bench --json --source lake >>"$WORK/lake"
done
for c in json json+lake lake; do python3 "$HERE/medians.py" "$c" <"$WORK/$c"; done
# Paired by round (the runs of one round ran minutes apart at most, so a machine whose speed drifts
# skews a round's ratio less than the medians' ratio): the sink's overhead and the retro-hunt's speed-up.
python3 - "$WORK/json" "$WORK/json+lake" "$WORK/lake" <<'PY'
import json, statistics, sys
json_runs, sink_runs, lake_runs = ([json.loads(l) for l in open(p) if l.strip()] for p in sys.argv[1:])
overhead = [1 - s["events_per_second"] / j["events_per_second"] for j, s in zip(json_runs, sink_runs)]
speedup = [j["seconds"] / l["seconds"] for j, l in zip(json_runs, lake_runs)]
print("== per round: lake sink overhead " + " ".join(f"{o:.1%}" for o in overhead)
      + f" (median {statistics.median(overhead):.1%}); retro-hunt vs JSON "
      + " ".join(f"{x:.2f}x" for x in speedup) + f" (median {statistics.median(speedup):.2f}x)")
PY
# Events in (the JSON run's count: the retro-hunt counts only the rows the hunts' filters kept).
events=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["events"])' "$WORK/json")
json_bytes="${json_bytes:-$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["bytes"])' "$WORK/json")}"
lake_bytes=$(du -sb "$WORK/lake-1/events" | cut -f1)
python3 - "$events" "$json_bytes" "$lake_bytes" <<'PY'
import sys
events, json_bytes, lake_bytes = (int(a) for a in sys.argv[1:])
print(f"== bytes on disk: JSON lines {json_bytes/events:.0f} B/event, events table {lake_bytes/events:.0f} B/event "
      f"(Parquet zstd with _raw kept; {json_bytes/lake_bytes:.1f}x smaller)")
PY
