#!/usr/bin/env bash
# A fresh node on a long topic: time to ready (projector caught up), time until the catalogue
# follower has logged every event, and resident memory against an empty node (issue #13).
#
#   scripts/bench-catch-up.sh [EVENTS=1000000]
#   BASELINE_BIN=/path/to/older/region-node scripts/bench-catch-up.sh   # the same run with it too
#   SHAPE=catalogue scripts/bench-catch-up.sh 1000000   # 1,000,000 models instead of events
#   BROKERS=127.0.0.1:9092 REPLAYS=0 scripts/bench-catch-up.sh 200000   # the durable dev broker
#   BASELINE_BIN=target/release/region-node BASELINE_ENV=AIGO_KAFKA__CATCH_UP_FETCH_WAIT_MS=0 \
#       scripts/bench-catch-up.sh   # the baseline: this build with a setting changed
#
# fill_events writes EVENTS synthetic events (valid model histories, ~13 events per model) to
# the region "synth" topic of the in-memory test broker (3 partitions). A release node of region
# synth on a fresh database then folds it (projector) and applies it to its catalogue and event
# log (follower), both from offset 0. An empty node (its own empty topics) is measured first;
# `region-node replay` of the topic (each binary twice, alternating) before the nodes.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

EVENTS=${1:-1000000}
# histories: EVENTS events of long model histories; catalogue: EVENTS models, each registered
# (four in five activated, the degraded and outage ones given their status), as a catalogue is
# imported: resident memory per model folded.
SHAPE=${SHAPE:-histories}
BROKERS=${BROKERS:-127.0.0.1:19092}
PORT=8096
BASE=http://127.0.0.1:$PORT
PREFIX="bench-catch-up-$(date +%s)"
DIR=$(mktemp -d)
RELEASE="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release"
DATABASE=

scripts/services.sh up >/dev/null
[[ -n "${BIN_PREBUILT:-}" ]] || cargo build --release -p region-node --bin region-node --example fill_events

NODE_PID=
stop_node() {
    if [[ -n $NODE_PID ]]; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        NODE_PID=
    fi
    if [[ -n $DATABASE ]]; then
        psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >/dev/null 2>&1 || true
        DATABASE=
    fi
}
cleanup() {
    stop_node
    rm -rf "$DIR"
}
trap cleanup EXIT

sql() { psql -h 127.0.0.1 -U postgres -d "$DATABASE" -qAtc "$1"; }
applied_events() {
    curl -fsS "$BASE/metrics" 2>/dev/null |
        awk '/^aigo_catalogue_events_applied_total/ { n += $NF } END { printf "%d\n", n }'
}

# run_node BIN PREFIX EXPECTED [VAR=VALUE...]: a node of region synth on a fresh database, with
# those variables; prints seconds to ready, seconds until event_log holds EXPECTED events, and
# resident memory then.
run_node() {
    local bin=$1 prefix=$2 expected=$3
    local -a settings=("${@:4}")
    DATABASE="aigo_catch_up_$(date +%s%N)"
    cat >"$DIR/node.toml" <<TOML
region = "synth"
[http]
listen = "127.0.0.1:$PORT"
[database]
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
[kafka]
brokers = "$BROKERS"
topic_prefix = "$prefix"
partitions = 3
TOML
    "$bin" --config "$DIR/node.toml" migrate >/dev/null 2>&1
    local started
    started=$(date +%s.%N)
    # MALLOC_ARENA_MAX as deploy/Dockerfile sets it, unless the settings say otherwise.
    env RUST_LOG=warn MALLOC_ARENA_MAX=2 "${settings[@]}" "$bin" --config "$DIR/node.toml" serve \
        2>>"$DIR/node.log" &
    NODE_PID=$!
    until curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; do
        kill -0 "$NODE_PID" 2>/dev/null || die "the node exited (see $DIR/node.log)"
        sleep 0.1
    done
    local ready
    ready=$(python3 -c "print(round($(date +%s.%N) - $started, 1))")
    # The follower's own counter: polling count(*) of event_log would scan the growing table
    # several times a second on the same two cores.
    until [[ $(applied_events) -ge $expected ]]; do
        sleep 0.2
    done
    [[ $(sql 'SELECT count(*) FROM event_log') -ge $expected ]] || die "event_log is short of $expected"
    local logged
    logged=$(python3 -c "print(round($(date +%s.%N) - $started, 1))")
    sleep 2
    local rss
    rss=$(ps -o rss= -p "$NODE_PID" | tr -d ' ')
    local models
    models=$(sql 'SELECT count(*) FROM catalogue_models')
    echo "ready after ${ready} s; event_log complete after ${logged} s; ${models} models; resident ${rss} KiB"
    stop_node
}

log "empty node"
run_node "$RELEASE/region-node" "$PREFIX-empty" 0

case $SHAPE in
histories) fill_shape=(--events "$EVENTS") ;;
catalogue) fill_shape=(--shape catalogue --models "$EVENTS") ;;
*) die "SHAPE must be histories or catalogue, not $SHAPE" ;;
esac
log "filling $PREFIX.events.synth: $SHAPE, $EVENTS"
filled=$("$RELEASE/examples/fill_events" --brokers "$BROKERS" --topic "$PREFIX.events.synth" \
    --region synth "${fill_shape[@]}")
# Its last line: "baseline (no Kafka): folded N events in ...".
EVENTS=$(sed -n 's/.*folded \([0-9]*\) events.*/\1/p' <<<"$filled" | tail -1)
[[ -n $EVENTS ]] || die "fill_events did not say how many events it wrote: $filled"
log "$EVENTS events written"

# replay_topic BIN: `region-node replay` of the filled topic (fold only, no database writes);
# prints its seconds. Run before the nodes, it also warms the broker: the first reader of a
# freshly filled topic was seen to be slowed (its follower took 2-4x as long, whichever binary).
replay_topic() {
    local bin=$1
    DATABASE="aigo_catch_up_$(date +%s%N)"
    psql -h 127.0.0.1 -U postgres -qAtc "CREATE DATABASE $DATABASE" >/dev/null
    cat >"$DIR/replay.toml" <<TOML
region = "synth"
[database]
url = "postgres://postgres@127.0.0.1:5432/$DATABASE"
[kafka]
brokers = "$BROKERS"
topic_prefix = "$PREFIX"
partitions = 3
TOML
    local started
    started=$(date +%s.%N)
    "$bin" --config "$DIR/replay.toml" replay --quiet >/dev/null 2>>"$DIR/replay.log" ||
        die "replay failed (see $DIR/replay.log)"
    python3 -c "print(round($(date +%s.%N) - $started, 2))"
    stop_node
}

# REPLAYS=0 skips them (on the sqlite broker they take minutes).
for ((run = 1; run <= ${REPLAYS:-2}; run++)); do
    echo "replay, run $run: this build $(replay_topic "$RELEASE/region-node") s${BASELINE_BIN:+; baseline $(replay_topic "$BASELINE_BIN") s}"
done

log "this build on $EVENTS events"
run_node "$RELEASE/region-node" "$PREFIX" "$EVENTS"
if [[ -n "${BASELINE_BIN:-}" ]]; then
    log "baseline ($BASELINE_BIN ${BASELINE_ENV:-}) on $EVENTS events"
    # shellcheck disable=SC2086 # BASELINE_ENV is a list of VAR=VALUE words
    run_node "$BASELINE_BIN" "$PREFIX" "$EVENTS" ${BASELINE_ENV:-}
fi
