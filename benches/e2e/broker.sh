# Sourced by the scale-out benches: starts tansu (memory storage) on a free port in the current
# directory (log: tansu.log), stops it when the script exits, and creates the 6-partition topic
# `events` once the broker takes it. Needs T (the tansu binary). Sets PORT, TP and
# GHOSTHUNT__KAFKA__BROKERS.
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
$T broker --listener-url tcp://127.0.0.1:$PORT --advertised-listener-url tcp://127.0.0.1:$PORT --storage-engine memory://tansu/ > tansu.log 2>&1 &
TP=$!
trap 'kill $TP 2>/dev/null' EXIT
for _ in $(seq 30); do # the broker is up once it takes the topic
  timeout 5 $T topic create --broker tcp://127.0.0.1:$PORT --partitions 6 events > /dev/null 2>&1 && break
  kill -0 $TP 2> /dev/null || { echo "the broker did not start: $PWD/tansu.log" >&2; exit 1; }
  sleep 1
done
export GHOSTHUNT__KAFKA__BROKERS=127.0.0.1:$PORT
