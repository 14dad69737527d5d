#!/usr/bin/env bash
# Issue 13: the end-to-end latency repartitioning adds to windowed alerts. Events are produced live
# (generator at real time: event time = wall clock) at RATE events/s for LIVE seconds into a 6-partition topic
# keyed by host on tansu, while the instances run with the bundled hunts plus one tumbling 10 s hunt
# that groups across hosts (logons per account), in turn:
#   local-1        one instance, scale.mode = local
#   repartition-1  one instance, scale.mode = repartition
#   repartition-3  three instances in one group, scale.mode = repartition
# Latency of a windowed alert = when it was built (finding_info.created_time, wall clock) minus its
# window's end (end_time, event time = wall clock at generation): the watermark wait (window.allowed_lateness,
# 5 s by default), batching, and in repartition mode the hop through the repartition topic. Alerts of
# windows ending in the first 20 s (groups settling) are left out. Prints median, p90, p99 and max (ms).
#   RATE=3000 LIVE=60 benches/e2e/scale_latency.sh   (release build first: cargo build --release --locked -p ghosthunt)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
WORK="$(mktemp -d)"
T="${GHOSTHUNT_TANSU:-$(bash "$HERE/../../.ci/install-tansu" | tail -n 1)}"
RATE=${RATE:-3000}
LIVE=${LIVE:-60}
cd "$WORK"; echo "output in $WORK"
mkdir hunts
cat > hunts/logons_per_account_10s.sql <<'SQL'
/*
id: logons_per_account_10s
title: Logons per account every 10 seconds (latency probe)
hypothesis: Every account that logs on somewhere alerts once per 10 s window, from rows of many hosts.
severity: informational
window: tumbling 10s
entity: account
response:
  - Ignore it, a benchmark probe.
*/
SELECT window_start, window_end, lower(target_user_name) AS account, count(*) AS logons,
       count(DISTINCT host) AS hosts
FROM events WHERE event_id = 4624
GROUP BY window_start, window_end, lower(target_user_name)
SQL
. "$HERE/broker.sh"

run() { # name mode instances
  local name=$1 mode=$2 k=$3 pids=() i
  for i in $(seq "$k"); do
    GHOSTHUNT__SOURCE__KIND=kafka GHOSTHUNT__SOURCE__KAFKA__TOPICS=events GHOSTHUNT__SOURCE__KAFKA__GROUP_ID="$name" \
    GHOSTHUNT__SOURCE__KAFKA__AUTO_OFFSET_RESET=latest \
    GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS=6000 \
    GHOSTHUNT__HUNTS__DIRECTORIES="$WORK/hunts" \
    GHOSTHUNT__ALERTS__SINK=file GHOSTHUNT__ALERTS__PATH="$WORK/alerts-$name-$i.jsonl" \
    GHOSTHUNT__DEAD_LETTERS__SINK=file GHOSTHUNT__DEAD_LETTERS__PATH="$WORK/dead-$name-$i.jsonl" \
    GHOSTHUNT__SCALE__MODE="$mode" GHOSTHUNT__SCALE__TOPIC="$name-repartition" GHOSTHUNT__SCALE__PARTITIONS=6 \
    GHOSTHUNT__METRICS__LISTEN="" GHOSTHUNT__LOG__FILTER=warn \
      $BIN run 2> "run-$name-$i.log" &
    pids+=($!)
  done
  sleep 20 # the groups settle
  local started
  started=$(date +%s%3N)
  timeout "$LIVE" env GHOSTHUNT__SOURCE__GENERATOR__SPEED=1 \
    $BIN produce --topic events --rate "$RATE" 2> "produce-$name.log" > /dev/null
  sleep 10 # the last windows close
  for p in "${pids[@]}"; do kill -INT "$p"; done
  wait "${pids[@]}"
  cat "$WORK"/alerts-"$name"-*.jsonl | python3 -c '
import json, sys
name, started = sys.argv[1], int(sys.argv[2])
lags = []
for line in sys.stdin:
    a = json.loads(line)
    if a["finding_info"]["analytic"]["uid"] != "logons_per_account_10s":
        continue
    if a["end_time"] < started + 20000:
        continue
    lags.append(a["finding_info"]["created_time"] - a["end_time"])
lags.sort()
if not lags:
    sys.exit(f"{name:14} no probe alert of a window ending after the first 20 s (LIVE too short?)")
q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
print(f"{name:14} {len(lags):6} alerts  latency ms: median {q(0.5)}  p90 {q(0.9)}  p99 {q(0.99)}  max {lags[-1]}")
' "$name" "$started"
}

run local-1 local 1
run repartition-1 repartition 1
run repartition-3 repartition 3
