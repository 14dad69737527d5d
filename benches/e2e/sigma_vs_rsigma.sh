#!/usr/bin/env bash
# Issue 14: the SigmaHQ Windows rule set over the OTRF atomic events, ghosthunt against rsigma's daemon,
# side by side and alternating. Both read the same JSON-lines file and the same rule directories; each run is
# one whole process (rule loading included), timed by /usr/bin/time (wall, CPU, peak RSS).
#
#   RSIGMA=/path/to/rsigma RUNS=3 benches/e2e/sigma_vs_rsigma.sh
#
# rsigma: `fetch` github:timescale/rsigma, commit 1d4f64e, then
#   RUSTUP_TOOLCHAIN=1.95.0 cargo build --release --locked -p rsigma   (its fastest configuration measured is
#   `engine daemon -p sysmon`, events on stdin, detections to stdout).
# Events: every OTRF atomic Windows recording unzipped into one file (built once into $EVENTS when missing).
# GHOSTHUNT_ARGS: extra `ghosthunt bench` arguments; GHOSTHUNT_ENV: extra settings, e.g.
#   GHOSTHUNT_ENV="GHOSTHUNT__SIGMA__THREADS=1" to evaluate on one thread.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${GHOSTHUNT_BIN:-$HERE/../../target/release/ghosthunt}"
RSIGMA="${RSIGMA:?set RSIGMA to an rsigma binary built from timescale/rsigma 1d4f64e}"
RUNS="${RUNS:-3}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
. "$HERE/sigma_inputs.sh"
echo "events: $(wc -l < "$EVENTS") lines, $(( $(stat -c %s "$EVENTS") / 1000000 )) MB; runs: $RUNS; $(nproc) cores"

# One directory for both (rsigma's daemon takes one `--rules`): copies of the three.
mkdir "$OUT/rules"
for d in "${RULE_DIRS[@]}"; do cp -r "$d" "$OUT/rules/$(basename "$(dirname "$d")")-$(basename "$d")"; done
echo "rules: $(find "$OUT/rules" -name '*.yml' | wc -l) files"

# One line per run: tool wall_s cpu_s peak_rss_kb detections
ghosthunt_run() {
  env GHOSTHUNT__LOG__FILTER=warn GHOSTHUNT__HUNTS__BUILTIN=false GHOSTHUNT__INCIDENTS__BUILTIN=false \
    GHOSTHUNT__SIGMA__DIRECTORIES="$OUT/rules" \
    ${GHOSTHUNT_ENV:-} /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" \
    "$BIN" bench --json --file "$EVENTS" ${GHOSTHUNT_ARGS:-} > "$OUT/gh.json"
  read -r wall user sys rss < "$OUT/time"
  alerts=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["alerts"])' "$OUT/gh.json")
  echo "ghosthunt $wall $(echo "$user + $sys" | bc) $rss $alerts"
}
rsigma_run() {
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" \
    "$RSIGMA" engine daemon -r "$OUT/rules" -p sysmon --api-addr 127.0.0.1:0 < "$EVENTS" > "$OUT/rs.out" 2> "$OUT/rs.err"
  read -r wall user sys rss < "$OUT/time"
  echo "rsigma $wall $(echo "$user + $sys" | bc) $rss $(grep -c . "$OUT/rs.out" || true)"
}

for i in $(seq "$RUNS"); do
  ghosthunt_run
  rsigma_run
done | tee "$OUT/runs"
python3 - "$OUT/runs" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, wall, cpu, rss, hits = line.split()
    runs.setdefault(tool, []).append((float(wall), float(cpu), int(rss), int(hits)))
med = {t: [statistics.median(r[i] for r in rs) for i in range(4)] for t, rs in runs.items()}
print("| tool | wall s | CPU s | cores busy | peak RSS MiB | detections |")
print("|---|---|---|---|---|---|")
for t, (wall, cpu, rss, hits) in med.items():
    print(f"| {t} | {wall:.1f} | {cpu:.1f} | {cpu / wall:.2f} | {rss / 1024:.0f} | {hits:.0f} |")
g, r = med["ghosthunt"], med["rsigma"]
print(f"wall time: ghosthunt {r[0] / g[0]:.2f}x faster; CPU {r[1] / g[1]:.2f}x less; RSS {g[2] / r[2]:.2f} of rsigma's")
EOF
