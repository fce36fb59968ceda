#!/usr/bin/env bash
# History reads at two log sizes, with the history index and with a full replay (the baseline),
# on the same node and the same event log.
#
#   scripts/bench-history.sh [SIZES="100000 1000000"] [AT_RUNS=200] [SERIES_RUNS=30]
#
# For each size N: fills a fresh topic of the in-memory test broker with N synthetic events
# spread at a constant rate (100,000 events per 30 days, so 1,000,000 span 300 days), starts a
# release node on a fresh database (port 8197) whose catalogue follower logs them and whose
# indexer indexes them, then times `GET /v1/counts?at=` at random instants over the whole log
# and the 721-point series of the last 30 days (`aigo-bench history`). Then the same node is
# restarted with `history.index = false` and the same reads are timed again by replay (fewer
# runs: a replay reads the whole log each time). Prints one JSON line per measurement.
# KEEP_DATABASE=1 keeps each size's database (to look at the index afterwards).
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

SIZES=${1:-"100000 1000000"}
AT_RUNS=${2:-200}
SERIES_RUNS=${3:-30}
BROKERS=127.0.0.1:19092
PORT=8197
BASE="http://127.0.0.1:$PORT"
RELEASE="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release"
DIR=$(mktemp -d)

scripts/services.sh up >/dev/null
cargo build --release -p region-node --bin region-node --example fill_events
cargo build --release -p bench --bin aigo-bench

NODE_PID=
DATABASE=
stop_node() {
    if [[ -n $NODE_PID ]]; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        NODE_PID=
    fi
}
cleanup() {
    stop_node
    [[ -n $DATABASE ]] && psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT

sql() { psql -h 127.0.0.1 -U postgres -d "$DATABASE" -qAtc "$1"; }

# start_node CONFIG [ENV...]: serves in the background, waits for /readyz.
start_node() {
    local config=$1
    shift
    env "$@" RUST_LOG=warn "$RELEASE/region-node" --config "$config" serve 2>>"$DIR/node.log" &
    NODE_PID=$!
    local started=$SECONDS
    until curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; do
        ((SECONDS - started < 300)) || die "the node was not ready within 300 s (see $DIR/node.log)"
        sleep 0.5
    done
}

for size in $SIZES; do
    prefix="bench-history-$size-$(date +%s)"
    DATABASE="${prefix//-/_}"
    span_days=$((size * 30 / 100000))
    cat >"$DIR/node.toml" <<TOML
region = "bench"
regions = ["synth"]
[http]
listen = "127.0.0.1:$PORT"
max_history_reads = 1
[database]
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
read_statement_timeout_ms = 600000
[kafka]
brokers = "$BROKERS"
topic_prefix = "$prefix"
partitions = 3
TOML
    log "== $size events over $span_days days"
    "$RELEASE/examples/fill_events" --brokers "$BROKERS" --topic "$prefix.events.synth" \
        --region synth --events "$size" --span-days "$span_days" >/dev/null
    "$RELEASE/region-node" --config "$DIR/node.toml" migrate >/dev/null
    started=$SECONDS
    start_node "$DIR/node.toml"
    until [[ $(sql 'SELECT count(*) FROM event_log' 2>/dev/null || echo 0) -ge $size ]]; do
        ((SECONDS - started < 1800)) || die "event_log did not fill within 1800 s"
        sleep 1
    done
    logged=$((SECONDS - started))
    until [[ $(sql 'SELECT (SELECT indexed_through FROM history_index_state) >= (SELECT max(arrival) FROM event_log)') == t ]]; do
        ((SECONDS - started < 1800)) || die "the index did not catch up within 1800 s"
        sleep 0.5
    done
    log "event_log holds $size events after $logged s; indexed after $((SECONDS - started)) s"
    blocks=$(sql "SELECT count(*) || ' blocks, ' || pg_size_pretty(pg_total_relation_size('history_blocks')) FROM history_blocks")
    log "index: $blocks"
    from=$(sql "SELECT extract(epoch FROM min(occurred_at))::bigint FROM event_log")
    to=$(sql "SELECT extract(epoch FROM max(occurred_at))::bigint FROM event_log")

    log "index: $AT_RUNS ?at= and $SERIES_RUNS series"
    printf '{"events":%s,"source":"index",%s\n' "$size" \
        "$("$RELEASE/aigo-bench" history --target "$BASE" --from "$from" --to "$to" \
            --at-runs "$AT_RUNS" --series-runs "$SERIES_RUNS" | cut -c2-)"
    stop_node
    replay_at=$((size >= 1000000 ? 10 : 40))
    replay_series=$((size >= 1000000 ? 3 : 10))
    log "replay (baseline): $replay_at ?at= and $replay_series series"
    start_node "$DIR/node.toml" AIGO_HISTORY__INDEX=false
    printf '{"events":%s,"source":"replay",%s\n' "$size" \
        "$("$RELEASE/aigo-bench" history --target "$BASE" --from "$from" --to "$to" \
            --at-runs "$replay_at" --series-runs "$replay_series" | cut -c2-)"
    stop_node
    if [[ -n ${KEEP_DATABASE:-} ]]; then
        log "kept database $DATABASE"
    else
        psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null
    fi
    DATABASE=
done
