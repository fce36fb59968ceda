#!/usr/bin/env bash
# Read-side figures on three release-build nodes (see bench-cluster.sh):
#  1. command-to-stream latency across regions: RATE registrations/s sent to eu-west, watched
#     on us-east's /v1/stream (`aigo-bench latency`): p50/p99 of the change event and of the
#     first counts event that includes the command;
#  2. GET /v1/counts under load with wrk (CONNECTIONS connections, DURATION), first on a node
#     at rest, then while commands arrive at RATE/s.
#
#   scripts/bench-read.sh [RATE=20] [COUNT=600] [CONNECTIONS=32] [DURATION=20s]
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"
# shellcheck source=bench-cluster.sh source-path=SCRIPTDIR
source scripts/bench-cluster.sh

RATE=${1:-20}
COUNT=${2:-600}
CONNECTIONS=${3:-32}
DURATION=${4:-20s}

ensure_debian_packages wrk
bench_cluster_up

log "latency: $COUNT registrations at $RATE/s to eu-west, watched on us-east"
"$BENCH_BIN" latency --write http://127.0.0.1:8091 --watch http://127.0.0.1:8092 \
    --token "$TOKEN" --rate "$RATE" --count "$COUNT"

log "GET /v1/counts at rest: wrk -t2 -c$CONNECTIONS -d$DURATION"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency http://127.0.0.1:8092/v1/counts

log "GET /v1/counts while $RATE commands/s arrive"
"$BENCH_BIN" latency --write http://127.0.0.1:8091 --watch http://127.0.0.1:8092 \
    --token "$TOKEN" --rate "$RATE" --count "$COUNT" >"$BENCH_DIR/latency-under-load.txt" &
writer=$!
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency http://127.0.0.1:8092/v1/counts
wait "$writer" || true
log "latency while wrk ran:"
cat "$BENCH_DIR/latency-under-load.txt"
