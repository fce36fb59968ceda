#!/usr/bin/env bash
# The replaced platform's way of answering counts against `GET /v1/counts` (issue #13): an SQL
# COUNT/GROUP BY per request over a MODELS-row `models` table (indexed on is_active and provider,
# as it was), timed with the same client, connection count and duration as a node holding the
# same MODELS models.
#
#   scripts/bench-sql-counts.sh [MODELS=1000000] [CONNECTIONS=32] [DURATION=20]
#
# fill_events --shape catalogue writes MODELS registrations (and an activation for four in five)
# to a fresh "synth" topic of the in-memory test broker (3 partitions). A release node of region
# synth on a fresh database folds it; once /v1/counts says MODELS models, `aigo-bench
# sql-counts-fill` builds the same catalogue as a table in a second fresh database and
# `aigo-bench sql-counts-server` answers GET /v1/counts from it with one GROUPING SETS query per
# request (pool of 10 connections). `aigo-bench read-load` (CONNECTIONS keep-alive connections,
# 2 s warm-up, DURATION s measured) then loads the node, the SQL server, and the node again.
# Both answers are checked to agree (total, active, per-provider total/active) before any load.
# Everything started is stopped and both databases dropped on exit.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

MODELS=${1:-1000000}
CONNECTIONS=${2:-32}
DURATION=${3:-20}
BROKERS=127.0.0.1:19092
NODE_PORT=8098
SQL_PORT=8099
NODE_URL=http://127.0.0.1:$NODE_PORT
SQL_URL=http://127.0.0.1:$SQL_PORT
STAMP="$(date +%s)$$"
PREFIX="bench-sql-counts-$STAMP"
NODE_DB="aigo_sql_counts_node_$STAMP"
SQL_DB="aigo_sql_counts_table_$STAMP"
DIR=$(mktemp -d)
RELEASE="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release"
# Catch-up of the node is bounded: this many seconds at most.
CATCH_UP_LIMIT=${CATCH_UP_LIMIT:-900}

scripts/services.sh up >/dev/null
[[ -n "${BIN_PREBUILT:-}" ]] ||
    cargo build --release -p region-node -p bench --bins --example fill_events

NODE_PID=
SQL_PID=
cleanup() {
    local pid
    for pid in "$NODE_PID" "$SQL_PID"; do
        [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$NODE_PID" "$SQL_PID"; do
        [[ -n $pid ]] && wait "$pid" 2>/dev/null || true
    done
    for db in "$NODE_DB" "$SQL_DB"; do
        psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$DIR"
}
trap cleanup EXIT

# counts_summary URL: total, active and per-provider total/active of a /v1/counts answer, as
# one canonical JSON line (what both servers must agree on).
counts_summary() {
    curl -fsS "$1" | python3 -c '
import json, sys
c = json.load(sys.stdin)
print(json.dumps({"total": c["total"], "active": c["active"],
                  "by_provider": {p: [v["total"], v["active"]] for p, v in c["by_provider"].items()}},
                 sort_keys=True))'
}

log "filling $PREFIX.events.synth with a catalogue of $MODELS models"
"$RELEASE/examples/fill_events" --brokers "$BROKERS" --topic "$PREFIX.events.synth" \
    --region synth --shape catalogue --models "$MODELS" >"$DIR/fill.log" 2>&1 ||
    die "fill_events failed: $(tail -5 "$DIR/fill.log")"

log "release node on $NODE_DB"
cat >"$DIR/node.toml" <<TOML
region = "synth"
[http]
listen = "127.0.0.1:$NODE_PORT"
[database]
url = "postgres://postgres@127.0.0.1:5432/$NODE_DB"
[kafka]
brokers = "$BROKERS"
topic_prefix = "$PREFIX"
partitions = 3
TOML
"$RELEASE/region-node" --config "$DIR/node.toml" migrate >"$DIR/migrate.log" 2>&1 ||
    die "migrate failed (see $DIR/migrate.log)"
started=$SECONDS
RUST_LOG=warn "$RELEASE/region-node" --config "$DIR/node.toml" serve 2>>"$DIR/node.log" &
NODE_PID=$!
until curl -fsS -o /dev/null "$NODE_URL/readyz" 2>/dev/null &&
    [[ $(curl -fsS "$NODE_URL/v1/counts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])') -ge $MODELS ]]; do
    kill -0 "$NODE_PID" 2>/dev/null || die "the node exited (see $DIR/node.log)"
    ((SECONDS - started < CATCH_UP_LIMIT)) || die "the node did not hold $MODELS models within ${CATCH_UP_LIMIT} s"
    sleep 0.5
done
log "node ready with $MODELS models after $((SECONDS - started)) s"

log "filling the models table in $SQL_DB"
psql -h 127.0.0.1 -U postgres -qAtc "CREATE DATABASE $SQL_DB" >/dev/null
SQL_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$SQL_DB"
"$RELEASE/aigo-bench" sql-counts-fill --database-url "$SQL_DATABASE_URL" --models "$MODELS" |
    tee "$DIR/sql-fill.json" >&2
"$RELEASE/aigo-bench" sql-counts-server --database-url "$SQL_DATABASE_URL" \
    --listen "127.0.0.1:$SQL_PORT" 2>>"$DIR/sql-server.log" &
SQL_PID=$!
wait_for_port 127.0.0.1 "$SQL_PORT" 30 "$SQL_PID" || die "sql-counts-server did not start (see $DIR/sql-server.log)"

node_counts=$(counts_summary "$NODE_URL/v1/counts")
sql_counts=$(counts_summary "$SQL_URL/v1/counts")
[[ $node_counts == "$sql_counts" ]] ||
    die "the answers differ: node $node_counts, SQL $sql_counts"
log "both answer $(python3 -c 'import json,sys; c=json.loads(sys.argv[1]); print("total", c["total"], "active", c["active"], "providers", len(c["by_provider"]))' "$node_counts")"

# load NAME URL: read-load against URL; keeps its JSON in $DIR/NAME.json.
load() {
    local name=$1 url=$2
    log "$name: read-load $url, $CONNECTIONS connections, $DURATION s (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
    "$RELEASE/aigo-bench" read-load --url "$url" --connections "$CONNECTIONS" \
        --duration "$DURATION" --warmup 2 | tee "$DIR/$name.out" >&2
    tail -1 "$DIR/$name.out" >"$DIR/$name.json"
}
load node "$NODE_URL/v1/counts"
load sql "$SQL_URL/v1/counts"
load node-again "$NODE_URL/v1/counts"
node_rss=$(ps -o rss= -p "$NODE_PID" | tr -d ' ')

echo
echo "$MODELS models, $CONNECTIONS connections, $DURATION s each, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$DIR" "$node_rss" <<'PY'
import json, sys
d, rss = sys.argv[1], int(sys.argv[2])
fill = json.load(open(f"{d}/sql-fill.json"))
print(f"{'server':<30} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'failed':>7} {'bytes':>7}")
for name, label in [("node", "node GET /v1/counts"), ("sql", "SQL COUNT/GROUP BY"),
                    ("node-again", "node GET /v1/counts, again")]:
    r = json.load(open(f"{d}/{name}.json"))
    print(f"{label:<30} {r['requests_per_second']:>10.1f} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} "
          f"{r['max_ms']:>9.2f} {r['failures']:>7} {r['bytes_per_answer']:>7}")
print(f"node resident memory after the loads: {rss / 1024:.0f} MiB")
print("SQL table: " + ", ".join(f"{k} {v}" for k, v in fill.items() if k != "plan"))
PY
