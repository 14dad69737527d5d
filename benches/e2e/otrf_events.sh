# Sourced by the Sigma benchmarks: writes every OTRF atomic Windows recording of $CORPUS, unzipped, into one
# JSON-lines file at $EVENTS unless it is there already.
if [ ! -s "$EVENTS" ]; then
  echo "building $EVENTS from $CORPUS/events/otrf-atomic" >&2
  for z in "$CORPUS"/events/otrf-atomic/windows/*/host/*.zip; do
    unzip -p "$z" -x '__MACOSX/*' 2>/dev/null | grep -v '^\s*$'
  done > "$EVENTS"
fi
