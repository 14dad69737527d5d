#!/usr/bin/env bash
# Issue 3: sustained events/s through Kafka (tansu) with the bundled hunts; 3 runs over a 1M-event backlog.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
WORK="$(mktemp -d)"
T="${GHOSTHUNT_TANSU:-$(bash "$HERE/../../.ci/install-tansu" | tail -n 1)}"
PORT=29092
cd "$WORK"; echo "output in $WORK"
$T broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine memory://tansu/ > tansu.log 2>&1 &
TP=$!
sleep 1
for t in events alerts dead-letters; do $T topic create --broker tcp://127.0.0.1:$PORT --partitions 3 $t > /dev/null; done
export GHOSTHUNT__KAFKA__BROKERS=127.0.0.1:$PORT
N=${N:-1000000}
start=$(date +%s.%N)
GHOSTHUNT__SOURCE__GENERATOR__SPEED=30 $BIN produce --topic events --rate 100000000 --limit $N 2> produce.log
end=$(date +%s.%N)
echo "produced $N in $(echo "$end - $start" | bc) s"
for run in 1 2 3; do
  export GHOSTHUNT__SOURCE__KIND=kafka GHOSTHUNT__SOURCE__KAFKA__TOPICS=events GHOSTHUNT__SOURCE__KAFKA__GROUP_ID=bench-$run \
    GHOSTHUNT__ALERTS__SINK=kafka GHOSTHUNT__ALERTS__TOPIC=alerts GHOSTHUNT__DEAD_LETTERS__SINK=kafka GHOSTHUNT__DEAD_LETTERS__TOPIC=dead-letters \
    GHOSTHUNT__SOURCE__KAFKA__OPTIONS__SESSION_TIMEOUT_MS=6000 GHOSTHUNT__METRICS__LISTEN=127.0.0.1:19465 GHOSTHUNT__LOG__FILTER=warn
  $BIN run 2> run-$run.log &
  pid=$!
  first=""
  while true; do
    n=$(curl -s 127.0.0.1:19465/metrics | awk '/^ghosthunt_events_received_total /{print $2}')
    now=$(date +%s.%N)
    if [ -n "$n" ] && [ "${n%.*}" -gt 0 ] && [ -z "$first" ]; then first=$now; firstn=$n; fi
    if [ -n "$n" ] && [ "${n%.*}" -ge "$N" ]; then break; fi
    sleep 0.2
  done
  # then until everything is acknowledged (a live consumer closes the backlog's last windows once the quiet
  # after it covers them: up to a window's length of wall-clock time)
  while true; do
    a=$(curl -s 127.0.0.1:19465/metrics | awk '/^ghosthunt_acknowledged_events_total /{print $2}')
    if [ -n "$a" ] && [ "${a%.*}" -ge "$N" ]; then break; fi
    sleep 0.5
  done
  python3 "$HERE/quantiles.py" http://127.0.0.1:19465/metrics > kmetrics-$run.txt
  grep -E "^VmHWM" /proc/$pid/status >> kmetrics-$run.txt
  kill -INT $pid; wait $pid
  echo "run $run: $(echo "($N - $firstn) / ($now - $first)" | bc) events/s (received and run through the hunts, from the first batch to the last)"
  cat kmetrics-$run.txt
done
kill $TP
