#!/usr/bin/env bash
# Issue 14: ghosthunt's own CPU per million events through Kafka against the file path, on the same events.
# Writes N generated events to a file (seed 42), sends them to the 6-partition topic `events` on tansu
# (memory storage, on this machine), then alternates `bench --file` and `bench --source kafka` (a new
# consumer group each run, from the beginning), RUNS times each; prints every run and the medians. CPU is
# ghosthunt's process only (librdkafka's threads included, the broker's not).
#   GHOSTHUNT_BIN=target/release/ghosthunt N=1000000 RUNS=3 benches/e2e/kafka_cost.sh
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
T="${GHOSTHUNT_TANSU:-$(bash "$HERE/../../.ci/install-tansu" | tail -n 1)}"
N="${N:-1000000}"
RUNS="${RUNS:-3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ghosthunt-kafka-cost.XXXXXX")"
cd "$WORK"
source "$HERE/broker.sh" # tansu on a free port; GHOSTHUNT__KAFKA__BROKERS
trap 'kill $TP 2>/dev/null; rm -rf "$WORK"' EXIT
export GHOSTHUNT__LOG__FILTER="${GHOSTHUNT__LOG__FILTER:-warn}" GHOSTHUNT__METRICS__LISTEN=""
"$BIN" bench --json --events "$N" --keep-events "$WORK/events.jsonl" >>"$WORK/file"
"$BIN" produce --topic events --file "$WORK/events.jsonl" 2>produce.log
for r in $(seq "$RUNS"); do
  "$BIN" bench --json --file "$WORK/events.jsonl" >>"$WORK/file"
  GHOSTHUNT__SOURCE__KIND=kafka GHOSTHUNT__SOURCE__KAFKA__TOPICS=events \
    GHOSTHUNT__SOURCE__KAFKA__GROUP_ID="bench-$r" GHOSTHUNT__SOURCE__KAFKA__AUTO_OFFSET_RESET=earliest \
    "$BIN" bench --json --source kafka --events "$N" >>"$WORK/kafka"
done
# The first file run wrote the events (not timed, but it warmed the page cache); keep the last RUNS.
tail -n "$RUNS" "$WORK/file" | python3 "$HERE/medians.py" "file -> bundled hunts"
python3 "$HERE/medians.py" "kafka (tansu) -> bundled hunts" <"$WORK/kafka"
python3 - "$WORK/file" "$WORK/kafka" "$RUNS" <<'PY'
import json, statistics, sys
runs = int(sys.argv[3])
cpu = lambda path, last: statistics.median(json.loads(l)["cpu_seconds_per_million_events"]
                                           for l in open(path).read().splitlines()[-last:])
f, k = cpu(sys.argv[1], runs), cpu(sys.argv[2], runs)
print(f"== CPU s per million events: file {f:.2f}, kafka {k:.2f}: kafka / file = {k / f:.2f}")
PY
