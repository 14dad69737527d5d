# Sourced by the Sigma benchmarks (HERE set): the corpus, the SigmaHQ Windows rule directories, and (unless
# SIGMA_INPUTS_NO_EVENTS is set) the OTRF atomic events as one JSON-lines file at $EVENTS (every Windows
# recording unzipped; built when missing).
CORPUS="${GHOSTHUNT_CORPUS:-$HERE/../../../shared/corpus}"
EVENTS="${EVENTS:-${TMPDIR:-/tmp}/otrf-atomic.jsonl}"
RULE_DIRS=("$CORPUS/sigma/rules/windows" "$CORPUS/sigma/rules-emerging-threats"
  "$CORPUS/sigma/rules-threat-hunting/windows")
if [ -z "${SIGMA_INPUTS_NO_EVENTS:-}" ] && [ ! -s "$EVENTS" ]; then
  echo "building $EVENTS from $CORPUS/events/otrf-atomic" >&2
  for z in "$CORPUS"/events/otrf-atomic/windows/*/host/*.zip; do
    unzip -p "$z" -x '__MACOSX/*' 2>/dev/null | grep -v '^\s*$'
  done > "$EVENTS"
fi
