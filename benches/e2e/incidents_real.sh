#!/usr/bin/env bash
# Alerts against incidents on real attack recordings (issue #16): the SigmaHQ Windows rule set and the bundled
# hunts over the OTRF atomic LSASS recordings (one run each) and over all of EVTX-ATTACK-SAMPLES (one run, the
# 277 recordings merged in event-time order), with the bundled incident rules. Prints one table row per run:
# events, alerts, incidents (distinct ids) by rule, Incident Findings sent (creations + updates); keeps the
# outputs in $OUT.
#
#   GHOSTHUNT_BIN=target/release/ghosthunt benches/e2e/incidents_real.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
OUT="${OUT:-${TMPDIR:-/tmp}/ghosthunt-incidents}"
SIGMA_INPUTS_NO_EVENTS=1
. "$HERE/sigma_inputs.sh"
mkdir -p "$OUT"
SIGMA_DIRS="$(IFS=,; echo "${RULE_DIRS[*]}")"

run() { # name events-file
  local name="$1" events="$2" dir="$OUT/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  GHOSTHUNT__SOURCE__KIND=file GHOSTHUNT__SOURCE__FILE__PATHS="$events" \
    GHOSTHUNT__SIGMA__DIRECTORIES="$SIGMA_DIRS" \
    GHOSTHUNT__ALERTS__SINK=file GHOSTHUNT__ALERTS__PATH="$dir/alerts.jsonl" \
    GHOSTHUNT__INCIDENTS__SINK=file GHOSTHUNT__INCIDENTS__PATH="$dir/incidents.jsonl" \
    GHOSTHUNT__DEAD_LETTERS__PATH="$dir/dead-letters.jsonl" GHOSTHUNT__METRICS__LISTEN="" \
    RUST_LOG=warn "$BIN" run --format json 2> "$dir/log"
  python3 - "$name" "$events" "$dir" <<'PY'
import collections, json, sys
name, events, d = sys.argv[1:]
n = sum(1 for _ in open(events))
alerts = [json.loads(l) for l in open(f"{d}/alerts.jsonl")]
incidents = [json.loads(l) for l in open(f"{d}/incidents.jsonl")]
ids = collections.defaultdict(set)
for i in incidents:
    ids[i["unmapped"]["rule_id"]].add(i["metadata"]["correlation_uid"])
by_rule = ", ".join(f"{r} {len(s)}" for r, s in sorted(ids.items())) or "none"
distinct = sum(len(s) for s in ids.values())
print(f"| {name} | {n:,} | {len(alerts):,} | {distinct} ({by_rule}) | {len(incidents)} |")
PY
}

echo "| recording | events | alerts | incidents (by rule) | Incident Findings sent |"
echo "|---|---|---|---|---|"
for z in "$CORPUS"/events/otrf-atomic/windows/credential_access/host/*lsass*.zip; do
  name="$(basename "$z" .zip)"
  unzip -p "$z" -x '__MACOSX/*' 2>/dev/null | grep -v '^\s*$' > "$OUT/$name.jsonl"
  run "$name" "$OUT/$name.jsonl"
done
EVTX="$OUT/evtx-attack-samples"
rm -rf "$EVTX" && mkdir -p "$EVTX"
tar -xzf "$CORPUS/events/evtx-attack-samples.jsonl.tgz" -C "$EVTX"
python3 - "$EVTX" > "$OUT/evtx-attack-samples.jsonl" <<'PY'
import json, os, sys
rows = []
for root, _, files in os.walk(sys.argv[1]):
    for f in sorted(files):
        for line in open(os.path.join(root, f), encoding="utf-8"):
            if line.strip():
                try:
                    t = json.loads(line)["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"]
                except (KeyError, TypeError, ValueError):
                    t = ""
                rows.append((t, line.rstrip("\n")))
rows.sort(key=lambda r: r[0])
sys.stdout.write("".join(l + "\n" for _, l in rows))
PY
run evtx-attack-samples "$OUT/evtx-attack-samples.jsonl"
