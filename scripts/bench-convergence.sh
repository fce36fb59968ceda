#!/usr/bin/env bash
# Measures how long three region nodes take to agree on the counts after a burst of commands:
# starts three release-build nodes (ports 8091-8093, fresh databases, topics of their own) on the
# in-memory test broker, sends MODELS registrations + MODELS activations to the first node, then
# polls every node's GET /v1/counts until all report the expected totals.
#
#   scripts/bench-convergence.sh [MODELS=5000] [CONCURRENCY=16]
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"

MODELS=${1:-5000}
CONCURRENCY=${2:-16}
TOKEN=bench-admin-token-0123456789
PREFIX="bench-$(date +%s)"
DIR=$(mktemp -d)
REGIONS=(eu-west:8091 us-east:8092 ap-northeast:8093)
BIN="${CARGO_TARGET_DIR:-$AIGO_ROOT/target}/release/region-node"

scripts/services.sh up >/dev/null
cargo build --release -p region-node

cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for entry in "${REGIONS[@]}"; do
        psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE IF EXISTS ${PREFIX//-/_}_${entry%%:*//-/_} WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
PIDS=()
trap cleanup EXIT

for entry in "${REGIONS[@]}"; do
    region=${entry%%:*} port=${entry##*:}
    cat >"$DIR/$region.toml" <<TOML
region = "$region"
regions = ["eu-west", "us-east", "ap-northeast"]
[http]
listen = "127.0.0.1:$port"
[database]
url = "postgres://postgres@127.0.0.1:5432/${PREFIX//-/_}_${region//-/_}"
max_connections = 10
acquire_timeout_ms = 3000
[kafka]
brokers = "127.0.0.1:19092"
topic_prefix = "$PREFIX"
partitions = 3
message_timeout_ms = 10000
[projector]
commit_every = 1000
commit_interval_ms = 50
heartbeat_ms = 1000
stale_after_ms = 5000
withdrawal_interval_ms = 5000
[[tokens]]
name = "bench"
secret = "$TOKEN"
scopes = ["admin"]
TOML
    "$BIN" --config "$DIR/$region.toml" serve >"$DIR/$region.log" 2>&1 &
    PIDS+=($!)
done
for entry in "${REGIONS[@]}"; do
    port=${entry##*:}
    until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.2; done
done
# Let the consumer groups settle before timing.
sleep 8

expected=$MODELS
start=$(date +%s.%N)
"$BIN" load --target http://127.0.0.1:8091 --token "$TOKEN" --models "$MODELS" --concurrency "$CONCURRENCY"
sent=$(date +%s.%N)
all_agree() {
    local entry counts
    for entry in "${REGIONS[@]}"; do
        counts=$(curl -fsS "http://127.0.0.1:${entry##*:}/v1/counts") || return 1
        [[ $(jq '.total' <<<"$counts") == "$expected" && $(jq '.active' <<<"$counts") == "$expected" ]] || return 1
    done
}
deadline=$((SECONDS + 300))
until all_agree; do
    ((SECONDS < deadline)) || die "nodes did not converge within 300 s"
    sleep 0.02
done
converged=$(date +%s.%N)
python3 - "$start" "$sent" "$converged" "$MODELS" <<'PY'
import sys
start, sent, done, models = map(float, sys.argv[1:])
print(f"{int(2 * models)} commands sent in {sent - start:.2f} s; all three nodes agree on "
      f"total={int(models)} active={int(models)} {done - sent:.3f} s after the last answer "
      f"({done - start:.2f} s after the first command)")
PY
