#!/usr/bin/env bash
# Replay throughput and history-query latency, on the in-memory test broker.
#
#   scripts/bench-replay.sh [EVENTS=1000000] [LOG_EVENTS=50000]
#
# 1. Fills a fresh topic with EVENTS synthetic events (valid model histories; the generator
#    first folds them in memory: the no-Kafka baseline), then runs `region-node replay` on it
#    and prints its events/s. `REPLAY_RUNS=3` replays it three times; `BASELINE_BIN=/path/to/
#    region-node` replays it with that build too, alternating with this one (same topic, same run).
# 2. Fills another topic with LOG_EVENTS events spread over the last 30 days, starts a node
#    (port 8097, a fresh database) whose catalogue follower logs them into event_log, then
#    times GET /v1/counts?at= and GET /v1/counts/series (30 days at 1 h) with curl.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

EVENTS=${1:-1000000}
LOG_EVENTS=${2:-50000}
REPLAY_RUNS=${REPLAY_RUNS:-1}
BASELINE_BIN=${BASELINE_BIN:-}
[[ "$REPLAY_RUNS" =~ ^[1-9][0-9]*$ ]] || die "REPLAY_RUNS must be a positive integer"
[[ -z $BASELINE_BIN || -x $BASELINE_BIN ]] || die "BASELINE_BIN=$BASELINE_BIN is not an executable"
BROKERS=127.0.0.1:19092
PORT=8097
PREFIX="bench-replay-$(date +%s)"
DATABASE="${PREFIX//-/_}"
DIR=$(mktemp -d)
RELEASE="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release"

scripts/services.sh up >/dev/null
cargo build --release -p region-node --bin region-node --example fill_events

NODE_PID=
cleanup() {
    [[ -n $NODE_PID ]] && kill -TERM "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
    psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

config() { # config REGION REGIONS PREFIX
    cat <<TOML
region = "$1"
regions = [$2]
[http]
listen = "127.0.0.1:$PORT"
[database]
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
max_connections = 10
acquire_timeout_ms = 3000
[kafka]
brokers = "$BROKERS"
topic_prefix = "$3"
partitions = 3
message_timeout_ms = 10000
TOML
}

log "== replay of $EVENTS events"
config synth '' "$PREFIX-r" >"$DIR/replay.toml"
"$RELEASE/examples/fill_events" --brokers "$BROKERS" --topic "$PREFIX-r.events.synth" \
    --region synth --events "$EVENTS"
# replay_once BINARY LABEL: one replay of the topic, its figures on one line.
replay_once() {
    "$1" --config "$DIR/replay.toml" replay --quiet >"$DIR/replay.json"
    printf '%-10s ' "$2"
    jq -c '{records_read, events_replayed, elapsed_ms, events_per_second, total, active, retired}' "$DIR/replay.json"
}
for _ in $(seq "$REPLAY_RUNS"); do
    replay_once "$RELEASE/region-node" "this build"
    if [[ -n $BASELINE_BIN ]]; then
        replay_once "$BASELINE_BIN" "baseline"
    fi
done

log "== history queries on an event log of $LOG_EVENTS events over 30 days"
config bench '"synth"' "$PREFIX-h" >"$DIR/history.toml"
"$RELEASE/examples/fill_events" --brokers "$BROKERS" --topic "$PREFIX-h.events.synth" \
    --region synth --events "$LOG_EVENTS" --span-days 30
"$RELEASE/region-node" --config "$DIR/history.toml" migrate
RUST_LOG=warn "$RELEASE/region-node" --config "$DIR/history.toml" serve 2>"$DIR/node.log" &
NODE_PID=$!
started=$(date +%s)
until [[ $(psql -h 127.0.0.1 -U postgres -d "$DATABASE" -qAtc 'SELECT count(*) FROM event_log' 2>/dev/null || echo 0) -ge $LOG_EVENTS ]]; do
    (($(date +%s) - started < 900)) || die "event_log did not fill within 900 s (see $DIR/node.log)"
    sleep 1
done
log "event_log holds $LOG_EVENTS events after $(($(date +%s) - started)) s"

BASE="http://127.0.0.1:$PORT"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mid=$(date -u -d '15 days ago' +%Y-%m-%dT%H:%M:%SZ)
from=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)

# time_it LABEL N URL: N requests, prints min / median / max seconds.
time_it() {
    local label=$1 n=$2 url=$3 times=()
    for _ in $(seq "$n"); do
        times+=("$(curl -fsS -o /dev/null -w '%{time_total}' "$url")")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" -v n="$n" \
        '{ t[NR] = $1 } END { printf "%-44s n=%d  min %.3f s  median %.3f s  max %.3f s\n", label, n, t[1], t[int((NR + 1) / 2)], t[NR] }'
}
curl -fsS "$BASE/v1/counts?at=$now" | jq -c '{at, total, active, retired, events_replayed}'
time_it "GET /v1/counts?at=<15 days ago>" 20 "$BASE/v1/counts?at=$mid"
time_it "GET /v1/counts?at=<now> (whole log)" 20 "$BASE/v1/counts?at=$now"
curl -fsS "$BASE/v1/counts/series?from=$from&to=$now&step=1h" | jq -c '{step_seconds, points: (.points | length), last: .points[-1] | {at, total, events_replayed}}'
time_it "GET /v1/counts/series 30 days at 1h" 10 "$BASE/v1/counts/series?from=$from&to=$now&step=1h"
