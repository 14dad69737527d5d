#!/usr/bin/env bash
# Issue 13: what repartitioning costs. The bundled hunts over a backlog of N generated events in a
# 6-partition topic (keyed by host) on tansu, runs in turn:
#   local-1        one instance, scale.mode = local (every hunt where its events are read)
#   repartition-1  one instance, scale.mode = repartition (windowed hunts through the repartition topic)
#   repartition-3  three instances in one group, scale.mode = repartition
# Each: events/s from the first event received to the last (all instances; the bounded pipeline keeps
# what is received close to what is evaluated), CPU seconds of the ghosthunt processes once every event
# is received and the rows repartitioned stopped changing for 2 s (the backlog's last windows close
# later: while it is quiet, event time goes on at the wall clock's pace), and for repartition the rows
# and bytes sent per event.
#   N=500000 benches/e2e/scale.sh            (release build first: cargo build --release --locked -p ghosthunt)
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
WORK="$(mktemp -d)"
T="${GHOSTHUNT_TANSU:-$(bash "$HERE/../../.ci/install-tansu" | tail -n 1)}"
N=${N:-500000}
cd "$WORK"; echo "output in $WORK"
. "$HERE/broker.sh"
$T topic create --broker tcp://127.0.0.1:$PORT --partitions 1 alerts > /dev/null
GHOSTHUNT__SOURCE__GENERATOR__SPEED=30 $BIN produce --topic events --rate 100000000 --limit "$N" 2> produce.log
echo "produced $N events"

metric() { # url name -> value (summed over label sets)
  curl -s "$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f", s }'
}

run() { # name mode instances
  local name=$1 mode=$2 k=$3 pids=() i
  for i in $(seq "$k"); do
    GHOSTHUNT__SOURCE__KIND=kafka GHOSTHUNT__SOURCE__KAFKA__TOPICS=events GHOSTHUNT__SOURCE__KAFKA__GROUP_ID="$name" \
    GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS=6000 \
    GHOSTHUNT__ALERTS__SINK=kafka GHOSTHUNT__ALERTS__TOPIC=alerts \
    GHOSTHUNT__DEAD_LETTERS__SINK=file GHOSTHUNT__DEAD_LETTERS__PATH="$WORK/dead-$name-$i.jsonl" \
    GHOSTHUNT__SCALE__MODE="$mode" GHOSTHUNT__SCALE__TOPIC="$name-repartition" GHOSTHUNT__SCALE__PARTITIONS=6 \
    GHOSTHUNT__METRICS__LISTEN=127.0.0.1:$((19470 + i)) GHOSTHUNT__LOG__FILTER=warn \
      $BIN run 2> "run-$name-$i.log" &
    pids+=($!)
  done
  local first="" now="" received sent last_sent=-1 steady=0
  while true; do
    received=0; sent=0
    for i in $(seq "$k"); do
      received=$((received + $(metric http://127.0.0.1:$((19470 + i)) ghosthunt_events_received_total)))
      sent=$((sent + $(metric http://127.0.0.1:$((19470 + i)) ghosthunt_repartition_rows_total)))
    done
    if [ "$received" -gt 0 ] && [ -z "$first" ]; then first=$(date +%s.%N); fi
    if [ "$received" -ge "$N" ] && [ -z "$now" ]; then now=$(date +%s.%N); fi
    if [ -n "$now" ] && [ "$sent" -eq "$last_sent" ]; then steady=$((steady + 1)); else steady=0; fi
    last_sent=$sent
    # Every event received and nothing more repartitioned for 2 s: the batches in flight are done.
    if [ "$steady" -ge 10 ]; then break; fi
    sleep 0.2
  done
  local rows=0 bytes=0 cpu=0
  for i in $(seq "$k"); do
    rows=$((rows + $(metric http://127.0.0.1:$((19470 + i)) ghosthunt_repartition_rows_total)))
    bytes=$((bytes + $(metric http://127.0.0.1:$((19470 + i)) ghosthunt_repartition_bytes_total)))
  done
  for p in "${pids[@]}"; do # utime + stime, clock ticks
    cpu=$((cpu + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  cpu=$(python3 -c "print($cpu / $(getconf CLK_TCK))")
  for p in "${pids[@]}"; do kill -INT "$p"; done
  wait "${pids[@]}"
  local dead
  dead=$(cat "$WORK"/dead-"$name"-*.jsonl 2>/dev/null | wc -l)
  python3 - "$name" "$N" "$first" "$now" "$cpu" "$rows" "$bytes" "$dead" <<'PY'
import sys
name, n, first, now, cpu, rows, bytes_, dead = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
print(f"{name:14} {n / (now - first):9.0f} events/s  {cpu:6.1f} CPU s ({cpu / n * 1e6:.1f} per M events)"
      f"  repartitioned {rows / n:.4f} rows/event, {bytes_ / n:.1f} B/event, {dead:.0f} dead letters")
PY
}

run local-1 local 1
run repartition-1 repartition 1
run repartition-3 repartition 3
