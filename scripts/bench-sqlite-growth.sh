#!/usr/bin/env bash
# Does the sqlite broker (as scripts/services.sh runs it: mode=direct, header index) cost more
# per record as its file grows? For each prefill, a fresh private broker is filled with that
# many relay-shaped records, then carries a steady produce rate with tail readers on 50 ms waits
# (scripts/bench-sqlite-growth.py); the broker's CPU over the steady window is compared across
# prefills in one run (the first prefill is the baseline). Killed and removed at the end.
#
#   scripts/bench-sqlite-growth.sh [PREFILLS="0 600000"] [SECONDS=60] [RATE=300] [READERS=5]
#   READER_CONFIGS="- queued.min.messages=1,fetch.queue.backoff.ms=50" scripts/bench-sqlite-growth.sh 0 40
#       each prefill once per reader configuration (extra librdkafka properties of the readers,
#       comma-separated; "-" for none, the baseline), in one run
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

PREFILLS=${1:-0 600000}
SECONDS_STEADY=${2:-60}
RATE=${3:-300}
READERS=${4:-5}
READER_CONFIGS=${READER_CONFIGS:--}
CONFLUENT_KAFKA=2.16.2
VENV="$HOME/.cache/aigo-tracker/venv-bench"
PORT=29392

if ! "$VENV/bin/python" -c "import confluent_kafka" 2>/dev/null; then
    log "creating $VENV with confluent-kafka $CONFLUENT_KAFKA"
    python3 -m venv --clear "$VENV"
    "$VENV/bin/pip" install --quiet "confluent-kafka==$CONFLUENT_KAFKA"
fi
[[ -x "$NISSHI_BIN" ]] || die "$NISSHI_BIN not found; run scripts/install-deps.sh"
port_open 127.0.0.1 "$PORT" && die "port $PORT is taken"

dir=""
pid=""
cleanup() {
    if [[ -n "$pid" ]]; then
        kill -s KILL -- "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [[ -n "$dir" ]]; then
        rm -rf "$dir"
    fi
    pid="" dir=""
}
trap cleanup EXIT

for reader_config in $READER_CONFIGS; do
    [[ "$reader_config" == - ]] && reader_config=""
    for prefill in $PREFILLS; do
        dir="$(mktemp -d /tmp/aigo-bench-growth.XXXXXX)"
        # Started in /: Nisshi resolves sqlite paths against its working directory.
        (cd / && RUST_LOG=error exec "$NISSHI_BIN" broker --cluster-id bench \
            --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
            --storage-engine "sqlite://$dir/nisshi.db?mode=direct" >"$dir/log" 2>&1) &
        pid=$!
        wait_for_port 127.0.0.1 "$PORT" 30 "$pid" || die "the broker did not start: $(tail -3 "$dir/log")"
        python3 scripts/nisshi-sqlite-index.py "$dir/nisshi.db" >/dev/null
        log "readers: ${reader_config:-librdkafka defaults}; prefill $prefill records, then ${SECONDS_STEADY} s at $RATE records/s, $READERS tail readers"
        READER_CONFIG="$reader_config" "$VENV/bin/python" scripts/bench-sqlite-growth.py \
            "127.0.0.1:$PORT" "$pid" "$prefill" "$SECONDS_STEADY" "$RATE" "$READERS"
        log "  file: $(du -h "$dir/nisshi.db" | cut -f1)"
        cleanup
    done
done
