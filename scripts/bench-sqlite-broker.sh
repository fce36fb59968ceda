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
CONFLUENT_KAFKA=2.16.2
VENV="$HOME/.cache/aigo-tracker/venv-bench"
PORT=29391

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

for indexed in yes no; do
    dir="$(mktemp -d /tmp/aigo-bench-sqlite.XXXXXX)"
    # Started in /: Nisshi resolves sqlite paths against its working directory.
    (cd / && RUST_LOG=error exec "$NISSHI_BIN" broker --cluster-id bench \
        --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine "sqlite://$dir/nisshi.db" >"$dir/log" 2>&1) &
    pid=$!
    wait_for_port 127.0.0.1 "$PORT" 30 "$pid" || die "the broker did not start: $(tail -3 "$dir/log")"
    if [[ "$indexed" == yes ]]; then
        python3 scripts/nisshi-sqlite-index.py "$dir/nisshi.db" >/dev/null
    fi
    for wait_ms in $WAITS; do
        log "header index: $indexed, fetch.wait.max.ms $wait_ms, $RECORDS records"
        "$VENV/bin/python" scripts/bench-sqlite-broker.py "127.0.0.1:$PORT" "t-$wait_ms" \
            "$RECORDS" "$wait_ms"
    done
    cleanup
done
