#!/usr/bin/env bash
# Read-load isolation on three release-build nodes (see bench-cluster.sh): RATE registrations/s
# to eu-west for DURATION seconds alone, then again while CLIENTS clients loop over `?at=`, the
# last day's series and a model's history on the same node; then how soon its projector lag is
# back to 0 once the readers stop (`aigo-bench isolation`, JSON on stdout).
#
#   scripts/bench-isolation.sh [RATE=200] [DURATION=30] [CLIENTS=64] [IMPATIENT_MS]
#
# Readers wait what a 503's Retry-After says; with IMPATIENT_MS they retry after that many ms.
set -euo pipefail

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$AIGO_ROOT"
# shellcheck source=bench-cluster.sh source-path=SCRIPTDIR
source scripts/bench-cluster.sh

RATE=${1:-200}
DURATION=${2:-30}
CLIENTS=${3:-64}
IMPATIENT=()
[[ -n ${4:-} ]] && IMPATIENT=(--impatient-ms "$4")

bench_cluster_up
log "seeding: 2000 models so history reads have something to read"
"$BENCH_BIN" load --target http://127.0.0.1:8091 --token "$TOKEN" --models 1000 --concurrency 16 >/dev/null
log "isolation: $RATE commands/s for $DURATION s alone, then with $CLIENTS readers"
"$BENCH_BIN" isolation --target http://127.0.0.1:8091 --token "$TOKEN" --rate "$RATE" \
    --duration "$DURATION" --clients "$CLIENTS" "${IMPATIENT[@]}"
