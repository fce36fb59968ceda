#!/usr/bin/env bash
# Reading a topic back from Nisshi's sqlite engine, without and with the header index that
# scripts/services.sh adds (scripts/nisshi-sqlite-index.py), in one run: for each fetch wait,
# a fresh topic of RECORDS relay-shaped records (two headers each) is filled and read from the
# middle and from offset 0 (scripts/bench-sqlite-broker.py, confluent-kafka in a venv under
# ~/.cache/aigo-tracker). Each broker is private (own port and directory), killed at the end.
# Bounded: each read stops after BENCH_READ_LIMIT seconds (60).
#
#   scripts/bench-sqlite-broker.sh [RECORDS=60000] [WAITS_MS="50 500 2000"]
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

RECORDS=${1:-60000}
WAITS=${2:-50 500 2000}
[[ "$RECORDS" =~ ^[0-9]+$ && "$RECORDS" -ge 3 ]] || die "RECORDS must be an integer >= 3"
PORT=29391
PYTHON="$(bench_python)"
trap stop_bench_broker EXIT

for indexed in yes no; do
    start_bench_broker "$PORT"
    if [[ "$indexed" == yes ]]; then
        python3 scripts/nisshi-sqlite-index.py "$bench_broker_dir/nisshi.db" >/dev/null
    fi
    for wait_ms in $WAITS; do
        log "header index: $indexed, fetch.wait.max.ms $wait_ms, $RECORDS records"
        "$PYTHON" scripts/bench-sqlite-broker.py "127.0.0.1:$PORT" "t-$wait_ms" \
            "$RECORDS" "$wait_ms"
    done
    stop_bench_broker
done
