#!/usr/bin/env bash
# Commands per second on one node, with group commit and without; then a bulk import (issue #13).
#
#   scripts/bench-write-throughput.sh [MODELS=5000] [CONCURRENCY=64] [IMPORT_MODELS=100000]
#
# One release node (port 8097, a fresh database each run, the in-memory test broker). First
# `aigo-bench load` registers MODELS models and activates each (2 × MODELS commands, CONCURRENCY
# in flight) with group commit on (`database.group_commit_max` = 512), then the baseline in the
# same run: the same load on a fresh database with group_commit_max = 1, every command its own
# transaction as before group commit. Then `region-node import` of IMPORT_MODELS registrations
# and as many activations from one NDJSON file, timed until every event is published.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

MODELS=${1:-5000}
CONCURRENCY=${2:-64}
IMPORT_MODELS=${3:-100000}
PORT=8097
TOKEN=bench-admin-token-0123456789
ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres
DIR=$(mktemp -d)
TARGET_DIR=${CARGO_TARGET_DIR:-$AIGO_ROOT/target}
BIN=$TARGET_DIR/release/region-node
BENCH=$TARGET_DIR/release/aigo-bench

scripts/services.sh up >/dev/null
[[ -n "${BIN_PREBUILT:-}" ]] || cargo build --release -p region-node -p bench

NODE_PID=
DATABASE=
stop_node() {
    if [[ -n "$NODE_PID" ]]; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        NODE_PID=
    fi
    if [[ -n "$DATABASE" ]]; then
        psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
        DATABASE=
    fi
}
cleanup() {
    stop_node
    rm -rf "$DIR"
}
trap cleanup EXIT

# start_node GROUP_COMMIT_MAX: a node on a fresh database and topics.
start_node() {
    DATABASE="aigo_bench_throughput_$(date +%s%N)"
    cat >"$DIR/node.toml" <<TOML
region = "eu-west"
[http]
listen = "127.0.0.1:$PORT"
commands_per_second = 1000000
command_burst = 1000000
[database]
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
max_connections = 20
group_commit_max = $1
[kafka]
brokers = "127.0.0.1:19092"
topic_prefix = "$DATABASE"
[[tokens]]
name = "admin"
secret = "$TOKEN"
scopes = ["admin"]
TOML
    "$BIN" --config "$DIR/node.toml" migrate >/dev/null 2>&1
    RUST_LOG=warn "$BIN" --config "$DIR/node.toml" serve >"$DIR/node-$1.log" 2>&1 &
    NODE_PID=$!
    wait_for_port 127.0.0.1 "$PORT" 30
}

# published: seconds until the outbox is empty (every event on the topic).
wait_published() {
    local url="postgres://postgres@127.0.0.1:5432/$DATABASE"
    until [[ "$(psql -tAq "$url" -c 'SELECT count(*) FROM outbox WHERE published_at IS NULL')" == 0 ]]; do
        sleep 0.2
    done
}

for group in 512 1; do
    start_node "$group"
    log "load: $MODELS models × 2 commands, concurrency $CONCURRENCY, group_commit_max $group"
    "$BENCH" load --target "http://127.0.0.1:$PORT" --token "$TOKEN" \
        --models "$MODELS" --concurrency "$CONCURRENCY"
    log "transactions: $(psql -tAq "postgres://postgres@127.0.0.1:5432/$DATABASE" \
        -c "SELECT count(*) || ' events in ' || count(DISTINCT xmin::text) || ' transactions' FROM events")"
    stop_node
done

log "import file: $IMPORT_MODELS registrations + $IMPORT_MODELS activations"
python3 - "$IMPORT_MODELS" >"$DIR/import.ndjson" <<'PY'
import json, sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    out.write(json.dumps({"idempotency_key": f"r{i}", "method": "POST", "path": "/v1/models",
        "body": {"id": f"bulk/m-{i}", "provider": f"p{i % 40}", "name": {"en": f"Model {i}"}}}) + "\n")
for i in range(n):
    out.write(json.dumps({"idempotency_key": f"a{i}", "method": "POST",
        "path": f"/v1/models/bulk/m-{i}/activate"}) + "\n")
PY
start_node 512
START=$(date +%s.%N)
AIGO_TOKEN=$TOKEN "$BIN" import --quiet --target "http://127.0.0.1:$PORT" "$DIR/import.ndjson"
IMPORTED=$(date +%s.%N)
wait_published
PUBLISHED=$(date +%s.%N)
log "import: $(python3 -c "print(round($IMPORTED - $START, 1))") s; every event published after $(python3 -c "print(round($PUBLISHED - $START, 1))") s"
log "node resident memory: $(ps -o rss= -p "$NODE_PID") KiB"
