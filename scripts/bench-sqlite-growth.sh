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
PORT=29392
PYTHON="$(bench_python)"
trap stop_bench_broker EXIT

for reader_config in $READER_CONFIGS; do
    [[ "$reader_config" == - ]] && reader_config=""
    for prefill in $PREFILLS; do
        start_bench_broker "$PORT" "?mode=direct"
        python3 scripts/nisshi-sqlite-index.py "$bench_broker_dir/nisshi.db" >/dev/null
        log "readers: ${reader_config:-librdkafka defaults}; prefill $prefill records, then ${SECONDS_STEADY} s at $RATE records/s, $READERS tail readers"
        READER_CONFIG="$reader_config" "$PYTHON" scripts/bench-sqlite-growth.py \
            "127.0.0.1:$PORT" "$bench_broker_pid" "$prefill" "$SECONDS_STEADY" "$RATE" "$READERS"
        log "  file: $(du -h "$bench_broker_dir/nisshi.db" | cut -f1)"
        stop_bench_broker
    done
done
