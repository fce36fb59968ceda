# shellcheck shell=bash
# Three release-build region nodes for benchmarks: ports 8091-8093, fresh databases and topics
# of their own on the in-memory test broker; stopped and dropped on exit. Source it, then call
# bench_cluster_up. Sets BIN, TOKEN and REGIONS.
#   source "$(dirname "${BASH_SOURCE[0]}")/bench-cluster.sh"

# shellcheck disable=SC2034 # used by the scripts that source this file
TOKEN=bench-admin-token-0123456789
PREFIX="bench-$(date +%s)"
BENCH_DIR=$(mktemp -d)
REGIONS=(eu-west:8091 us-east:8092 ap-northeast:8093)
BIN="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release/region-node"
BENCH_BIN="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release/aigo-bench"
PIDS=()

bench_cluster_down() {
    local pid entry region
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for entry in "${REGIONS[@]}"; do
        region=${entry%%:*}
        psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS ${PREFIX//-/_}_${region//-/_} WITH (FORCE)" >/dev/null 2>&1 || true
    done
}

bench_cluster_up() {
    local entry region port
    scripts/services.sh up >/dev/null
    cargo build --release -p region-node -p bench
    trap bench_cluster_down EXIT
    for entry in "${REGIONS[@]}"; do
        region=${entry%%:*} port=${entry##*:}
        # Only what differs from the node's built-in defaults (region-node/src/config.rs).
        cat >"$BENCH_DIR/$region.toml" <<TOML
region = "$region"
regions = ["eu-west", "us-east", "ap-northeast"]
[http]
listen = "127.0.0.1:$port"
[database]
url = "postgres://postgres@127.0.0.1:5432/${PREFIX//-/_}_${region//-/_}"
[kafka]
brokers = "127.0.0.1:19092"
topic_prefix = "$PREFIX"
# The load and latency tools register on eu-west (8091): it owns their providers' ids.
[ownership]
providers = { load = "eu-west", latency = "eu-west" }
[[tokens]]
name = "bench"
secret = "$TOKEN"
scopes = ["admin"]
TOML
        "$BIN" --config "$BENCH_DIR/$region.toml" serve >"$BENCH_DIR/$region.log" 2>&1 &
        PIDS+=($!)
    done
    for entry in "${REGIONS[@]}"; do
        port=${entry##*:}
        until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.2; done
    done
    # Let the consumer groups settle before timing.
    sleep 8
    log "3 nodes ready, logs in $BENCH_DIR"
}
